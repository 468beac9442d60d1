package legacy

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap/zaptest"
)

// testPool is a pool of n backends (weights as given, 1 when nil) that
// nothing dials.
func testPool(t *testing.T, weights []int, ej EjectionConfig) *pool {
	t.Helper()
	cfg := Config{Ejection: ej}
	for i, w := range weights {
		cfg.Upstreams = append(cfg.Upstreams, Backend{URL: "http://10.0.0." + strconv.Itoa(i+1) + ":80", Weight: w})
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := newPool(cfg, nil, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	return p
}

// picks counts which backend pick chose, n times, with no request finishing.
func picks(p *pool, n int, hold bool) []int {
	got := make([]int, len(p.backends))
	for range n {
		b := p.pick()
		got[b.i]++
		if hold {
			b.outstanding.Add(1)
		}
	}
	return got
}

func TestPickFollowsWeightsAtNoLoad(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
	}{
		{"equal", []int{1, 1, 1}},
		{"weighted", []int{1, 2, 5}},
		{"two", []int{3, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPool(t, tt.weights, EjectionConfig{})
			const n = 40000
			got := picks(p, n, false)
			sum := 0
			for _, w := range tt.weights {
				sum += w
			}
			for i, w := range tt.weights {
				want := n * w / sum
				// Binomial: the standard deviation is under 100 here; 5 %
				// of n is many deviations away.
				if d := got[i] - want; d > n/20 || d < -n/20 {
					t.Errorf("backend %d (weight %d): %d of %d picks, want about %d", i, w, got[i], n, want)
				}
			}
		})
	}
}

// TestPickLeastOutstanding: with requests held open, the outstanding counts
// stay within one request per weight unit of each other.
func TestPickLeastOutstanding(t *testing.T) {
	p := testPool(t, []int{1, 1, 2}, EjectionConfig{})
	picks(p, 4000, true)
	a, b, c := p.backends[0].outstanding.Load(), p.backends[1].outstanding.Load(), p.backends[2].outstanding.Load()
	// Power of two choices keeps the spread small, not zero: allow 5 %.
	if abs(a-b) > 50 || abs(2*a-c) > 100 {
		t.Errorf("outstanding %d, %d, %d: want about 1000, 1000, 2000", a, b, c)
	}
	// A backend far busier than the others gets nothing new.
	p.backends[0].outstanding.Add(10000)
	if got := picks(p, 1000, false); got[0] != 0 {
		t.Errorf("the busiest backend got %d of 1000 new requests", got[0])
	}
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestPickSkipsUnusable(t *testing.T) {
	p := testPool(t, []int{1, 1, 1}, EjectionConfig{})
	p.backends[0].ejected.Store(true)
	p.backends[1].healthy.Store(false)
	if got := picks(p, 1000, false); got[2] != 1000 {
		t.Errorf("picks %v: want every one on the only usable backend", got)
	}
	// None usable: one not ejected (the health checks may be wrong).
	p.backends[2].healthy.Store(false)
	if got := picks(p, 100, false); got[1]+got[2] != 100 {
		t.Errorf("picks %v: want none on the ejected backend", got)
	}
	// fallback leaves out what was tried.
	if b := p.fallback([]*backend{p.backends[1], p.backends[2]}); b != p.backends[0] {
		t.Errorf("fallback after trying 1 and 2 = %v, want backend 0", b)
	}
	if b := p.fallback(p.backends); b != nil {
		t.Errorf("fallback after trying all = %v, want nil", b.addr)
	}
}

func TestEjectionCap(t *testing.T) {
	tests := []struct {
		backends, percent, want int
	}{
		{1, 100, 0}, // never the lone backend
		{2, 50, 1},
		{2, 100, 1}, // never all
		{3, 50, 1},
		{3, 10, 1}, // at least one of several
		{10, 30, 3},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.backends)+"/"+strconv.Itoa(tt.percent), func(t *testing.T) {
			p := testPool(t, make([]int, tt.backends), EjectionConfig{ConsecutiveFailures: 2, MaxPercent: tt.percent})
			for _, b := range p.backends {
				for range 3 {
					p.observe(b, true)
				}
			}
			n := 0
			for _, b := range p.backends {
				if b.ejected.Load() {
					n++
				}
			}
			if n != tt.want {
				t.Errorf("%d ejected, want %d", n, tt.want)
			}
		})
	}
}

