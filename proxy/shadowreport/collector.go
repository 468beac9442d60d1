package shadowreport

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/routes"
)

// ringMinutes is how much per-minute history a route keeps: the match
// rate over time shown on the report, and the longest budget window.
const ringMinutes = 60

// maxPending bounds the comparisons held while a path they differ at is
// still learning (see compare.Profile); past it a new one is judged at
// once, its pending differences counted as real.
const maxPending = 1024

// maxEpochs is how many superseded comparison epochs a route keeps.
const maxEpochs = 5

// Sides are indexed legacy 0, ported 1.
func sideIndex(s routes.Side) int {
	if s == routes.SidePorted {
		return 1
	}
	return 0
}

type counts struct {
	compared, match, mismatch, noiseOnly, accepted, errors, skipped uint64
	served, calls, fails, twins                                     [2]uint64
}

// clearOutcomes zeroes what a comparison epoch owns: the outcomes. Traffic,
// calls and failures are the route's, whatever its rules.
func (k *counts) clearOutcomes() {
	k.compared, k.match, k.mismatch, k.noiseOnly, k.accepted, k.errors, k.skipped = 0, 0, 0, 0, 0, 0, 0
}

type minute struct {
	start int64 // Unix minute; slots from another minute are stale
	counts
	// lat: answers served to clients, from the front door's first byte to
	// its last; call: each side's call as the proxy made it (see
	// Collector.Timed). Comparing two sides means comparing the same one.
	lat, call [2]hist
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
// entry, a comparison held until its paths are classified).
type Comparison struct {
	Request
	PrimarySide routes.Side
	Primary     compare.Response
	Candidate   compare.Response
	// Result is Comparator.DiffWith(Primary, Candidate), with what each
	// side published (paths under `published`) and the Go side's answers
	// to the same request compared with each other (kind
	// nondeterministic) appended.
	Result compare.Result
	// Self is Comparator.Diff(legacy answer, a second legacy answer) when
	// this request was sampled for noise (after Collector.LearnNoise), else
	// nil.
	Self *compare.Result
	// SideEffectsUncompared says why what the Go side published could not
	// be compared with what the legacy side published; "" when it was, or
	// when the Go side published nothing.
	SideEffectsUncompared string
	// SideEffectsCompared: both sides' messages were compared.
	SideEffectsCompared bool
}

// clone copies r's strings, which may view a caller's buffer.
func (r Request) clone() Request {
	return Request{ID: strings.Clone(r.ID), Method: strings.Clone(r.Method), URI: strings.Clone(r.URI)}
}

// Clone copies everything of c that may view a caller's buffer, for a
// comparison recorded later (after a message it waits for arrives).
func (c Comparison) Clone() Comparison { return c.clone() }

// clone copies everything of c that may view a caller's buffer.
func (c Comparison) clone() Comparison {
	c.Request = c.Request.clone()
	c.Primary, c.Candidate = cloneResponse(c.Primary), cloneResponse(c.Candidate)
	c.Result.Diffs = ownDiffs(c.Result.Diffs)
	if c.Self != nil {
		self := *c.Self
		self.Diffs = ownDiffs(self.Diffs)
		c.Self = &self
	}
	return c
}

// ownDiffs copies ds and their strings: a header's rendering is its value
// as read, a view into the shadow job's buffers.
func ownDiffs(ds []compare.Diff) []compare.Diff {
	out := slices.Clone(ds)
	for i := range out {
		d := &out[i]
		d.Path, d.Template, d.Note = strings.Clone(d.Path), strings.Clone(d.Template), strings.Clone(d.Note)
		d.Primary, d.Candidate = strings.Clone(d.Primary), strings.Clone(d.Candidate)
	}
	return out
}

func cloneResponse(r compare.Response) compare.Response {
	h := make([][2]string, len(r.Header))
	for i, kv := range r.Header {
		h[i] = [2]string{strings.Clone(kv[0]), strings.Clone(kv[1])}
	}
	return compare.Response{Status: r.Status, Header: h, Body: slices.Clone(r.Body), ContentType: strings.Clone(r.ContentType)}
}

// EpochRules are the comparison rules of a route as the report shows
// them. A change of Fingerprint starts a new comparison epoch.
type EpochRules struct {
	Fingerprint string           `json:"fingerprint"`
	Ignore      []string         `json:"ignore,omitempty"`
	Normalise   int              `json:"normalise,omitempty"`
	Accept      []compare.Accept `json:"accept,omitempty"`
}

// RulesOf describes a comparator's rules; nil: the defaults.
func RulesOf(c *compare.Comparator, r compare.Rules) EpochRules {
	out := EpochRules{Ignore: r.Ignore, Normalise: len(r.Normalise), Accept: r.Accept}
	if c != nil {
		out.Fingerprint = c.Fingerprint()
	}
	return out
}

// Epoch is one run of comparisons under the same rules.
type Epoch struct {
	Number  int        `json:"number"`
	Rules   EpochRules `json:"rules"`
	Started time.Time  `json:"started"`
	// Ended is set once the epoch is superseded, with its final counts.
	Ended  time.Time `json:"ended,omitzero"`
	Counts *Counts   `json:"counts,omitempty"`
}

// held is a comparison waiting for a path to be classified.
type held struct{ cmp Comparison }

// Collector holds one route's figures. Safe for concurrent use; each
// Collector has its own lock.
type Collector struct {
	route    string
	s        *Stats
	profile  *compare.Profile
	noise    atomic.Pointer[compare.Noise] // replaced with each epoch
	outcomes map[compare.Outcome]prometheus.Counter

	mu          sync.Mutex
	total       counts
	lat, call   [2]histTotal
	ring        [ringMinutes]minute
	skipReasons map[string]uint64
	store       mismatchStore
	epoch       Epoch
	superseded  []Epoch
	pending     []held
	settledAt   uint64 // profile answers when pending was last settled
	accepted    map[[2]string]uint64
	effects     sideEffects
}

// sideEffects counts how a route's side effects were compared.
type sideEffects struct {
	compared, uncompared uint64
	reason               string // the last reason they were not
}

func newCollector(route string, s *Stats) *Collector {
	c := &Collector{
		route:       route,
		s:           s,
		profile:     compare.NewProfile(s.opts.Noise),
		outcomes:    map[compare.Outcome]prometheus.Counter{},
		skipReasons: map[string]uint64{},
		store:       newMismatchStore(s.opts.Store),
		accepted:    map[[2]string]uint64{},
		epoch:       Epoch{Number: 1, Started: s.now().UTC()},
	}
	c.noise.Store(compare.NewNoise(s.opts.Noise))
	for _, o := range compare.Outcomes() {
		c.outcomes[o] = s.comparisons.WithLabelValues(route, string(o))
	}
	return c
}

// Route returns the route name.
func (c *Collector) Route() string { return c.route }

// Noise returns the route's legacy-twin noise learner for this epoch.
func (c *Collector) Noise() *compare.Noise { return c.noise.Load() }

// Profile returns what the route has learned of the legacy side's answers
// across requests. It outlives epochs: it describes the legacy side, not
// the rules.
func (c *Collector) Profile() *compare.Profile { return c.profile }

// SetRules records the route's comparison rules. Rules with another
// fingerprint than the current epoch's start a new epoch: the outcomes,
// the differing paths, the held comparisons and the twin noise start
// over, and the old epoch stays on the report, marked superseded. The
// first call only names the rules of the first epoch.
func (c *Collector) SetRules(r EpochRules) {
	now := c.s.now().UTC()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.epoch.Rules.Fingerprint == r.Fingerprint:
		return
	case c.epoch.Rules.Fingerprint == "":
		c.epoch.Rules = r
		return
	}
	old := c.epoch
	old.Ended = now
	k := c.countsLocked()
	old.Counts = &k
	c.superseded = append(c.superseded, old)
	if len(c.superseded) > maxEpochs {
		c.superseded = slices.Delete(c.superseded, 0, len(c.superseded)-maxEpochs)
	}
	c.epoch = Epoch{Number: old.Number + 1, Rules: r, Started: now}
	c.total.clearOutcomes()
	for i := range c.ring {
		c.ring[i].counts.clearOutcomes()
	}
	c.store = newMismatchStore(c.s.opts.Store)
	clear(c.skipReasons)
	clear(c.accepted)
	c.pending = nil
	c.effects = sideEffects{}
	c.noise.Store(compare.NewNoise(c.s.opts.Noise))
}

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
// out or answered 5xx. d is the front door's whole exchange.
func (c *Collector) Served(side routes.Side, d time.Duration, failed bool) {
	c.observe(side, d, failed, true, false)
}

