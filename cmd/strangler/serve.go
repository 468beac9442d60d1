package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/strangler-proxy/strangler/legacy-passthrough"
	"github.com/strangler-proxy/strangler/proxy"
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

	c, _, err := loadConfig(path)
	if err != nil {
		log, _ := newLoggers(logConfig{Level: "info"}, logOut)
		log.Error("start failed: invalid config", zap.String("config", path), zap.Strings("problems", problems(err)))
		return exitFailure
	}
	log, access := newLoggers(c.Log, logOut)
	defer func() { _ = log.Sync() }()

	a, err := start(c, path, log, access, hup)
	if err != nil {
		log.Error("start failed", zap.String("config", path), zap.Error(err))
		return exitFailure
	}
	return a.wait(ctx)
}

// newLoggers builds the error logger (sampled, as zap's production config
// does, so an error storm cannot flood the disk) and the access logger
// (never sampled: every request gets its line). Both write JSON to w at
// the same level.
func newLoggers(c logConfig, w io.Writer) (log, access *zap.Logger) {
	lvl, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		lvl = zapcore.InfoLevel // unreachable: loadConfig validated it
	}
	enc := zap.NewProductionEncoderConfig()
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), lvl)
	log = zap.New(zapcore.NewSamplerWithOptions(core, time.Second, 100, 100), zap.AddCaller())
	return log, zap.New(core).Named("access")
}

// app is the running process: what start built and wait stops.
type app struct {
	log     *zap.Logger
	cfg     fileConfig
	fwd     *legacy.Forwarder
	backend *backend // spool, Kafka producer, hot cache
	front   *proxy.Server
	admin   *proxy.Admin
	watcher *routes.Watcher
	ln, aln net.Listener
	// stopBackground stops the routes watcher, the hot-cache refresher and
	// the legacy health checks.
	stopBackground context.CancelFunc
	done           chan result // one per goroutine below
	// shadow is the shadow side: registry, sinks, forwarder, diff log.
	shadow *shadowSide
}

// result is how a serving goroutine reports its end.
type result struct {
	what string
	err  error
}

// start builds every component and starts serving. On error it undoes
// what it did and returns the first error.
func start(c fileConfig, path string, log, access *zap.Logger, hup <-chan os.Signal) (_ *app, err error) {
	a := &app{log: log, cfg: c, done: make(chan result, 5)}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	reg := prometheus.NewRegistry()
	// The handlers' sink and campaign data come first: the route table
	// resolves handlers built on them.
	if a.backend, err = openBackend(c, log, reg); err != nil {
		return nil, err
	}
	undo = append(undo, func() { _ = a.backend.close() })
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
	undo = append(undo, func() { _ = a.shadow.close() })
	handlers, err := registry(deps)
	if err != nil {
		return nil, err
	}
	live := routes.NewLive(nil)
	// The watcher first: its baseline read comes before the table main
	// starts with, so no edit can fall between the two unseen.
	a.watcher, err = routes.NewWatcher(routes.WatchOptions{
		Path: path, Registry: handlers, Live: live, Logger: log, Registerer: reg, Reload: hup,
	})
	if err != nil {
		return nil, err
	}
	table, err := routes.Load(path, handlers)
	if err != nil {
		return nil, err
	}
	live.Store(table)

	a.front, err = proxy.New(a.shadow.options(proxy.Options{
		Config: c.Proxy, Live: live, Legacy: a.fwd,
		Logger: log.Named("proxy"), AccessLog: access, Registerer: reg,
	}))
	if err != nil {
		return nil, err
	}
	a.admin, err = proxy.NewAdmin(proxy.AdminOptions{
		Registry: reg,
		Live:     live,
		Checks:   append([]proxy.Check{{Name: "legacy", Fn: a.fwd.Ping}}, a.backend.checks()...),
		Routes:   a.backend.adminRoutes(),
		Logger:   log.Named("admin"),
		// The migration report and the route re-enable action.
		Front: a.front,
		Token: c.Proxy.AdminToken,
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

	// Every goroutine reports on a.done; wait collects all of them.
	var bgCtx context.Context
	bgCtx, a.stopBackground = context.WithCancel(context.Background())
	go func() { a.done <- result{"proxy", a.front.Serve(a.ln)} }()
	go func() { a.done <- result{"admin", a.admin.Serve(a.aln)} }()
	go func() { a.done <- result{"routes watcher", a.watcher.Run(bgCtx)} }()
	go func() { a.done <- result{"hotcache refresher", a.backend.cache.Run(bgCtx)} }()
	go func() { a.done <- result{"legacy health checks", a.fwd.Run(bgCtx)} }()

	log.Info("started",
		zap.String("listen", a.ln.Addr().String()),
		zap.String("admin_listen", a.aln.Addr().String()),
		zap.String("upstream", c.Legacy.Summary()),
		zap.String("routes", routeSummary(table)),
		zap.String("events", deliverySummary(c)),
		zap.String("hotcache", c.HotCache.Source),
		zap.String("version", version()),
	)
	return a, nil
}

// wait serves until ctx ends (a signal) or a component stops on its own,
// then shuts everything down: readiness fails first so load balancers stop
// sending, the front door drains within server.shutdown_timeout, then the
// watcher, the hot-cache refresher and the admin server stop. Only then,
// with no request left that could publish, the spool flushes to Kafka and
// closes, then the producer, then the legacy forwarder.
func (a *app) wait(ctx context.Context) int {
	code := exitOK
	pending := cap(a.done)
	select {
	case <-ctx.Done():
		a.log.Info("shutting down", zap.Duration("shutdown_timeout", a.cfg.Proxy.Server.ShutdownTimeout))
	case r := <-a.done:
		pending--
		a.log.Error("stopped unexpectedly; shutting down", zap.String("component", r.what), zap.Error(r.err))
		code = exitFailure
	}

	a.admin.Drain()
	if err := a.front.Shutdown(context.Background()); err != nil {
		a.log.Error("front door shutdown", zap.Error(err))
		code = exitFailure
	}
	a.stopBackground()
	actx, cancel := context.WithTimeout(context.Background(), adminShutdownTimeout)
	defer cancel()
	if err := a.admin.Shutdown(actx); err != nil {
		a.log.Warn("admin shutdown", zap.Error(err))
	}
	for ; pending > 0; pending-- {
		if r := <-a.done; r.err != nil && !errors.Is(r.err, net.ErrClosed) {
			a.log.Error("stopped with an error", zap.String("component", r.what), zap.Error(r.err))
			code = exitFailure
		}
	}
	if err := a.backend.close(); err != nil {
		a.log.Error("close event delivery", zap.Error(err))
		code = exitFailure
	}
	// The front door's Shutdown drained the shadow pool.
	if err := a.shadow.close(); err != nil {
		a.log.Error("close shadow side", zap.Error(err))
		code = exitFailure
	}
	a.fwd.Close()
	a.log.Info("stopped", zap.Int("exit_code", code))
	return code
}