func TestEjectionAndReadmission(t *testing.T) {
	p := testPool(t, []int{1, 1, 1}, EjectionConfig{ConsecutiveFailures: 3, BaseTime: 20 * time.Millisecond, MaxTime: time.Second})
	b := p.backends[1]
	p.observe(b, true)
	p.observe(b, true)
	p.observe(b, false) // a success in between resets the count
	p.observe(b, true)
	p.observe(b, true)
	if b.ejected.Load() {
		t.Fatal("ejected after two failures in a row")
	}
	p.observe(b, true)
	if !b.ejected.Load() || value(t, b.ejectionsTotal) != 1 || value(t, b.errors) != 5 {
		t.Fatalf("ejected=%v ejections=%v errors=%v after three in a row, want true, 1, 5",
			b.ejected.Load(), value(t, b.ejectionsTotal), value(t, b.errors))
	}
	waitFor(t, "the ejection to end", func() bool { return !b.ejected.Load() })
	if b.fails.Load() != 0 {
		t.Errorf("fails = %d after readmission, want 0", b.fails.Load())
	}

	// A health check that turns an unhealthy, ejected backend healthy
	// readmits it early.
	p.ej.BaseTime, p.ej.MaxTime = time.Hour, time.Hour
	b.healthy.Store(false)
	b.checked.Store(true)
	for range 3 {
		p.observe(b, true)
	}
	if !b.ejected.Load() {
		t.Fatal("not ejected again")
	}
	for range p.health.HealthyAfter {
		p.report(b, nil)
	}
	if !b.healthy.Load() || b.ejected.Load() {
		t.Errorf("healthy=%v ejected=%v after passing checks, want true, false", b.healthy.Load(), b.ejected.Load())
	}
}

func TestEjectionTime(t *testing.T) {
	c := EjectionConfig{BaseTime: 10 * time.Second, MaxTime: 35 * time.Second}
	t0 := time.Unix(1e9, 0)
	tests := []struct {
		name       string
		prev       int
		readmitted time.Time
		wantN      int
		want       time.Duration
	}{
		{"first", 0, time.Time{}, 1, 10 * time.Second},
		{"again at once", 1, t0, 2, 20 * time.Second},
		{"third", 2, t0, 3, 30 * time.Second},
		{"capped", 3, t0, 4, 35 * time.Second},
		{"count capped", 40, t0, 4, 35 * time.Second},
		{"after two base times in service", 3, t0.Add(-25 * time.Second), 2, 20 * time.Second},
		{"long in service", 3, t0.Add(-time.Hour), 1, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, d := ejectionTime(c, tt.prev, tt.readmitted, t0)
			if n != tt.wantN || d != tt.want {
				t.Errorf("ejectionTime = %d, %s; want %d, %s", n, d, tt.wantN, tt.want)
			}
		})
	}
}

func TestHealthReport(t *testing.T) {
	p := testPool(t, []int{1, 1}, EjectionConfig{})
	p.health.HealthyAfter, p.health.UnhealthyAfter = 2, 3
	b := p.backends[0]
	down := errors.New("down")
	steps := []struct {
		err  error
		want bool
	}{
		{down, false}, // the first check decides at once
		{nil, false},
		{nil, true}, // healthy_after
		{down, true},
		{down, true},
		{nil, true}, // a pass breaks the streak
		{down, true},
		{down, true},
		{down, false}, // unhealthy_after
	}
	for i, s := range steps {
		p.report(b, s.err)
		if got := b.healthy.Load(); got != s.want {
			t.Fatalf("after check %d (%v): healthy=%v, want %v", i+1, s.err, got, s.want)
		}
	}
}

// namedUpstream answers every request 200 with its name.
func namedUpstream(t *testing.T, name string) string {
	return fastUpstream(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(name) })
}

func poolConfig(addrs ...string) Config {
	c := testConfig(addrs[0])
	c.Upstream = ""
	for _, a := range addrs {
		c.Upstreams = append(c.Upstreams, Backend{URL: "http://" + a})
	}
	return c
}