// Called records a call whose answer the client never saw (a shadow
// candidate): its latency (as Timed) and whether it failed.
func (c *Collector) Called(side routes.Side, d time.Duration, failed bool) {
	c.observe(side, d, failed, false, false)
}

// CalledTwin records a second call of a side for the same request (the
// legacy side for noise, the Go side for determinism), as Called, and
// counts it apart so the page can say why a side has more calls than
// comparisons.
func (c *Collector) CalledTwin(side routes.Side, d time.Duration, failed bool) {
	c.observe(side, d, failed, false, true)
}

// Timed records how long the primary's call took, measured as the
// candidate's is: by the proxy, from calling the side to having its whole
// answer. It counts no call (Served does).
func (c *Collector) Timed(side routes.Side, d time.Duration) {
	now := c.s.now()
	i := sideIndex(side)
	c.mu.Lock()
	c.call[i].add(d)
	c.minuteLocked(now).call[i].add(d)
	c.mu.Unlock()
}

func (c *Collector) observe(side routes.Side, d time.Duration, failed, served, twin bool) {
	now := c.s.now()
	i := sideIndex(side)
	c.mu.Lock()
	m := c.minuteLocked(now)
	if served {
		c.total.served[i]++
		m.served[i]++
		c.lat[i].add(d)
		m.lat[i].add(d)
	} else {
		c.call[i].add(d)
		m.call[i].add(d)
	}
	if twin {
		c.total.twins[i]++
		m.twins[i]++
	}
	c.total.calls[i]++
	m.calls[i]++
	if failed {
		c.total.fails[i]++
		m.fails[i]++
	}
	c.mu.Unlock()
}

