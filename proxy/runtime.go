package proxy

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/proxy/canary"
	"github.com/strangler-proxy/strangler/proxy/capture"
	"github.com/strangler-proxy/strangler/proxy/shadow"
	"github.com/strangler-proxy/strangler/proxy/shadowreport"
	"github.com/strangler-proxy/strangler/routes"
)

// runtime is what the front door derives from one route table: per route,
// the splitters, the shadow settings, the collector. It is built once per
// table, on the first request that sees the table, and is as immutable as
// the table. What must outlive a table — demotions, collectors, capture
// files — is kept by name in the Server and shared.
type runtime struct {
	table  *routes.Table
	routes map[*routes.Route]*routeRuntime
}

// routeRuntime is one route's part of a runtime.
type routeRuntime struct {
	route     *routes.Route
	collector *shadowreport.Collector
	demotion  *demotion
	// canary splits mode canary; nil without a canary block.
	canary *canary.Splitter
	// override is the canary's QA override header, stripped from every
	// request of the route so its token reaches no upstream; "" if none.
	override string
	// sampler and shadow serve mode shadow; nil without a shadow block.
	sampler *canary.Splitter
	shadow  *shadow.Route
	// capture, with its sampler and body cap; nil without a capture block.
	capture        *capture.Writer
	captureSampler *canary.Splitter
	captureMax     int
	budgets        *shadowreport.Budgets
	thresholds     shadowreport.Thresholds
}

// demotion is a route's demotion state, kept by route name across route
// tables: set by the budget watcher, cleared by a person.
type demotion struct {
	state     atomic.Pointer[demotedState]
	reenabled atomic.Pointer[time.Time] // budgets judge only what came after
	gauge     prometheus.Gauge
}

type demotedState struct {
	at     time.Time
	reason string
}

func (d *demotion) demoted() bool { return d.state.Load() != nil }

// runtimeFor returns the runtime of t, building it if t is new.
func (s *Server) runtimeFor(t *routes.Table) *runtime {
	if rt := s.rt.Load(); rt != nil && rt.table == t {
		return rt
	}
	s.rtMu.Lock()
	defer s.rtMu.Unlock()
	if rt := s.rt.Load(); rt != nil && rt.table == t {
		return rt
	}
	rt := s.build(t)
	s.rt.Store(rt)
	return rt
}

// build makes the runtime of t. Caller holds rtMu.
func (s *Server) build(t *routes.Table) *runtime {
	rt := &runtime{table: t, routes: map[*routes.Route]*routeRuntime{}}
	names := make([]string, 0, len(t.Routes()))
	usedCaptures := map[string]bool{}
	for _, r := range t.Routes() {
		names = append(names, r.Name)
		rr := &routeRuntime{route: r, collector: s.stats.Route(r.Name), demotion: s.demotionOf(r.Name)}
		if r.Canary != nil {
			rr.canary = canary.ForCanary(r, s.clientIP)
			rr.override = rr.canary.OverrideHeader()
		}
		if r.Shadow != nil {
			rr.sampler = canary.ForShadow(r, s.clientIP)
			rr.shadow = s.shadowRoute(t, r, rr.collector)
		}
		if c := r.Capture; c != nil {
			rr.capture = s.captureWriter(c)
			usedCaptures[c.File] = true
			rr.captureSampler = canary.New(canary.Config{Route: r.Name, Sticky: r.Canary.StickyKey(), Permille: canary.Permille(c.Percent), ClientIP: s.clientIP})
			rr.captureMax = routes.DefaultShadowMaxBodyBytes
			if r.Shadow != nil {
				rr.captureMax = r.Shadow.MaxBodyBytes
			}
		}
		if b := r.Budgets; b != nil {
			rr.budgets = &shadowreport.Budgets{
				MaxMismatchRate: b.MaxMismatchRate, MaxErrorRate: b.MaxErrorRate, MaxP99Ratio: b.MaxP99Ratio,
				Window: b.Window, MinSamples: b.MinSamples,
			}
		}
		if v := r.Verdict; v != nil {
			rr.thresholds = shadowreport.Thresholds{
				MinComparisons: v.MinComparisons, MinMatchRate: v.MinMatchRate,
				MaxErrorRateGap: v.MaxErrorRateGap, MaxP99Ratio: v.MaxP99Ratio,
			}
		}
		rt.routes[r] = rr
	}
	s.stats.Retain(names)
	s.retainDemotions(names)
	s.retainCaptures(usedCaptures)
	return rt
}

// shadowRoute is the engine's view of a route with a shadow block.
func (s *Server) shadowRoute(t *routes.Table, r *routes.Route, c *shadowreport.Collector) *shadow.Route {
	sh := r.Shadow
	sr := &shadow.Route{
		Name:        r.Name,
		Primary:     sh.Primary,
		AllowUnsafe: sh.AllowUnsafe,
		Timeout:     sh.Timeout,
		MaxBody:     sh.MaxBodyBytes,
		Comparator:  sh.Comparator(),
		Collector:   c,
	}
	// Never the live Go handler off the client's path: a Go call there runs
	// with shadow dependencies, or not at all.
	goShadow := s.shadowReg[r.HandlerName]
	if sh.Primary == routes.SidePorted {
		sr.Candidate, sr.Twin = s.shadowLegacy, goShadow
	} else {
		sr.Candidate, sr.Twin = goShadow, s.shadowLegacy
	}
	if f := sh.LegacyEventsFile; f != "" {
		sr.LegacyEvents = s.eventsFile(f)
	}
	return sr
}

// demotionOf returns the demotion state of a route name. Caller holds rtMu.
func (s *Server) demotionOf(name string) *demotion {
	d := s.demotions[name]
	if d == nil {
		d = &demotion{gauge: s.metrics.demoted.WithLabelValues(name)}
		s.demotions[name] = d
	}
	return d
}

// retainDemotions forgets routes no longer configured. Caller holds rtMu.
func (s *Server) retainDemotions(names []string) {
	keep := make(map[string]bool, len(names))
	for _, n := range names {
		keep[n] = true
	}
	for name := range s.demotions {
		if !keep[name] {
			delete(s.demotions, name)
			s.metrics.demoted.DeleteLabelValues(name)
		}
	}
}

// eventsFile returns the follower of the monolith's events file at path.
// Caller holds rtMu.
func (s *Server) eventsFile(path string) *shadow.EventsFile {
	f := s.events[path]
	if f == nil {
		f = shadow.NewEventsFile(path, 0)
		s.events[path] = f
	}
	return f
}

// captureWriter returns the writer of a capture file, opening it on first
// use. A file that cannot be opened is logged and the capture is off (nil).
// Caller holds rtMu.
func (s *Server) captureWriter(c *routes.CaptureConfig) *capture.Writer {
	if w, ok := s.captures[c.File]; ok {
		return w
	}
	w, err := capture.Open(c.File, c.MaxBytes, s.log)
	if err != nil {
		s.log.Error("capture disabled", zap.String("file", c.File), zap.Error(err))
		w = nil
	}
	s.captures[c.File] = w
	return w
}

// retainCaptures closes capture files no route writes to any more. A
// request of the old table still holding one drops its record. Caller
// holds rtMu.
func (s *Server) retainCaptures(used map[string]bool) {
	for path, w := range s.captures {
		if used[path] {
			continue
		}
		delete(s.captures, path)
		if w != nil {
			if err := w.Close(); err != nil {
				s.log.Warn("close capture file", zap.String("file", path), zap.Error(err))
			}
		}
	}
}
