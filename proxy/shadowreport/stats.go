package shadowreport

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/internal/promreg"
)

// Options configure Stats.
type Options struct {
	// Registerer receives strangler_shadow_comparisons_total{route,outcome}
	// (and strangler_shadow_difflog_dropped_total with a DiffLog).
	// Required.
	Registerer prometheus.Registerer
	// Logger gets the collectors' own warnings. Nil: none.
	Logger *zap.Logger
	// MismatchLog gets one Info line per mismatch. Give it an unsampled
	// core (the access log's): a sampled logger drops lines, and every
	// mismatch must be there. Nil: Logger.
	MismatchLog *zap.Logger
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
	// DiffLog receives every comparison that did not match. Nil: none. Its
	// owner closes it.
	DiffLog *DiffLog
	// DiffTopic receives the same entries for a Kafka topic. Nil: none. Its
	// owner closes it, before the producer it sends to.
	DiffTopic *DiffTopic
	// Noise tunes each route's noise learner.
	Noise compare.NoiseConfig
	// Store bounds each route's store of differing paths.
	Store StoreConfig
	// UnmatchedCapacity is how many unmatched templates each of the 8
	// shards tracks. Zero: 64.
	UnmatchedCapacity int
}

// Stats holds a Collector per route and the unmatched-path summary.
type Stats struct {
	opts        Options
	now         func() time.Time
	log         *zap.Logger
	mlog        *zap.Logger
	comparisons *prometheus.CounterVec
	collectors  sync.Map // route name → *Collector
	create      sync.Mutex
	unmatched   *unmatched
}

// New registers the metrics and returns empty Stats.
func New(o Options) (*Stats, error) {
	if o.Registerer == nil {
		return nil, fmt.Errorf("shadowreport: Registerer is required")
	}
	s := &Stats{opts: o, now: o.Now, log: o.Logger}
	s.opts.Store = o.Store.withDefaults()
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	s.log = s.log.Named("shadow")
	s.mlog = s.log
	if o.MismatchLog != nil {
		s.mlog = o.MismatchLog.Named("shadow")
	}
	if o.UnmatchedCapacity <= 0 {
		s.opts.UnmatchedCapacity = 64
	}
	s.unmatched = newUnmatched(s.opts.UnmatchedCapacity)
	s.comparisons = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strangler_shadow_comparisons_total",
		Help: "Shadowed requests by route and outcome (match, mismatch, noise_only, accepted, error, skipped); a comparison held while a path is still learning is counted once judged.",
	}, []string{"route", "outcome"})
	cs := []prometheus.Collector{s.comparisons}
	if d := o.DiffTopic; d != nil {
		for _, r := range []struct {
			result string
			n      func() uint64
		}{{"sent", d.Sent}, {"failed", d.Failed}, {"dropped", d.Dropped}} {
			cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "strangler_shadow_difftopic_events_total",
				Help:        "Diff events for the Kafka diff topic by result: sent (acked), failed (by the producer after retries), dropped (queue full, no room in time, or cluster unreachable).",
				ConstLabels: prometheus.Labels{"result": r.result},
			}, func() float64 { return float64(r.n()) }))
		}
	}
	if d := o.DiffLog; d != nil {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "strangler_shadow_difflog_dropped_total",
			Help: "Diff log entries dropped because the writer's queue was full.",
		}, func() float64 { return float64(d.Dropped()) }))
	}
	if err := promreg.Register(o.Registerer, "shadow", cs...); err != nil {
		return nil, err
	}
	return s, nil
}

// Route returns the route's Collector, creating it on first use. The
// proxy should look it up once per compiled route table, not per request.
func (s *Stats) Route(name string) *Collector {
	if c, ok := s.collectors.Load(name); ok {
		return c.(*Collector)
	}
	s.create.Lock()
	defer s.create.Unlock()
	if c, ok := s.collectors.Load(name); ok {
		return c.(*Collector)
	}
	c := newCollector(name, s)
	s.collectors.Store(name, c)
	return c
}

// Lookup returns the route's Collector, nil if it has none.
func (s *Stats) Lookup(name string) *Collector {
	if c, ok := s.collectors.Load(name); ok {
		return c.(*Collector)
	}
	return nil
}

// Retain drops the figures of every route not named, and their metric
// series: a route removed from the config leaves the report.
func (s *Stats) Retain(names []string) {
	keep := make(map[string]bool, len(names))
	for _, n := range names {
		keep[n] = true
	}
	s.create.Lock()
	defer s.create.Unlock()
	s.collectors.Range(func(k, _ any) bool {
		name := k.(string)
		if !keep[name] {
			s.collectors.Delete(name)
			s.comparisons.DeletePartialMatch(prometheus.Labels{"route": name})
		}
		return true
	})
}

// Unmatched records a request no route matched (it went to legacy), for
// the busiest-unmatched-paths list. path is the request path; a query is
// ignored. Safe on the request path: no allocation once the template is
// known, and one of 8 shard locks.
func (s *Stats) Unmatched(method, path []byte) { s.unmatched.add(method, path) }

// UnmatchedTop returns the n busiest unmatched templates and the number
// of unmatched requests seen.
func (s *Stats) UnmatchedTop(n int) ([]TemplateCount, uint64) { return s.unmatched.top(n) }

// diffs reports whether any diff sink is configured.
func (s *Stats) diffs() bool { return s.opts.DiffLog != nil || s.opts.DiffTopic != nil }

// writeDiff hands e to every configured diff sink.
func (s *Stats) writeDiff(e Entry) {
	if s.opts.DiffLog != nil {
		s.opts.DiffLog.Write(e)
	}
	if s.opts.DiffTopic != nil {
		s.opts.DiffTopic.Write(e)
	}
}
