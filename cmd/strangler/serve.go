package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"

	"github.com/strangler-proxy/strangler/internal/linelog"
	"github.com/strangler-proxy/strangler/legacy-passthrough"
	"github.com/strangler-proxy/strangler/proxy"
	"github.com/strangler-proxy/strangler/proxy/control"
	"github.com/strangler-proxy/strangler/routes"
)

// adminShutdownTimeout bounds the admin server's stop, after the front
// door has drained (a scrape in progress may finish).
const adminShutdownTimeout = 5 * time.Second

// serve runs the proxy with the config at path until SIGTERM or SIGINT,
// then shuts down gracefully. Logs go to logOut as JSON.
func serve(path string, logOut io.Writer) int {
	// Signals first, so one that arrives during start-up is not fatal.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// The one read of the file: the static sections, the watcher's
	// baseline and the first route table all come from these bytes.
	data, err := os.ReadFile(path)
	var c fileConfig
	if err == nil {
		c, _, err = parseConfig(path, data)
	} else {
		err = fmt.Errorf("read config: %w", err)
	}
	if err != nil {
		lg := newLoggers(logConfig{Level: "info"}.WithDefaults(), logOut)
		lg.log.Error("start failed: invalid config", zap.String("config", path), zap.Strings("problems", problems(err)))
		lg.close()
		return exitRunError
	}
	lg := newLoggers(c.Log, logOut)
	defer lg.close()

	a, err := start(c, path, data, lg, hup)
	if err != nil {
		lg.log.Error("start failed", zap.String("config", path), zap.Error(err))
		return exitRunError
	}
	return a.wait(ctx)
}

// loggers are the process's log outputs, JSON lines on one writer.
type loggers struct {
	// log is the error and event logger, sampled as zap's production
	// config does (an error storm cannot flood the disk), written through
	// at once.
	log *zap.Logger
	// access takes the access lines (never sampled: every request gets
	// its line) through lines; nil when log.level silences them.
	access io.Writer
	// lines is the bounded buffer of the lines written once per request:
	// the access log, and any other such logger built on it with
	// linelog.NewLogger (e.g. the shadow's mismatch lines).
	lines *linelog.Writer
	level zapcore.Level
}

func newLoggers(c logConfig, w io.Writer) loggers {
	lvl, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		lvl = zapcore.InfoLevel // unreachable: loadConfig validated it
	}
	lg := loggers{level: lvl}
	// OnDrop runs on the flusher goroutine, after lg.log is set below.
	lg.lines = linelog.New(w, linelog.Options{
		BufferBytes: c.BufferBytes, FlushInterval: c.FlushInterval,
		OnDrop: func(dropped, total uint64) {
			lg.log.Warn("log lines dropped: the log output is slower than the requests (see strangler_log_lines_dropped_total)",
				zap.Uint64("dropped", dropped), zap.Uint64("dropped_total", total))
		},
	})
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), lg.lines.Direct(), lvl)
	lg.log = zap.New(zapcore.NewSamplerWithOptions(core, time.Second, 100, 100), zap.AddCaller())
	if lvl <= zapcore.InfoLevel {
		lg.access = lg.lines
	}
	return lg
}

// register exports the buffer's drop count.
func (lg loggers) register(reg prometheus.Registerer) error {
	return reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "strangler_log_lines_dropped_total",
		Help: "Access (and other per-request) log lines dropped because the log output fell behind by more than log.buffer_bytes, or failed.",
	}, func() float64 { return float64(lg.lines.Dropped()) }))
}

// close writes out the buffered lines (bounded: a stuck output gives up
// after linelog's CloseTimeout) and syncs the error log.
func (lg loggers) close() {
	if err := lg.lines.Close(); err != nil {
		lg.log.Warn("close the access log", zap.Error(err))
	}
	_ = lg.log.Sync()
}

