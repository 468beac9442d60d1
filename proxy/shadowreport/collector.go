package shadowreport

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/routes"
)

// ringMinutes is how much per-minute history a route keeps: the match
// rate over time shown on the report, and the longest budget window.
const ringMinutes = 60

// Sides are indexed legacy 0, ported 1.
func sideIndex(s routes.Side) int {
	if s == routes.SidePorted {
		return 1
	}
	return 0
}

type counts struct {
	compared, match, mismatch, noiseOnly, errors, skipped uint64
	served, calls, fails                                  [2]uint64
}

type minute struct {
	start int64 // Unix minute; slots from another minute are stale
	counts
	lat [2]hist
}

// Request identifies a shadowed request in logs and examples.
type Request struct {
	ID     string `json:"request_id,omitempty"`
	Method string `json:"method,omitempty"`
	// URI is redacted (compare.RedactURI) before it is stored or logged.
	URI string `json:"uri,omitempty"`
}

// Comparison is one primary/candidate pair, compared. Its strings and
// bodies may view the caller's buffers: they need only stay valid while
// Compared runs, which copies whatever it keeps (an example, a diff log
// entry).
type Comparison struct {
	Request
	PrimarySide routes.Side
	Primary     compare.Response
	Candidate   compare.Response
	// Result is Comparator.Diff(Primary, Candidate).
	Result compare.Result
	// Self is Comparator.Diff(Primary, a second Primary answer) when this
	// request was sampled for noise (after Collector.LearnNoise), else
	// nil.
	Self *compare.Result
}

// clone copies r's strings, which may view a caller's buffer.
func (r Request) clone() Request {
	return Request{ID: strings.Clone(r.ID), Method: strings.Clone(r.Method), URI: strings.Clone(r.URI)}
}

// Collector holds one route's figures. Safe for concurrent use; each
// Collector has its own lock.
type Collector struct {
	route    string
	s        *Stats
	noise    *compare.Noise
	outcomes map[compare.Outcome]prometheus.Counter

	mu          sync.Mutex
	total       counts
	lat         [2]histTotal
	ring        [ringMinutes]minute
	skipReasons map[string]uint64
	store       mismatchStore
}

func newCollector(route string, s *Stats) *Collector {
	c := &Collector{
		route:       route,
		s:           s,
		noise:       compare.NewNoise(s.opts.Noise),
		outcomes:    map[compare.Outcome]prometheus.Counter{},
		skipReasons: map[string]uint64{},
		store:       newMismatchStore(s.opts.Store),
	}
	for _, o := range compare.Outcomes() {
		c.outcomes[o] = s.comparisons.WithLabelValues(route, string(o))
	}
	return c
}

// Route returns the route name.
func (c *Collector) Route() string { return c.route }

// Noise returns the route's noise learner.
func (c *Collector) Noise() *compare.Noise { return c.noise }

// minuteLocked returns the ring slot for now, reset if stale.
func (c *Collector) minuteLocked(now time.Time) *minute {
	m := now.Unix() / 60
	slot := &c.ring[m%ringMinutes]
	if slot.start != m {
		*slot = minute{start: m}
	}
	return slot
}

// Served records a response given to a client by side: traffic share,
// latency and errors. failed means the handler returned an error, timed
// out or answered 5xx.
func (c *Collector) Served(side routes.Side, d time.Duration, failed bool) {
	c.observe(side, d, failed, true)
}

// Called records a call whose answer the client never saw (a shadow
// candidate, a second primary call for noise): latency and errors only.
func (c *Collector) Called(side routes.Side, d time.Duration, failed bool) {
	c.observe(side, d, failed, false)
}

func (c *Collector) observe(side routes.Side, d time.Duration, failed, served bool) {
	now := c.s.now()
	i := sideIndex(side)
	c.mu.Lock()
	m := c.minuteLocked(now)
	if served {
		c.total.served[i]++
		m.served[i]++
	}
	c.total.calls[i]++
	m.calls[i]++
	if failed {
		c.total.fails[i]++
		m.fails[i]++
	}
	c.lat[i].add(d)
	m.lat[i].add(d)
	c.mu.Unlock()
}

// LearnNoise records the differences between two answers of the primary
// side to one request (compare.Noise.Learn).
func (c *Collector) LearnNoise(r compare.Result) { c.noise.Learn(r) }