// LearnNoise records the differences between two answers of the legacy
// side to one request (compare.Noise.Learn).
func (c *Collector) LearnNoise(r compare.Result) { c.Noise().Learn(r) }

// Compared classifies a comparison against the learned noise and records
// it everywhere (counters, store, log line, diff log), or, when a path it
// differs at is still learning, holds it until that path is classified.
// It returns the outcome, pending for a held comparison. Comparisons held
// earlier whose paths are classified now are recorded too.
func (c *Collector) Compared(cmp Comparison) compare.Outcome {
	outcome := c.Noise().Classify(&cmp.Result, cmp.Self)
	// A comparison waits while any of its paths learns, a mismatch too:
	// the counts per path must not take a learning path for a real one.
	if outcome == compare.OutcomeMismatch && slices.ContainsFunc(cmp.Result.Diffs, func(d compare.Diff) bool { return d.Pending }) {
		outcome = compare.OutcomePending
	}
	if outcome == compare.OutcomePending {
		c.mu.Lock()
		if len(c.pending) < maxPending {
			c.pending = append(c.pending, held{cmp: cmp.clone()})
			c.settledAt = 0 // its paths may have been classified since it was compared
			c.mu.Unlock()
			c.settle()
			return outcome
		}
		c.mu.Unlock()
		// No room to wait: what cannot be explained now counts as real.
		for i := range cmp.Result.Diffs {
			cmp.Result.Diffs[i].Pending = false
		}
		outcome = compare.Judge(&cmp.Result)
	}
	c.record(cmp, outcome)
	c.settle()
	return outcome
}

