package proxy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/proxy/capture"
	"github.com/strangler-proxy/strangler/proxy/shadow"
	"github.com/strangler-proxy/strangler/proxy/shadowreport"
	"github.com/strangler-proxy/strangler/routes"
)

// modeDemoted is the mode label of a request on a route demoted to legacy
// by its budgets.
const modeDemoted = "demoted"

// newShadow builds the shadow engine, the report's figures and handler.
func (s *Server) newShadow(o Options, reg prometheus.Registerer) error {
	s.shadowReg = o.ShadowRegistry
	s.shadowLegacy = o.ShadowLegacy
	if s.shadowLegacy == nil {
		s.shadowLegacy = s.legacy
	}
	s.clientIP = o.ClientIP
	s.demotions = map[string]*demotion{}
	s.events = map[string]*shadow.EventsFile{}
	s.captures = map[string]*capture.Writer{}
	sc := s.cfg.Shadow
	var err error
	s.stats, err = shadowreport.New(shadowreport.Options{
		Registerer: reg, Logger: s.log, Now: s.now, DiffLog: o.DiffLog, DiffTopic: o.DiffTopic, Noise: sc.Noise, Store: sc.Store,
	})
	if err != nil {
		return err
	}
	s.engine, err = shadow.New(shadow.Options{
		Workers: sc.Workers, Queue: sc.Queue, WakeInterval: sc.WakeInterval, Logger: s.log, Registerer: reg, Now: s.now,
		Recorded: o.Recorded, Tapped: o.Tapped,
	})
	if err != nil {
		return err
	}
	s.report = shadowreport.NewHandler(reportSource{s}, s.stats)
	return nil
}

// startBackground starts the shadow workers and the budget watcher, once.
func (s *Server) startBackground() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopping {
		return
	}
	s.started = true
	s.engine.Start()
	stop := make(chan struct{})
	s.stop = stop
	s.background.Go(func() { s.watchBudgets(stop) })
}

// stopShadow stops the budget watcher, drains the shadow pool until ctx
// ends, and closes the files the shadow side opened.
func (s *Server) stopShadow(ctx context.Context) error {
	s.mu.Lock()
	if s.stop != nil {
		close(s.stop)
		s.stop = nil
	}
	s.mu.Unlock()
	s.background.Wait()
	err := s.engine.Close(ctx)
	s.rtMu.Lock()
	defer s.rtMu.Unlock()
	for path, w := range s.captures {
		if w != nil {
			err = errors.Join(err, w.Close())
		}
		delete(s.captures, path)
	}
	for path, f := range s.events {
		err = errors.Join(err, f.Close())
		delete(s.events, path)
	}
	return err
}

// dispatch sends the request to the side its route and mode name.
func (s *Server) dispatch(ctx *fasthttp.RequestCtx, x *exchange) error {
	t := s.live.Load()
	m := t.Match(ctx)
	x.mode = string(m.Mode)
	if m.Route == nil {
		s.stats.Unmatched(ctx.Method(), ctx.Path())
		return s.serveLegacy(ctx, x)
	}
	x.route = m.Route.Name
	rr := s.runtimeFor(t).routes[m.Route]
	x.rr = rr

	// The canary decision reads the QA override header; then it is gone,
	// so its token reaches no upstream, capture or shadow copy.
	goSide := false
	if m.Mode == routes.ModeCanary && rr.canary != nil {
		d := rr.canary.Decide(ctx)
		goSide = d.Side == routes.SidePorted
		if d.OverrideRejected {
			s.metrics.overrideRejected.WithLabelValues(rr.route.Name).Inc()
		}
	}
	if rr.override != "" {
		ctx.Request.Header.Del(rr.override)
	}

	if rr.capture != nil && rr.captureSampler.Sample(ctx) {
		if p := capture.Begin(ctx, rr.route.Name, rr.captureMax, s.now()); p != nil {
			defer func() {
				if rec, ok := p.Finish(ctx); ok {
					rr.capture.Write(rec)
				}
			}()
		}
	}

	if m.Mode != routes.ModeLegacy && rr.demotion.demoted() {
		x.mode = modeDemoted
		return s.serveLegacy(ctx, x)
	}
	switch m.Mode {
	case routes.ModePorted:
		return s.serveGo(ctx, x, m.Route.Handler.Serve)
	case routes.ModeCanary:
		if goSide {
			return s.serveGo(ctx, x, m.Route.Handler.Serve)
		}
	case routes.ModeShadow:
		return s.serveShadow(ctx, x, rr)
	}
	return s.serveLegacy(ctx, x)
}

func (s *Server) serveLegacy(ctx *fasthttp.RequestCtx, x *exchange) error {
	x.backend, x.side = backendLegacy, routes.SideLegacy
	return s.legacy.Serve(ctx)
}

// serveGo answers from the Go side through serve. When the Go handler
// fails on a safe, bodiless request of a route with fallback, legacy
// answers instead (a body may be consumed already, so it could not be
// resent); the Go error is reported here, once, and counted as a Go
// failure.
func (s *Server) serveGo(ctx *fasthttp.RequestCtx, x *exchange, serve func(*fasthttp.RequestCtx) error) error {
	x.backend, x.side = backendPorted, routes.SidePorted
	start := s.now()
	err := serve(ctx)
	r := x.rr.route
	if err == nil || !r.Fallback || !safeMethod(ctx) || ctx.Request.Header.ContentLength() != 0 {
		return err
	}
	x.rr.collector.Called(routes.SidePorted, s.now().Sub(start), true)
	s.log.Warn("ported handler failed; served by legacy",
		zap.ByteString("request_id", x.id), zap.String("route", x.route), zap.Error(err))
	clearResponse(&ctx.Response)
	return s.serveLegacy(ctx, x)
}

