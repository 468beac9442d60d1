package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/routes"
)

// Check is one readiness condition: Fn returns nil when the component is
// ready. Components add theirs (legacy upstream, spool, hot cache...) when
// main builds the admin server.
type Check struct {
	Name string
	Fn   func(context.Context) error
}

// AdminOptions are what NewAdmin needs.
type AdminOptions struct {
	// Registry is exported on /metrics. NewAdmin adds the Go runtime and
	// process collectors to it. Required.
	Registry *prometheus.Registry
	// Live is the route table shown on /routes. Required.
	Live *routes.Live
	// Checks run on every /readyz, concurrently.
	Checks []Check
	// CheckTimeout bounds each check. Zero means 2s.
	CheckTimeout time.Duration
	// Logger receives the admin server's own errors. Nil means none.
	Logger *zap.Logger
}

// Admin is the operator's listener: /metrics, /healthz, /readyz, /routes.
// It is plain net/http: low traffic, and promhttp speaks net/http.
type Admin struct {
	srv      *http.Server
	checks   []Check
	timeout  time.Duration
	live     *routes.Live
	draining atomic.Bool
}

// Admin server timeouts: generous for a scrape, short enough that a stuck
// client cannot hold a connection forever.
const (
	adminReadHeaderTimeout = 5 * time.Second
	adminReadTimeout       = 10 * time.Second
	adminWriteTimeout      = 30 * time.Second
	adminIdleTimeout       = 60 * time.Second
	defaultCheckTimeout    = 2 * time.Second
)

// NewAdmin builds the admin server; it opens no socket.
func NewAdmin(o AdminOptions) (*Admin, error) {
	if o.Registry == nil || o.Live == nil {
		return nil, errors.New("admin: Registry and Live are required")
	}
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := o.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("register runtime metrics: %w", err)
		}
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	a := &Admin{checks: o.Checks, timeout: o.CheckTimeout, live: o.Live}
	if a.timeout <= 0 {
		a.timeout = defaultCheckTimeout
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{
		ErrorLog:          zap.NewStdLog(log),
		Registry:          o.Registry, // counts scrape errors
		Timeout:           adminWriteTimeout - time.Second,
		EnableOpenMetrics: true,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.HandleFunc("GET /routes", a.routes)
	a.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: adminReadHeaderTimeout,
		ReadTimeout:       adminReadTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       adminIdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(log),
	}
	return a, nil
}

// Serve answers connections from ln until Shutdown; it returns nil then.
func (a *Admin) Serve(ln net.Listener) error {
	if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// Drain makes /readyz answer 503 from now on, so a load balancer stops
// sending traffic while the front door finishes what it has.
func (a *Admin) Drain() { a.draining.Store(true) }

// Shutdown stops the admin server, waiting for open requests until ctx ends.
func (a *Admin) Shutdown(ctx context.Context) error {
	if err := a.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("admin shutdown: %w", err)
	}
	return nil
}

// CheckResult is one check's outcome in the /readyz body.
type CheckResult struct {
	Name       string  `json:"name"`
	OK         bool    `json:"ok"`
	Error      string  `json:"error,omitempty"`
	DurationMS float64 `json:"duration_ms"`
}

// Readiness is the /readyz body.
type Readiness struct {
	Status string        `json:"status"` // "ready" | "not ready" | "draining"
	Checks []CheckResult `json:"checks"`
}

func (a *Admin) readyz(w http.ResponseWriter, r *http.Request) {
	res := Readiness{Status: "ready", Checks: a.runChecks(r.Context())}
	for _, c := range res.Checks {
		if !c.OK {
			res.Status = "not ready"
		}
	}
	if a.draining.Load() {
		res.Status = "draining"
	}
	code := http.StatusOK
	if res.Status != "ready" {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, res)
}

// runChecks runs every check at once, each under its own timeout, and
// returns when all have answered.
func (a *Admin) runChecks(ctx context.Context) []CheckResult {
	out := make([]CheckResult, len(a.checks))
	var wg sync.WaitGroup
	for i, c := range a.checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, a.timeout)
			defer cancel()
			start := time.Now()
			err := c.Fn(cctx)
			out[i] = CheckResult{Name: c.Name, OK: err == nil, DurationMS: float64(time.Since(start).Microseconds()) / 1000}
			if err != nil {
				out[i].Error = err.Error()
			}
		})
	}
	wg.Wait()
	return out
}

// RouteTable is the /routes body: the live table as routes describes it.
type RouteTable struct {
	AllLegacy bool               `json:"all_legacy"`
	Routes    []routes.RouteInfo `json:"routes"`
}

func (a *Admin) routes(w http.ResponseWriter, _ *http.Request) {
	t := a.live.Load() // one snapshot, so both fields agree
	writeJSON(w, http.StatusOK, RouteTable{AllLegacy: t.AllLegacy(), Routes: t.Describe()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the status is sent; a failed write is the client's loss
}