// Compared classifies a comparison against the learned noise, records it
// everywhere (counters, store, log line, diff log) and returns its outcome.
func (c *Collector) Compared(cmp Comparison) compare.Outcome {
	outcome := c.noise.Classify(&cmp.Result, cmp.Self)
	now := c.s.now()
	if outcome != compare.OutcomeMatch {
		// Kept by the store and the diff log. Only they and the log line
		// show the URI.
		cmp.Request = cmp.Request.clone()
		cmp.URI = compare.RedactURI(cmp.URI)
	}
	c.outcomes[outcome].Inc()

	var ex *Example
	var signal []compare.Diff
	if outcome == compare.OutcomeMismatch {
		for _, d := range cmp.Result.Diffs {
			if !d.Noise {
				signal = append(signal, d)
			}
		}
		// Built outside the lock: redacting bodies parses them.
		ex = newExample(cmp, now, c.s.opts.Store.MaxBody)
	}

	c.mu.Lock()
	m := c.minuteLocked(now)
	for _, k := range []*counts{&c.total, &m.counts} {
		k.compared++
		switch outcome {
		case compare.OutcomeMatch:
			k.match++
		case compare.OutcomeNoiseOnly:
			k.noiseOnly++
		default:
			k.mismatch++
		}
	}
	if ex != nil {
		c.store.add(signal, ex, now)
	}
	c.mu.Unlock()

	if outcome == compare.OutcomeMismatch {
		c.logMismatch(cmp, signal)
	}
	if outcome != compare.OutcomeMatch && c.s.diffs() {
		c.s.writeDiff(Entry{
			Time: now, Route: c.route, Outcome: outcome, RequestID: cmp.ID, Method: cmp.Method, URI: cmp.URI,
			PrimarySide: cmp.PrimarySide, PrimaryStatus: cmp.Primary.Status, CandidateStatus: cmp.Candidate.Status,
			Diffs: cmp.Result.Diffs, Dropped: cmp.Result.Dropped,
		})
	}
	return outcome
}

// maxLoggedPaths bounds the paths named in one mismatch log line.
const maxLoggedPaths = 10

func (c *Collector) logMismatch(cmp Comparison, signal []compare.Diff) {
	log := c.s.log
	ce := log.Check(zap.InfoLevel, "shadow mismatch")
	if ce == nil {
		return
	}
	paths := make([]string, 0, min(len(signal), maxLoggedPaths))
	for _, d := range signal[:min(len(signal), maxLoggedPaths)] {
		paths = append(paths, d.Path)
	}
	fields := []zap.Field{
		zap.String("route", c.route), zap.String("request_id", cmp.ID),
		zap.String("method", cmp.Method), zap.String("uri", cmp.URI),
		zap.String("primary_side", string(cmp.PrimarySide)),
		zap.Int("primary_status", cmp.Primary.Status), zap.Int("candidate_status", cmp.Candidate.Status),
		zap.Int("diffs", len(signal)+cmp.Result.Dropped), zap.Strings("paths", paths),
	}
	if len(signal) > 0 {
		fields = append(fields, zap.String("kind", string(signal[0].Kind)),
			zap.String("primary", signal[0].Primary), zap.String("candidate", signal[0].Candidate))
	}
	ce.Write(fields...)
}

// Errored records a request that could not be compared because a side
// failed (handler error, timeout, candidate pool refused after start).
func (c *Collector) Errored(req Request, side routes.Side, err error) {
	now := c.s.now()
	req = req.clone()
	c.outcomes[compare.OutcomeError].Inc()
	c.mu.Lock()
	c.total.errors++
	c.minuteLocked(now).errors++
	c.mu.Unlock()
	if c.s.diffs() {
		msg := string(side) + ": "
		if err != nil {
			msg += err.Error()
		}
		c.s.writeDiff(Entry{
			Time: now, Route: c.route, Outcome: compare.OutcomeError, RequestID: req.ID,
			Method: req.Method, URI: compare.RedactURI(req.URI), Error: msg,
		})
	}
}

// maxSkipReasons bounds the distinct skip reasons kept; others count as
// "other".
const maxSkipReasons = 16

// Skipped records a sampled request that was not compared, with a short
// fixed reason ("pool_full", "body_too_large", "unsafe_method"...).
func (c *Collector) Skipped(reason string) {
	now := c.s.now()
	c.outcomes[compare.OutcomeSkipped].Inc()
	c.mu.Lock()
	c.total.skipped++
	c.minuteLocked(now).skipped++
	if _, ok := c.skipReasons[reason]; !ok && len(c.skipReasons) >= maxSkipReasons {
		reason = "other"
	}
	c.skipReasons[reason]++
	c.mu.Unlock()
}