// TestFailover: a backend that refuses connections costs no client an
// error, whatever the method (nothing was sent: a POST's body reaches the
// next backend whole), and is ejected.
func TestFailover(t *testing.T) {
	echo := func(name string) string {
		return fastUpstream(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(name + string(ctx.Request.Body())) })
	}
	cfg := poolConfig(echo("a"), closedPort(t), echo("c"))
	cfg.Ejection.ConsecutiveFailures = 3
	fwd, _ := newTestForwarder(t, cfg)
	fr := startFront(t, fwd, nil)
	cl := dial(t, fr.addr)
	seen := map[string]int{}
	for i := range 60 {
		req := "GET /x HTTP/1.1\r\nHost: h\r\n\r\n"
		if i%2 == 1 {
			req = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
		}
		head, body := cl.do(t, req, false)
		if status(t, head) != 200 {
			t.Fatalf("request %d: %q", i, head)
		}
		if i%2 == 1 && !strings.HasSuffix(string(body), "hello") {
			t.Fatalf("POST %d: backend got %q, want the whole body", i, body)
		}
		seen[string(body[:1])]++
	}
	if seen["a"] == 0 || seen["c"] == 0 {
		t.Errorf("answers by backend: %v, want both live ones", seen)
	}
	dead := fwd.pool.backends[1]
	if !dead.ejected.Load() || value(t, dead.errors) < 3 || value(t, fwd.metrics.retries) < 3 {
		t.Errorf("dead backend: ejected=%v errors=%v, retries=%v; want ejected after 3 errors, each retried",
			dead.ejected.Load(), value(t, dead.errors), value(t, fwd.metrics.retries))
	}
	if got := counter(t, fwd, "dial"); got != 0 {
		t.Errorf("dial errors reaching clients = %v, want 0", got)
	}
}

