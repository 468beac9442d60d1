package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/strangler-proxy/strangler/ported/kafka/kafkatest"
	"github.com/strangler-proxy/strangler/proxy/control"
	"github.com/strangler-proxy/strangler/routes"
)

func TestMain(m *testing.M) {
	// fasthttp's worker-pool cleaner checks its stop channel only between
	// sleeps of MaxIdleWorkerDuration (10s), so it outlives Serve by up to
	// that long; it is fasthttp's goroutine, not one of ours.
	goleak.VerifyTestMain(m, append(kafkatest.LeakOptions(),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		// The legacy forwarder's idle-connection cleaner sleeps until its
		// connections expire; fasthttp gives no way to stop it.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		// Process-wide, never stopped: the Date-header clock of a server
		// that sets Date (the stand-in monolith) and the default dialer's
		// address cache.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
	)...)
}

// harness is one front door and its control plane on an in-memory
// listener, with observed logs and its own metrics registry.
type harness struct {
	srv    *Server
	plane  *control.Plane
	ln     *fasthttputil.InmemoryListener
	logs   *jsonLog // error and fasthttp lines, Debug and up
	access *jsonLog // access lines
	reg    *prometheus.Registry
	served chan error
}

type harnessOptions struct {
	cfg    Config
	legacy routes.Handler // nil: answers 200 "legacy"
	routes []routes.RouteConfig
	reg    routes.Registry
	// mod changes the Options before New (clock, published events...).
	mod func(*Options)
	// plane changes the control plane's Options (shadow registry...). The
	// legacy handler is the shadow side's legacy (ShadowLegacy) unless it
	// sets another.
	plane func(*control.Options)
}

func legacyOK() routes.Handler {
	return routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		ctx.SetStatusCode(200)
		ctx.SetBodyString("legacy")
		return nil
	})
}

func compile(t testing.TB, rcs []routes.RouteConfig, allLegacy bool, reg routes.Registry) *routes.Table {
	t.Helper()
	tab, err := routes.Compile(routes.Config{AllLegacy: allLegacy, Routes: rcs}, reg)
	if err != nil {
		t.Fatalf("compile routes: %v", err)
	}
	return tab
}

func newHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	if o.legacy == nil {
		o.legacy = legacyOK()
	}
	logs, access := &jsonLog{}, &jsonLog{}
	h := &harness{
		ln:     fasthttputil.NewInmemoryListener(),
		logs:   logs,
		access: access,
		reg:    prometheus.NewRegistry(),
		served: make(chan error, 1),
	}
	copts := control.Options{
		Registerer:     h.reg,
		Logger:         logs.logger(zapcore.DebugLevel),
		BudgetInterval: o.cfg.Shadow.BudgetInterval,
		ShadowLegacy:   o.legacy,
	}
	if o.plane != nil {
		o.plane(&copts)
	}
	plane, err := control.New(copts)
	if err != nil {
		t.Fatal(err)
	}
	h.plane = plane
	h.publish(t, compile(t, o.routes, false, o.reg))
	opts := Options{
		Config:     o.cfg,
		Plane:      plane,
		Legacy:     o.legacy,
		Logger:     logs.logger(zapcore.DebugLevel),
		AccessLog:  access,
		Registerer: h.reg,
	}
	if o.mod != nil {
		o.mod(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	pctx, stopPlane := context.WithCancel(context.Background())
	planeDone := make(chan error, 1)
	go func() { planeDone <- plane.Run(pctx) }()
	go func() { h.served <- srv.Serve(h.ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-h.served; err != nil {
			t.Errorf("serve: %v", err)
		}
		stopPlane()
		if err := <-planeDone; err != nil {
			t.Errorf("budget watcher: %v", err)
		}
		if err := plane.Close(); err != nil {
			t.Errorf("close control plane: %v", err)
		}
	})
	return h
}

// emptyPlane is a control plane serving an empty table (everything to
// legacy), for front doors built without the harness.
func emptyPlane(t testing.TB) *control.Plane {
	t.Helper()
	p, err := control.New(control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// publish makes tab the table in force, through the control plane.
func (h *harness) publish(t testing.TB, tab *routes.Table) {
	t.Helper()
	if err := h.plane.Publish(tab); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// jsonLog collects what a production-style JSON zap core writes, so tests
// see the lines exactly as an operator would.
type jsonLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *jsonLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *jsonLog) Sync() error { return nil }

func (l *jsonLog) logger(level zapcore.Level) *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return zap.New(zapcore.NewCore(enc, l, level))
}

// text is everything logged so far.
func (l *jsonLog) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// take returns the lines logged since the last take, decoded, and forgets
// them.
func (l *jsonLog) take(t testing.TB) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(l.buf.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %s: %v", line, err)
		}
		out = append(out, m)
	}
	l.buf.Reset()
	return out
}

// rawResponse is a response as it crossed the wire.
type rawResponse struct {
	status int
	lines  []string // header lines as received, without CRLF
	body   string
}

// header returns the first value of name (case-insensitive) and whether
// there was one.
func (r *rawResponse) header(name string) (string, bool) {
	for _, l := range r.lines {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

func readResponse(br *bufio.Reader) (*rawResponse, error) {
	status, err := br.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("status line: %w", err)
	}
	f := strings.Fields(status)
	if len(f) < 2 {
		return nil, fmt.Errorf("status line %q", status)
	}
	r := &rawResponse{}
	if r.status, err = strconv.Atoi(f[1]); err != nil {
		return nil, fmt.Errorf("status line %q", status)
	}
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("header: %w", err)
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			break
		}
		r.lines = append(r.lines, l)
	}
	if r.status < 200 {
		return r, nil
	}
	var body []byte
	if cl, ok := r.header("Content-Length"); ok {
		n, _ := strconv.Atoi(cl)
		body = make([]byte, n)
		_, err = io.ReadFull(br, body)
	} else if te, _ := r.header("Transfer-Encoding"); strings.EqualFold(te, "chunked") {
		body, err = io.ReadAll(httputil.NewChunkedReader(br))
	} else {
		body, err = io.ReadAll(br)
	}
	if err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	r.body = string(body)
	return r, nil
}

// dial opens a client connection with a deadline on everything.
func (h *harness) dial(t testing.TB) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := h.ln.Dial()
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// roundTrip sends raw on a new connection and reads the final response.
func (h *harness) roundTrip(t testing.TB, raw string) *rawResponse {
	t.Helper()
	c, br := h.dial(t)
	errc := make(chan error, 1)
	// Write concurrently: the server may answer (and stop reading) before
	// a large request is fully written.
	go func() { _, err := io.WriteString(c, raw); errc <- err }()
	r, err := readResponse(br)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	c.Close()
	<-errc
	return r
}

func get(path string, headers ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: shop.example\r\n", path)
	for _, l := range headers {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}
