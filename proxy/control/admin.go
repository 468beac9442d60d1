package control

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/internal/promreg"
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
	// Plane is the control plane whose table /routes shows, whose report
	// /shadow serves and whose routes POST /admin/routes/{name}/reenable
	// re-enables. Required.
	Plane *Plane
	// Checks run on every /readyz, concurrently.
	Checks []Check
	// CheckTimeout bounds each check. Zero means 2s.
	CheckTimeout time.Duration
	// Logger receives the admin server's own errors. Nil means none.
	Logger *zap.Logger
	// Token is the bearer token actions require (Config.AdminToken).
	// Empty: actions are allowed only on a loopback listener.
	Token string
	// Routes are other components' endpoints (hot-cache refresh...),
	// mounted as they are. A pattern may not repeat one above.
	Routes []AdminRoute
}

// AdminRoute is a component's endpoint on the admin listener.
type AdminRoute struct {
	// Pattern is an http.ServeMux pattern, e.g. "POST /admin/hotcache/refresh".
	Pattern string
	Handler http.Handler
}

// Admin is the operator's listener: /metrics, /healthz, /readyz, /routes,
// the migration report (/shadow, /shadow.json) and the actions
// (POST /admin/routes/{name}/reenable, components' own). It is plain
// net/http: low traffic, and promhttp speaks net/http.
type Admin struct {
	srv      *http.Server
	checks   []Check
	timeout  time.Duration
	plane    *Plane
	draining atomic.Bool
	token    string
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
	if o.Registry == nil || o.Plane == nil {
		return nil, errors.New("admin: Registry and Plane are required")
	}
	if err := promreg.Register(o.Registry, "runtime",
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	a := &Admin{checks: o.Checks, timeout: o.CheckTimeout, plane: o.Plane, token: o.Token}
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
	mux.Handle("GET /shadow", o.Plane.Report())
	mux.Handle("GET /shadow.json", o.Plane.Report().JSON())
	mux.HandleFunc("POST /admin/routes/{name}/reenable", a.reenable)
	for _, r := range o.Routes {
		if r.Handler != nil {
			r.Handler = a.guardActions(r.Handler) // actions need authorize
		}
		if err := mountRoute(mux, r); err != nil {
			return nil, err
		}
	}
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

// Handler is the admin listener's mux, as Serve answers with it.
func (a *Admin) Handler() http.Handler { return a.srv.Handler }

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
		w.Header().Set("Retry-After", "1") // as every 503 of the proxy's
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
	t := a.plane.Table() // one snapshot, so both fields agree
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

// Reenabled is the body of a successful POST /admin/routes/{name}/reenable.
type Reenabled struct {
	Route string `json:"route"`
	// WasDemoted is false when the route was serving its mode already.
	WasDemoted bool `json:"was_demoted"`
}

// reenable lifts a route's demotion. It is an action: it takes the bearer
// token when one is configured, and is refused off loopback without one.
func (a *Admin) reenable(w http.ResponseWriter, r *http.Request) {
	if msg, code := a.authorize(r); code != 0 {
		writeJSON(w, code, map[string]string{"error": msg})
		return
	}
	name := r.PathValue("name")
	was, err := a.plane.Reenable(name)
	if errors.Is(err, ErrUnknownRoute) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, Reenabled{Route: name, WasDemoted: was})
}

// guardActions wraps a component's admin handler: reads pass, anything else
// must pass authorize first.
func (a *Admin) guardActions(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if msg, code := a.authorize(r); code != 0 {
				writeJSON(w, code, map[string]string{"error": msg})
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// authorize returns why r may not act, with the status, or 0. Every action
// passes it: an unsafe method (RFC 9110 §9.2.1) on any admin endpoint. The
// listener's exposure rule, checked at start, is in proxy/adminguard.go.
func (a *Admin) authorize(r *http.Request) (string, int) {
	if a.token != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		// Hashing first makes the comparison's time independent of the
		// token's length as well as its content.
		gs, ws := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(a.token))
		if !ok || subtle.ConstantTimeCompare(gs[:], ws[:]) != 1 {
			return "a valid bearer token (admin_token) is required", http.StatusUnauthorized
		}
		return "", 0
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if tcp, ok := local.(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		return "admin actions off a loopback admin_listen need admin_token to be configured", http.StatusForbidden
	}
	return "", 0
}

// mountRoute adds r to mux, turning the mux's panic on a bad or repeated
// pattern into an error.
func mountRoute(mux *http.ServeMux, r AdminRoute) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("admin route %q: %v", r.Pattern, p)
		}
	}()
	if r.Handler == nil {
		return fmt.Errorf("admin route %q: nil handler", r.Pattern)
	}
	mux.Handle(r.Pattern, r.Handler)
	return nil
}