// TestRetryElsewhere: a backend that reads a request and closes the new
// connection without answering. An idempotent request goes to the other
// backend; a POST is not sent again (it may have run).
func TestRetryElsewhere(t *testing.T) {
	var dropped atomic.Int32
	dropper := rawServer(t, func(c net.Conn) {
		serveUntil(c, func([]byte) bool { dropped.Add(1); return true })
	})
	cfg := poolConfig(dropper, namedUpstream(t, "ok"))
	cfg.Ejection.ConsecutiveFailures = 1000
	fwd, _ := newTestForwarder(t, cfg)
	fr := startFront(t, fwd, nil)
	for i := 0; dropped.Load() < 3; i++ {
		if i == 200 {
			t.Fatal("200 GETs and the dropping backend got fewer than 3")
		}
		head, body := dial(t, fr.addr).do(t, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n", false)
		if status(t, head) != 200 || string(body) != "ok" {
			t.Fatalf("GET: %q %q, want 200 from the other backend", head, body)
		}
	}
	for range 20 {
		head, body := dial(t, fr.addr).do(t, "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", false)
		switch status(t, head) {
		case 200:
		case 502:
			if err := fr.lastErr(t); !errors.Is(err, ErrUpstreamUnreachable) {
				t.Fatalf("POST: Serve = %v", err)
			}
			return
		default:
			t.Fatalf("POST: %q %q", head, body)
		}
	}
	t.Fatal("no POST reached the dropping backend in 20 tries")
}

// TestStickyCookie: the first answer names its backend in the cookie; a
// request carrying it goes there; a cookie naming a backend that is gone
// is replaced. Without sticky_cookie nothing is set.
func TestStickyCookie(t *testing.T) {
	cfg := poolConfig(namedUpstream(t, "a"), namedUpstream(t, "b"), namedUpstream(t, "c"))
	cfg.StickyCookie = "SRV"
	fwd, _ := newTestForwarder(t, cfg)
	fr := startFront(t, fwd, nil)
	cl := dial(t, fr.addr)

	head, first := cl.do(t, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", false)
	v, ok := headField([]byte(head), "Set-Cookie")
	if !ok || !strings.HasPrefix(v, "SRV=") || !strings.HasSuffix(v, "; Path=/; HttpOnly; SameSite=Lax") {
		t.Fatalf("first answer: %q, want a SRV cookie", head)
	}
	cookie, _, _ := strings.Cut(v, ";")
	for range 20 {
		head, body := cl.do(t, "GET / HTTP/1.1\r\nHost: h\r\nCookie: x=1; "+cookie+"\r\n\r\n", false)
		if string(body) != string(first) {
			t.Fatalf("with %s: answered by %q, want %q", cookie, body, first)
		}
		if _, ok := headField([]byte(head), "Set-Cookie"); ok {
			t.Fatalf("with a valid cookie: %q sets another", head)
		}
	}
	// Its backend ejected: another answers and the cookie moves.
	for _, b := range fwd.pool.backends {
		if "SRV="+b.id == cookie {
			b.ejected.Store(true)
		}
	}
	head, body := cl.do(t, "GET / HTTP/1.1\r\nHost: h\r\nCookie: "+cookie+"\r\n\r\n", false)
	if v, _ := headField([]byte(head), "Set-Cookie"); string(body) == string(first) || !strings.HasPrefix(v, "SRV=") || strings.HasPrefix(v, cookie+";") {
		t.Errorf("cookie's backend ejected: %q %q, want another backend and a new cookie", head, body)
	}

	// The shadow engine's view: no cookie in an observed answer, nor from a
	// derived forwarder.
	der, err := fwd.Derive(cfg, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(der.Close)
	for name, serve := range map[string]func(*fasthttp.RequestCtx) error{
		"observed": func(ctx *fasthttp.RequestCtx) error { _, err := fwd.ServeObserved(ctx, discardObserver{}); return err },
		"derived":  der.Serve,
	} {
		fr := startFrontFunc(t, serve)
		head, _ := dial(t, fr).do(t, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", false)
		if _, ok := headField([]byte(head), "Set-Cookie"); ok || status(t, head) != 200 {
			t.Errorf("%s: %q, want 200 without a cookie", name, head)
		}
	}
}

type discardObserver struct{}

func (discardObserver) ObserveBody([]byte) {}
func (discardObserver) BodyDone(bool)      {}

// startFrontFunc serves h like startFront serves a forwarder.
func startFrontFunc(t *testing.T, h func(*fasthttp.RequestCtx) error) string {
	t.Helper()
	return serve(t, frontServer(func(ctx *fasthttp.RequestCtx) {
		if err := h(ctx); err != nil {
			ctx.SetStatusCode(statusOf(err))
		}
	}))
}

// TestDeriveSharesState: a derived forwarder sees the owner's ejections
// and counts its requests on the same backends.
func TestDeriveSharesState(t *testing.T) {
	cfg := poolConfig(namedUpstream(t, "a"), namedUpstream(t, "b"))
	fwd, reg := newTestForwarder(t, cfg)
	sh := cfg
	sh.Timeout, sh.MaxConns = time.Second, 2
	der, err := fwd.Derive(sh, zaptest.NewLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(der.Close)
	fwd.pool.backends[0].ejected.Store(true)
	fr := startFrontFunc(t, der.Serve)
	for range 10 {
		if _, body := dial(t, fr).do(t, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", false); string(body) != "b" {
			t.Fatalf("derived forwarder answered by %q, want b (a is ejected)", body)
		}
	}
	if got := gatherValue(t, reg, "strangler_upstream_backend_requests_total", fwd.pool.backends[1].addr); got != 10 {
		t.Errorf("requests on b in the owner's registry = %v, want 10", got)
	}
	if der.cfg.MaxConns != 2 || der.clients[0].MaxConns != 2 {
		t.Errorf("derived max_conns = %d, want its own 2", der.clients[0].MaxConns)
	}
}

// TestHealthChecks: Run marks a backend whose health path fails unhealthy,
// steers around it, and Ping fails once none is healthy.
func TestHealthChecks(t *testing.T) {
	var sick atomic.Bool
	up := func(name string) string {
		return fastUpstream(t, func(ctx *fasthttp.RequestCtx) {
			if string(ctx.Path()) == "/healthz" && (name == "a" && sick.Load()) {
				ctx.SetStatusCode(503)
				return
			}
			if string(ctx.Path()) == "/healthz" && string(ctx.Host()) != "health.internal" {
				ctx.SetStatusCode(400)
				return
			}
			ctx.SetBodyString(name)
		})
	}
	cfg := poolConfig(up("a"), up("b"))
	cfg.Health = HealthConfig{Path: "/healthz", Host: "health.internal", Interval: 20 * time.Millisecond, HealthyAfter: 2, UnhealthyAfter: 2}
	fwd, reg := newTestForwarder(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fwd.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	a, b := fwd.pool.backends[0], fwd.pool.backends[1]
	waitFor(t, "the first checks", func() bool { return a.checked.Load() && b.checked.Load() })
	if !a.healthy.Load() || !b.healthy.Load() {
		t.Fatalf("healthy a=%v b=%v, want both", a.healthy.Load(), b.healthy.Load())
	}
	if err := fwd.Run(ctx); !errors.Is(err, errAlreadyRunning) {
		t.Errorf("second Run = %v, want errAlreadyRunning", err)
	}

	sick.Store(true)
	waitFor(t, "a to turn unhealthy", func() bool { return !a.healthy.Load() })
	if got := gatherValue(t, reg, "strangler_upstream_backend_healthy", a.addr); got != 0 {
		t.Errorf("healthy gauge of a = %v, want 0", got)
	}
	fr := startFront(t, fwd, nil)
	for range 10 {
		if _, body := dial(t, fr.addr).do(t, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", false); string(body) != "b" {
			t.Fatalf("answered by %q while a is unhealthy", body)
		}
	}
	if err := fwd.Ping(context.Background()); err != nil {
		t.Errorf("Ping with b healthy: %v", err)
	}
	b.healthy.Store(false) // as if b failed too
	if err := fwd.Ping(context.Background()); !errors.Is(err, ErrUpstreamUnreachable) {
		t.Errorf("Ping with no healthy backend = %v, want ErrUpstreamUnreachable", err)
	}
	b.healthy.Store(true)
	sick.Store(false)
	waitFor(t, "a to recover", func() bool { return a.healthy.Load() })
}

// gatherValue is the value of the series name{backend=backend} in reg.
func gatherValue(t *testing.T, reg *prometheus.Registry, name, backend string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelIs(m, "backend", backend) {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no %s{backend=%q}", name, backend)
	return 0
}

func labelIs(m *dto.Metric, k, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == k && l.GetValue() == v {
			return true
		}
	}
	return false
}

// TestStickyCookieFailover: a cookie naming a backend that refuses the
// connection (not yet known to be down): the request goes to another
// backend and its answer moves the cookie there.
func TestStickyCookieFailover(t *testing.T) {
	cfg := poolConfig(namedUpstream(t, "a"), closedPort(t))
	cfg.StickyCookie = "SRV"
	fwd, _ := newTestForwarder(t, cfg)
	fr := startFront(t, fwd, nil)
	dead := fwd.pool.backends[1]
	head, body := dial(t, fr.addr).do(t, "GET / HTTP/1.1\r\nHost: h\r\nCookie: SRV="+dead.id+"\r\n\r\n", false)
	v, _ := headField([]byte(head), "Set-Cookie")
	if status(t, head) != 200 || string(body) != "a" || !strings.HasPrefix(v, "SRV="+fwd.pool.backends[0].id+";") {
		t.Errorf("cookie of a backend that refuses: %q %q, want a's answer and a cookie naming a", head, body)
	}
}

// TestEjectionOn5xx: answers of status 5xx count against their backend
// like connection failures: past consecutive_failures it is ejected and
// the others take its requests. The 5xx answers themselves reach the
// client unchanged (the request reached PHP: never retried).
func TestEjectionOn5xx(t *testing.T) {
	sick := fastUpstream(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString("sick")
	})
	cfg := poolConfig(sick, namedUpstream(t, "b"))
	cfg.Ejection.ConsecutiveFailures = 3
	fwd, _ := newTestForwarder(t, cfg)
	fr := startFront(t, fwd, nil)
	cl := dial(t, fr.addr)
	a := fwd.pool.backends[0]
	for i := 0; !a.ejected.Load(); i++ {
		if i == 200 {
			t.Fatalf("200 requests and the 503 backend is not ejected (errors %v)", value(t, a.errors))
		}
		head, body := cl.do(t, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", false)
		if s := status(t, head); !(s == 503 && string(body) == "sick" || s == 200 && string(body) == "b") {
			t.Fatalf("got %q %q", head, body)
		}
	}
	if value(t, a.errors) != 3 || value(t, a.ejectionsTotal) != 1 {
		t.Errorf("errors %v, ejections %v; want 3 and 1", value(t, a.errors), value(t, a.ejectionsTotal))
	}
	for range 20 {
		if _, body := cl.do(t, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", false); string(body) != "b" {
			t.Fatalf("answered by %q while the 503 backend is ejected", body)
		}
	}
}