// serveShadow answers from the route's primary side and, for a sampled
// request, has the engine run the candidate on a copy.
func (s *Server) serveShadow(ctx *fasthttp.RequestCtx, x *exchange, rr *routeRuntime) error {
	sr := rr.shadow
	if sr == nil || !rr.sampler.Sample(ctx) {
		return s.servePrimary(ctx, x, rr, nil)
	}
	job, reason := s.engine.Begin(ctx, sr)
	if job == nil {
		rr.collector.Skipped(reason)
	}
	return s.servePrimary(ctx, x, rr, job)
}

// servePrimary runs the primary side of a shadow route, through job when
// the request is shadowed.
func (s *Server) servePrimary(ctx *fasthttp.RequestCtx, x *exchange, rr *routeRuntime, job *shadow.Job) error {
	primary := routes.SideLegacy
	if rr.route.Shadow != nil {
		primary = rr.route.Shadow.Primary
	}
	if primary == routes.SidePorted {
		h := rr.route.Handler
		if job == nil {
			return s.serveGo(ctx, x, h.Serve)
		}
		return s.serveGo(ctx, x, func(ctx *fasthttp.RequestCtx) error { return job.Serve(ctx, h) })
	}
	if job == nil {
		return s.serveLegacy(ctx, x)
	}
	x.backend, x.side = backendLegacy, routes.SideLegacy
	return job.Serve(ctx, s.legacy)
}

// safeMethod: RFC 9110 §9.2.1, the methods routes.RouteConfig.Fallback names.
func safeMethod(ctx *fasthttp.RequestCtx) bool {
	return ctx.IsGet() || ctx.IsHead() || ctx.IsOptions() || ctx.IsTrace()
}

// watchBudgets checks every route's budgets each budget_interval until
// stop is closed.
func (s *Server) watchBudgets(stop <-chan struct{}) {
	t := time.NewTicker(s.cfg.Shadow.BudgetInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.checkBudgets()
		}
	}
}

// checkBudgets demotes every route in a Go-serving mode whose budgets are
// breached.
func (s *Server) checkBudgets() {
	rt := s.runtimeFor(s.live.Load())
	for _, rr := range rt.routes {
		if rr.budgets == nil || rr.route.Mode == routes.ModeLegacy || rr.demotion.demoted() {
			continue
		}
		var since time.Time
		if p := rr.demotion.reenabled.Load(); p != nil {
			since = *p
		}
		if breached, reason := rr.collector.BreachedSince(*rr.budgets, since); breached {
			s.demote(rr, reason)
		}
	}
}

func (s *Server) demote(rr *routeRuntime, reason string) {
	if !rr.demotion.state.CompareAndSwap(nil, &demotedState{at: s.now(), reason: reason}) {
		return
	}
	rr.demotion.gauge.Set(1)
	s.log.Warn("route demoted to legacy: budget breached; re-enable it with POST /admin/routes/{name}/reenable",
		zap.String("route", rr.route.Name), zap.String("mode", string(rr.route.Mode)), zap.String("reason", reason))
}

// ErrUnknownRoute: no route of the live table has that name.
var ErrUnknownRoute = errors.New("no such route")

// Reenable lifts a route's demotion: its mode applies again, and its
// budgets judge only what happens from the next minute on. It reports
// whether the route was demoted.
func (s *Server) Reenable(name string) (bool, error) {
	rt := s.runtimeFor(s.live.Load())
	for r, rr := range rt.routes {
		if r.Name != name {
			continue
		}
		now := s.now()
		rr.demotion.reenabled.Store(&now)
		was := rr.demotion.state.Swap(nil)
		rr.demotion.gauge.Set(0)
		if was != nil {
			s.log.Warn("route re-enabled by an operator", zap.String("route", name),
				zap.String("mode", string(r.Mode)), zap.String("demoted_reason", was.reason))
		}
		return was != nil, nil
	}
	return false, fmt.Errorf("re-enable %q: %w", name, ErrUnknownRoute)
}

// Report is the migration report handler (HTML and JSON) for the admin
// listener.
func (s *Server) Report() *shadowreport.Handler { return s.report }

// reportSource is the report's view of the live table and the demotions.
type reportSource struct{ s *Server }

func (r reportSource) AllLegacy() bool { return r.s.live.Load().AllLegacy() }

func (r reportSource) Routes() []shadowreport.RouteStatus {
	t := r.s.live.Load()
	rt := r.s.runtimeFor(t)
	infos := t.Describe()
	out := make([]shadowreport.RouteStatus, len(infos))
	for i, route := range t.Routes() {
		st := shadowreport.RouteStatus{RouteInfo: infos[i]}
		if rr := rt.routes[route]; rr != nil {
			st.Thresholds = rr.thresholds
			if d := rr.demotion.state.Load(); d != nil && route.Mode != routes.ModeLegacy {
				st.Demoted, st.DemotedReason, st.DemotedAt = true, d.reason, d.at
				st.EffectiveMode = routes.ModeLegacy
			}
		}
		out[i] = st
	}
	return out
}