// app is the running process: what start built and wait stops.
type app struct {
	log     *zap.Logger
	cfg     fileConfig
	fwd     *legacy.Forwarder
	backend *backend // spool, Kafka producer, hot cache
	plane   *control.Plane
	front   *proxy.Server
	admin   *control.Admin
	watcher *routes.Watcher
	ln, aln net.Listener
	rln     net.Listener // tls.redirect_listen; nil without it
	// group owns every goroutine the process starts (go below); failed is
	// done once one of them has stopped on its own.
	group  *errgroup.Group
	failed context.Context
	// stopping is set when wait begins the shutdown: a goroutine that
	// returns after that was stopped, not failed.
	stopping atomic.Bool
	// stopBackground stops the routes watcher, the budget watcher, the
	// hot-cache refresher and the legacy health checks.
	stopBackground context.CancelFunc
	// shadow is the shadow side: registry, sinks, forwarder, diff log.
	shadow *shadowSide
}

// start builds every component and starts serving. On error it undoes
// what it did and returns the first error. data is the config file as
// serve read it, once.
func start(c fileConfig, path string, data []byte, lg loggers, hup <-chan os.Signal) (_ *app, err error) {
	log := lg.log
	a := &app{log: log, cfg: c}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	reg := prometheus.NewRegistry()
	if err := lg.register(reg); err != nil {
		return nil, err
	}
	// The handlers' sink and campaign data come first: the route table
	// resolves handlers built on them.
	if a.backend, err = openBackend(c, log, reg); err != nil {
		return nil, err
	}
	undo = append(undo, func() { _ = a.backend.close(context.Background()) })
	a.fwd, err = legacy.New(c.Legacy, log, reg)
	if err != nil {
		return nil, fmt.Errorf("legacy forwarder: %w", err)
	}
	undo = append(undo, a.fwd.Close)
	// Shadow execution: the live sink tapped, and a second registry on
	// shadow dependencies (see shadow.go).
	deps, shadowSide, err := withShadow(a.backend.deps(log, reg), a.fwd, c, log)
	if err != nil {
		return nil, err
	}
	a.shadow = shadowSide
	undo = append(undo, func() { _ = a.shadow.close(context.Background()) })
	handlers, err := registry(deps)
	if err != nil {
		return nil, err
	}
	// The control plane builds every route table's runtime before it goes
	// live; the watcher publishes the first table (from data) through it
	// and then every edit.
	sc := c.Proxy.Shadow
	if a.plane, err = control.New(a.shadow.planeOptions(control.Options{
		Registerer: reg, Logger: log.Named("proxy"), BudgetInterval: sc.BudgetInterval, Noise: sc.Noise, Store: sc.Store,
		// sticky: ip hashes the client legacy.trusted_proxies names, not a
		// load balancer in front.
		ClientIP: a.fwd.ClientIP,
		// Every mismatch is a line, through the access log's bounded,
		// unsampled buffer (its drops counted in
		// strangler_log_lines_dropped_total), never the sampled logger.
		MismatchLog: linelog.NewLogger(lg.lines, lg.level).Named("proxy"),
	})); err != nil {
		return nil, err
	}
	undo = append(undo, func() { _ = a.plane.Close() })
	a.watcher, err = routes.NewWatcher(routes.WatchOptions{
		Path: path, Data: data, Registry: handlers, Publisher: a.plane, Logger: log, Registerer: reg, Reload: hup,
	})
	if err != nil {
		return nil, err
	}

	a.front, err = proxy.New(a.shadow.options(proxy.Options{
		Config: c.Proxy, Plane: a.plane, Legacy: a.fwd,
		Logger: log.Named("proxy"), AccessLog: lg.access, Registerer: reg,
	}))
	if err != nil {
		return nil, err
	}
	a.admin, err = control.NewAdmin(control.AdminOptions{
		Registry: reg,
		Plane:    a.plane,
		Checks:   append([]control.Check{{Name: "legacy", Fn: a.fwd.Ping}}, a.backend.checks()...),
		// strangler check -against asks here what a reload would do.
		Routes: append(a.backend.adminRoutes(), control.AdminRoute{Pattern: "POST /config/check", Handler: a.watcher.CheckHandler()}),
		Logger: log.Named("admin"),
		Token:  c.Proxy.AdminToken,
	})
	if err != nil {
		return nil, err
	}

	if a.ln, err = net.Listen("tcp", c.Proxy.Listen); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	undo = append(undo, func() { _ = a.ln.Close() })
	if a.aln, err = net.Listen("tcp", c.Proxy.AdminListen); err != nil {
		return nil, fmt.Errorf("admin_listen: %w", err)
	}
	undo = append(undo, func() { _ = a.aln.Close() })
	// With TLS on listen, an optional plain-HTTP listener that redirects.
	if r := c.Proxy.TLS.RedirectListen; r != "" {
		if a.rln, err = net.Listen("tcp", r); err != nil {
			return nil, fmt.Errorf("tls.redirect_listen: %w", err)
		}
		undo = append(undo, func() { _ = a.rln.Close() })
	}

	var bgCtx context.Context
	bgCtx, a.stopBackground = context.WithCancel(context.Background())
	a.group, a.failed = errgroup.WithContext(context.Background())
	a.goRun("proxy", func() error { return a.front.Serve(a.ln) })
	a.goRun("admin", func() error { return a.admin.Serve(a.aln) })
	a.goRun("routes watcher", func() error { return a.watcher.Run(bgCtx) })
	a.goRun("budget watcher", func() error { return a.plane.Run(bgCtx) })
	a.goRun("hotcache refresher", func() error { return a.backend.cache.Run(bgCtx) })
	a.goRun("legacy health checks", func() error { return a.fwd.Run(bgCtx) })
	if a.rln != nil {
		a.goRun("redirect", func() error { return a.front.ServeRedirect(a.rln) })
	}

	log.Info("started",
		zap.String("listen", a.ln.Addr().String()),
		zap.String("admin_listen", a.aln.Addr().String()),
		zap.String("upstream", c.Legacy.Summary()),
		zap.String("routes", routeSummary(a.plane.Table())),
		zap.String("events", deliverySummary(c)),
		zap.String("hotcache", c.HotCache.Source),
		zap.String("session", c.Session.Summary()),
		zap.String("version", version()),
	)
	return a, nil
}