// settle records the held comparisons whose paths are classified now.
func (c *Collector) settle() {
	answers := c.profile.Answers()
	c.mu.Lock()
	if len(c.pending) == 0 || answers == c.settledAt {
		c.mu.Unlock()
		return
	}
	c.settledAt = answers
	var done []Comparison
	c.pending = slices.DeleteFunc(c.pending, func(h held) bool {
		all := true
		for i := range h.cmp.Result.Diffs {
			all = c.profile.Settle(&h.cmp.Result.Diffs[i]) && all
		}
		if all {
			done = append(done, h.cmp)
		}
		return all
	})
	c.mu.Unlock()
	for _, cmp := range done {
		c.record(cmp, compare.Judge(&cmp.Result))
	}
}

// record counts a judged comparison and keeps what the report shows of it.
func (c *Collector) record(cmp Comparison, outcome compare.Outcome) {
	now := c.s.now()
	if outcome != compare.OutcomeMatch {
		// Kept by the store and the diff log. Only they and the log line
		// show the URI.
		cmp.Request = cmp.Request.clone()
		cmp.URI = compare.RedactURI(cmp.URI)
		if outcome == compare.OutcomeMismatch || c.s.diffs() {
			cmp.Result.Diffs = ownDiffs(cmp.Result.Diffs)
		}
	}
	c.outcomes[outcome].Inc()

	var ex *Example
	var signal []compare.Diff
	if outcome == compare.OutcomeMismatch {
		for _, d := range cmp.Result.Diffs {
			if !d.Explained() {
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
		case compare.OutcomeAccepted:
			k.accepted++
		default:
			k.mismatch++
		}
	}
	for _, d := range cmp.Result.Diffs {
		if d.Accepted != "" && !d.Noise {
			c.accepted[[2]string{string(d.Kind), d.Accepted}]++
		}
	}
	switch {
	case cmp.SideEffectsUncompared != "":
		c.effects.uncompared++
		c.effects.reason = cmp.SideEffectsUncompared
	case cmp.SideEffectsCompared:
		c.effects.compared++
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
}

// maxLoggedPaths bounds the paths named in one mismatch log line.
const maxLoggedPaths = 10

// logMismatch writes the mismatch's one log line, to the unsampled
// mismatch logger (Options.MismatchLog).
func (c *Collector) logMismatch(cmp Comparison, signal []compare.Diff) {
	ce := c.s.mlog.Check(zap.InfoLevel, "shadow mismatch")
	if ce == nil {
		return
	}
	n := min(len(signal), maxLoggedPaths)
	paths := make([]string, 0, n)
	kinds := make([]string, 0, n)
	for _, d := range signal[:n] {
		paths = append(paths, d.Path)
		kinds = append(kinds, string(d.Kind))
	}
	fields := []zap.Field{
		zap.String("route", c.route), zap.String("request_id", cmp.ID),
		zap.String("method", cmp.Method), zap.String("uri", cmp.URI),
		zap.String("primary_side", string(cmp.PrimarySide)),
		zap.Int("primary_status", cmp.Primary.Status), zap.Int("candidate_status", cmp.Candidate.Status),
		zap.Int("diffs", len(signal)+cmp.Result.Dropped), zap.Strings("paths", paths), zap.Strings("kinds", kinds),
	}
	if len(signal) > 0 {
		fields = append(fields, zap.String("kind", string(signal[0].Kind)),
			zap.String("primary", signal[0].Primary), zap.String("candidate", signal[0].Candidate))
		if signal[0].Note != "" {
			fields = append(fields, zap.String("note", signal[0].Note))
		}
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
