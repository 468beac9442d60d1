package proxy

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/proxy/capture"
	"github.com/strangler-proxy/strangler/proxy/control"
	"github.com/strangler-proxy/strangler/proxy/shadow"
	"github.com/strangler-proxy/strangler/routes"
)

// modeDemoted is the mode label of a request on a route demoted to legacy
// by its budgets.
const modeDemoted = "demoted"

// newShadow builds the shadow engine candidates run on.
func (s *Server) newShadow(o Options, reg prometheus.Registerer) error {
	sc := s.cfg.Shadow
	var err error
	s.engine, err = shadow.New(shadow.Options{
		Workers: sc.Workers, Queue: sc.Queue, WakeInterval: sc.WakeInterval, Logger: s.log, Registerer: reg, Now: s.now,
		Recorded: o.Recorded, Tapped: o.Tapped, IdempotencyWindow: o.IdempotencyWindow,
	})
	return err
}

// startShadow starts the shadow workers, once.
func (s *Server) startShadow() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopping {
		s.engine.Start()
	}
}

// stopShadow drains the shadow pool until ctx ends.
func (s *Server) stopShadow(ctx context.Context) error { return s.engine.Close(ctx) }

// dispatch sends the request to the side its route and mode name.
func (s *Server) dispatch(ctx *fasthttp.RequestCtx, x *exchange) error {
	rt := s.plane.Load()
	m := rt.Table().Match(ctx)
	x.mode = string(m.Mode)
	if m.Route == nil {
		s.stats.Unmatched(ctx.Method(), ctx.Path())
		return s.serveLegacy(ctx, x)
	}
	x.route = m.Route.Name
	rr := rt.Route(m.Route)
	x.rr = rr

	// The canary decision reads the QA override header; then it is gone,
	// so its token reaches no upstream, capture or shadow copy.
	goSide := false
	if m.Mode == routes.ModeCanary && rr.Canary != nil {
		d := rr.Canary.Decide(ctx)
		goSide = d.Side == routes.SidePorted
		if d.OverrideRejected {
			s.metrics.overrideRejected.WithLabelValues(m.Route.Name).Inc()
		}
	}
	if rr.Override != "" {
		ctx.Request.Header.Del(rr.Override)
	}

	fwd := s.legacy
	if rr.Capture != nil && rr.CaptureSampler.Sample(ctx) {
		if p := capture.Begin(ctx, m.Route.Name, rr.CaptureMax, s.now, captureOutput(rr)); p != nil {
			// The legacy side's answer is recorded with the request.
			fwd = p.Around(s.legacy)
			defer p.Finish(ctx)
		}
	}
	x.legacy = fwd

	if m.Mode != routes.ModeLegacy && rr.Demoted() {
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
	if x.legacy != nil {
		return x.legacy.Serve(ctx) // through the capture
	}
	return s.legacy.Serve(ctx)
}

// captureOutput is where a route's captured records go, and how the
// legacy side's published message is found for one, by the route's key
// path: the line of its events file, or the message on the topic its
// messages reach, once it arrives (within the topic's wait), left for the
// comparison that waits for it too.
func captureOutput(rr *control.Route) capture.Output {
	out := capture.Output{Writer: rr.Capture}
	sr := rr.Shadow
	if sr == nil {
		return out
	}
	keyOf := func(body []byte) string {
		key, _ := compare.Lookup(body, sr.KeyPath)
		return key
	}
	switch src := sr.LegacyEvents.(type) {
	case interface{ Peek(string) ([]byte, bool) }:
		out.Published = func(body []byte, done func([]byte, bool)) {
			var v []byte
			if key := keyOf(body); key != "" {
				v, _ = src.Peek(key)
			}
			done(v, false)
		}
	case watcher:
		out.Published = func(body []byte, done func([]byte, bool)) {
			key := keyOf(body)
			if key == "" {
				done(nil, false)
				return
			}
			if !src.Watch(key, time.Now().Add(src.Wait()), func(msg []byte, ok bool) { done(msg, !ok) }) {
				done(nil, true)
			}
		}
	}
	return out
}

// watcher is a source whose messages arrive after the answer
// (shadow.Topic).
type watcher interface {
	Watch(key string, deadline time.Time, fn func([]byte, bool)) bool
	Wait() time.Duration
}

// Interface guard: the topic source is one.
var _ watcher = (*shadow.Topic)(nil)

// serveGo answers from the Go side through serve. When the Go handler
// fails on a safe, bodiless request of a route with fallback, legacy
// answers instead (a body may be consumed already, so it could not be
// resent); the Go error is reported here, once, and counted as a Go
// failure.
func (s *Server) serveGo(ctx *fasthttp.RequestCtx, x *exchange, serve func(*fasthttp.RequestCtx) error) error {
	x.backend, x.side = backendPorted, routes.SidePorted
	start := s.now()
	err := serve(ctx)
	r := x.rr.Config
	if err == nil || !r.Fallback || !safeMethod(ctx) || ctx.Request.Header.ContentLength() != 0 {
		return err
	}
	x.rr.Collector.Called(routes.SidePorted, s.now().Sub(start), true)
	s.log.Warn("ported handler failed; served by legacy",
		zap.ByteString("request_id", x.id), zap.String("route", x.route), zap.Error(err))
	clearResponse(&ctx.Response)
	return s.serveLegacy(ctx, x)
}

// serveShadow answers from the route's primary side and, for a sampled
// request, has the engine run the candidate on a copy.
func (s *Server) serveShadow(ctx *fasthttp.RequestCtx, x *exchange, rr *control.Route) error {
	sr := rr.Shadow
	if sr == nil || !rr.Sampler.Sample(ctx) {
		return s.servePrimary(ctx, x, rr, nil)
	}
	job, reason := s.engine.Begin(ctx, sr)
	if job == nil {
		rr.Collector.Skipped(reason)
	}
	return s.servePrimary(ctx, x, rr, job)
}

// servePrimary runs the primary side of a shadow route, through job when
// the request is shadowed.
func (s *Server) servePrimary(ctx *fasthttp.RequestCtx, x *exchange, rr *control.Route, job *shadow.Job) error {
	primary := routes.SideLegacy
	if rr.Config.Shadow != nil {
		primary = rr.Config.Shadow.Primary
	}
	if primary == routes.SidePorted {
		h := rr.Config.Handler
		if job == nil {
			return s.serveGo(ctx, x, h.Serve)
		}
		return s.serveGo(ctx, x, func(ctx *fasthttp.RequestCtx) error { return job.Serve(ctx, h) })
	}
	if job == nil {
		return s.serveLegacy(ctx, x)
	}
	x.backend, x.side = backendLegacy, routes.SideLegacy
	return job.Serve(ctx, x.legacy)
}

// safeMethod: RFC 9110 §9.2.1, the methods routes.RouteConfig.Fallback names.
func safeMethod(ctx *fasthttp.RequestCtx) bool {
	return ctx.IsGet() || ctx.IsHead() || ctx.IsOptions() || ctx.IsTrace()
}