// goRun runs fn on the process's group. A component that returns before
// the shutdown began, with or without an error, has stopped on its own:
// it is logged once and ends the group's context, which makes wait shut
// everything down. After that, only an error is worth a line.
func (a *app) goRun(what string, fn func() error) {
	a.group.Go(func() error {
		err := fn()
		if errors.Is(err, net.ErrClosed) && a.stopping.Load() {
			err = nil // a listener closed by the shutdown
		}
		switch {
		case !a.stopping.Load():
			a.log.Error("stopped unexpectedly; shutting down", zap.String("component", what), zap.Error(err))
			return fmt.Errorf("%s stopped unexpectedly: %w", what, orStopped(err))
		case err != nil:
			a.log.Error("stopped with an error", zap.String("component", what), zap.Error(err))
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}

var errReturned = errors.New("returned without an error")

func orStopped(err error) error {
	if err == nil {
		return errReturned
	}
	return err
}

// wait serves until ctx ends (a signal) or a component stops on its own,
// then shuts everything down within server.shutdown_timeout of that moment
// (shutdownPlan): readiness fails at once; after a signal the listener
// keeps accepting for server.shutdown_delay so load balancers stop sending;
// then the front door drains (the shadow pool with it), the watchers, the
// hot-cache refresher and the admin server stop, and the control plane
// closes its capture files. Only then, with no request left that could
// publish, the spool flushes to Kafka and closes, then the producer, then
// the legacy forwarder. A step that overruns the whole bound makes the
// process exit 2 at shutdown_timeout, saying which step it was.
func (a *app) wait(ctx context.Context) int {
	code := exitOK
	signalled := true
	select {
	case <-ctx.Done():
	case <-a.failed.Done():
		code, signalled = exitRunError, false // goRun logged which component and why
	}
	a.stopping.Store(true)
	plan := newShutdownPlan(time.Now(), a.cfg.Proxy.Server, signalled)
	var step atomic.Value
	step.Store("delay")
	watchdog := time.AfterFunc(time.Until(plan.deadline), func() {
		a.log.Error("shutdown overran server.shutdown_timeout; exiting now",
			zap.Duration("shutdown_timeout", a.cfg.Proxy.Server.ShutdownTimeout), zap.Any("step", step.Load()))
		os.Exit(exitRunError)
	})
	defer watchdog.Stop()

	a.admin.Drain()
	a.log.Info("shutting down: /readyz answers 503",
		zap.Duration("shutdown_delay", plan.delay), zap.Duration("shutdown_timeout", a.cfg.Proxy.Server.ShutdownTimeout),
		zap.Time("requests_until", plan.drainBy), zap.Time("exit_by", plan.deadline))
	if plan.delay > 0 {
		t := time.NewTimer(plan.delay)
		select {
		case <-t.C:
		case <-a.failed.Done(): // a component stopping on its own cuts the delay short
			t.Stop()
		}
	}

	step.Store("drain in-flight requests")
	dctx, cancel := context.WithDeadline(context.Background(), plan.drainBy)
	defer cancel()
	if err := a.front.Shutdown(dctx); err != nil {
		a.log.Error("front door shutdown", zap.Error(err))
		code = exitRunError
	}
	step.Store("stop background work and the admin server")
	a.stopBackground()
	ctx, cancel = context.WithDeadline(context.Background(), plan.end)
	defer cancel()
	actx, acancel := context.WithTimeout(ctx, adminShutdownTimeout)
	defer acancel()
	if err := a.admin.Shutdown(actx); err != nil {
		a.log.Warn("admin shutdown", zap.Error(err))
	}
	if err := a.group.Wait(); err != nil {
		code = exitRunError
	}
	if err := a.plane.Close(); err != nil {
		a.log.Error("close capture files", zap.Error(err))
		code = exitRunError
	}
	step.Store("flush the spool and the Kafka producer")
	if err := a.backend.close(ctx); err != nil {
		a.log.Error("close event delivery", zap.Error(err))
		code = exitRunError
	}
	// The front door's Shutdown drained the shadow pool.
	step.Store("close the shadow side")
	if err := a.shadow.close(ctx); err != nil {
		a.log.Error("close shadow side", zap.Error(err))
		code = exitRunError
	}
	a.fwd.Close()
	a.log.Info("stopped", zap.Int("exit_code", code), zap.Duration("took", time.Since(plan.began)))
	return code
}

// shutdownPlan is when each step of the shutdown must be done by. Counted
// from the signal (began), the process exits by began+shutdown_timeout
// (deadline), its last stepsTail kept for writing the logs. After the delay,
// what is left before end is split: in-flight requests get all but the
// flush share, the spool and the Kafka producers the flush share (up to
// 5s, at most half).
type shutdownPlan struct {
	began, drainBy, end, deadline time.Time
	delay                         time.Duration
}

const (
	maxFlushShare = 5 * time.Second
	maxStepsTail  = time.Second
)

func newShutdownPlan(began time.Time, sc proxy.ServerConfig, signalled bool) shutdownPlan {
	p := shutdownPlan{began: began, deadline: began.Add(sc.ShutdownTimeout)}
	if signalled && sc.ShutdownDelay != nil {
		p.delay = *sc.ShutdownDelay // a failed component is not worth waiting for
	}
	p.end = p.deadline.Add(-min(maxStepsTail, sc.ShutdownTimeout/10))
	left := p.end.Sub(began.Add(p.delay))
	p.drainBy = p.end.Add(-min(maxFlushShare, left/2))
	return p
}
