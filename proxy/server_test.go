package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/strangler-proxy/strangler/legacy-passthrough"
	"github.com/strangler-proxy/strangler/routes"
)

// echoHeaders is a legacy stand-in that answers with the request header
// lines it received, in order, one per line.
func echoHeaders() routes.Handler {
	return routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		var b strings.Builder
		for k, v := range ctx.Request.Header.All() {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
		ctx.Response.Header.Set("x-Upstream-CASE", "kept")
		ctx.SetBodyString(b.String())
		return nil
	})
}

func TestFrontDoorAddsNothingAndKeepsHeaderCase(t *testing.T) {
	h := newHarness(t, harnessOptions{legacy: echoHeaders()})
	r := h.roundTrip(t, get("/p", "x-lower: 1", "X-MiXeD-Case: 2", "X-Request-Id: client-id-1"))

	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	for _, name := range []string{"Date", "Server", "Content-Type"} {
		if v, ok := r.header(name); ok {
			t.Errorf("response has %s: %s; the front door must add nothing", name, v)
		}
	}
	if !contains(r.lines, "x-Upstream-CASE: kept") {
		t.Errorf("response header case changed: %q", r.lines)
	}
	if id, _ := r.header(HeaderRequestID); id != "client-id-1" {
		t.Errorf("response X-Request-Id %q, want the client's", id)
	}
	seen := strings.Split(strings.TrimSpace(r.body), "\n")
	for _, want := range []string{"x-lower: 1", "X-MiXeD-Case: 2", "X-Request-Id: client-id-1"} {
		if !contains(seen, want) {
			t.Errorf("upstream did not see %q as sent; saw %q", want, seen)
		}
	}
}

func contains(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

func TestRequestIDReachesUpstreamAndClient(t *testing.T) {
	tests := []struct {
		name string
		give []string
		keep string // "" means a fresh id is expected
	}{
		{"client id kept", []string{"X-Request-Id: abc.123:x_y-z"}, "abc.123:x_y-z"},
		{"no id", nil, ""},
		{"bad id replaced", []string{"X-Request-Id: not ok"}, ""},
	}
	fresh := regexp.MustCompile(`^[0-9a-f]{32}$`)
	h := newHarness(t, harnessOptions{legacy: echoHeaders()})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.roundTrip(t, get("/", tt.give...))
			id, _ := r.header(HeaderRequestID)
			switch {
			case tt.keep != "" && id != tt.keep:
				t.Errorf("id %q, want %q", id, tt.keep)
			case tt.keep == "" && !fresh.MatchString(id):
				t.Errorf("id %q, want a fresh 32-hex id", id)
			}
			if n := strings.Count(r.body, "X-Request-Id: "); n != 1 || !strings.Contains(r.body, "X-Request-Id: "+id+"\n") {
				t.Errorf("upstream saw %d ids, want exactly %q:\n%s", n, id, r.body)
			}
		})
	}
}

func TestDispatch(t *testing.T) {
	ported := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		ctx.SetBodyString("ported")
		return nil
	})
	failing := routes.HandlerFunc(func(*fasthttp.RequestCtx) error { return errors.New("go side broke") })
	// A handler that writes its own error answer (a 503 in its contract's
	// JSON) and says so: the front door keeps it, fallback still applies.
	answering := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		ctx.SetStatusCode(503)
		ctx.SetBodyString(`{"error":"unavailable"}`)
		return answeredErr{}
	})
	reg := routes.Registry{"ported": ported, "failing": failing, "answering": answering}
	none, all := 0.0, 100.0
	rcs := []routes.RouteConfig{
		{Name: "p", Path: "/ported", Mode: routes.ModePorted, Handler: "ported"},
		{Name: "l", Path: "/legacy", Mode: routes.ModeLegacy, Handler: "ported"},
		{Name: "s", Path: "/shadow", Mode: routes.ModeShadow, Handler: "ported"},
		{Name: "sp", Path: "/shadow-go", Mode: routes.ModeShadow, Handler: "ported", Shadow: &routes.ShadowConfig{Primary: routes.SidePorted}},
		{Name: "c", Path: "/canary", Mode: routes.ModeCanary, Handler: "ported", Canary: &routes.CanaryConfig{Percent: &none}},
		{Name: "cg", Path: "/canary-go", Mode: routes.ModeCanary, Handler: "ported", Canary: &routes.CanaryConfig{Percent: &all}},
		{Name: "fb", Path: "/fallback", Mode: routes.ModePorted, Handler: "failing", Fallback: true},
		{Name: "nofb", Path: "/nofallback", Mode: routes.ModePorted, Handler: "failing"},
		{Name: "ans", Path: "/answered", Mode: routes.ModePorted, Handler: "answering"},
		{Name: "ansfb", Path: "/answered-fallback", Mode: routes.ModePorted, Handler: "answering", Fallback: true},
	}
	tests := []struct {
		name, method, path   string
		allLegacy            bool
		status               int
		body                 string
		route, mode, backend string
	}{
		{"unmatched", "GET", "/nowhere", false, 200, "legacy", "_unmatched", "legacy", "legacy"},
		{"ported", "GET", "/ported", false, 200, "ported", "p", "ported", "ported"},
		{"legacy", "GET", "/legacy", false, 200, "legacy", "l", "legacy", "legacy"},
		{"shadow answers from its legacy primary", "GET", "/shadow", false, 200, "legacy", "s", "shadow", "legacy"},
		{"shadow answers from its Go primary", "GET", "/shadow-go", false, 200, "ported", "sp", "shadow", "ported"},
		{"canary at 0 % answers from legacy", "GET", "/canary", false, 200, "legacy", "c", "canary", "legacy"},
		{"canary at 100 % answers from Go", "GET", "/canary-go", false, 200, "ported", "cg", "canary", "ported"},
		{"kill switch", "GET", "/ported", true, 200, "legacy", "p", "legacy", "legacy"},
		{"fallback on a safe method", "GET", "/fallback", false, 200, "legacy", "fb", "ported", "legacy"},
		{"no fallback on POST", "POST", "/fallback", false, 500, "", "fb", "ported", "ported"},
		{"no fallback configured", "GET", "/nofallback", false, 500, "", "nofb", "ported", "ported"},
		{"a handler's own error answer stands", "GET", "/answered", false, 503, `{"error":"unavailable"}`, "ans", "ported", "ported"},
		{"fallback over a handler's own error answer", "GET", "/answered-fallback", false, 200, "legacy", "ansfb", "ported", "legacy"},
	}
	h := newHarness(t, harnessOptions{routes: rcs, reg: reg})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.publish(t, compile(t, rcs, tt.allLegacy, reg))
			h.access.take(t)
			r := h.roundTrip(t, fmt.Sprintf("%s %s HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", tt.method, tt.path))
			if r.status != tt.status || (tt.body != "" && r.body != tt.body) {
				t.Errorf("got %d %q, want %d %q", r.status, r.body, tt.status, tt.body)
			}
			// The access log also carries the shadow routes' mismatch
			// lines (the same unsampled path); count the request lines.
			var lines []map[string]any
			for _, l := range h.access.take(t) {
				if l["msg"] == "request" {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 {
				t.Fatalf("%d access lines, want 1", len(lines))
			}
			f := lines[0]
			if f["route"] != tt.route || f["mode"] != tt.mode || f["backend"] != tt.backend {
				t.Errorf("access line route=%v mode=%v backend=%v, want %s %s %s", f["route"], f["mode"], f["backend"], tt.route, tt.mode, tt.backend)
			}
		})
	}
}

type answeredErr struct{}

func (answeredErr) Error() string  { return "no data" }
func (answeredErr) Answered() bool { return true }

func TestHandlerErrorsBecomeOneStatusBodyAndLogLine(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		level  string
	}{
		{"upstream timeout", fmt.Errorf("forward: %w", legacy.ErrUpstreamTimeout), 504, "error"},
		{"upstream down", fmt.Errorf("forward: %w", legacy.ErrUpstreamUnreachable), 502, "error"},
		{"bad upstream response", legacy.ErrBadUpstreamResponse, 502, "error"},
		{"handler asks for 404", &StatusError{Code: 404}, 404, "debug"},
		{"unknown", errors.New("boom"), 500, "error"},
	}
	var give error
	var mu sync.Mutex
	// The handler starts a response and fails anyway: the front door must
	// not let any of it through.
	h := newHarness(t, harnessOptions{legacy: routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		ctx.Response.Header.Set("X-Half-Written", "1")
		ctx.SetBodyString("partial")
		mu.Lock()
		defer mu.Unlock()
		return give
	})})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			give = tt.err
			mu.Unlock()
			h.logs.take(t)
			r := h.roundTrip(t, get("/x", "X-Request-Id: rid-"+fmt.Sprint(tt.status)))
			id := "rid-" + fmt.Sprint(tt.status)
			wantBody := fmt.Sprintf("%s (request id %s)\n", httpStatusText(tt.status), id)
			if r.status != tt.status || r.body != wantBody {
				t.Errorf("got %d %q, want %d %q", r.status, r.body, tt.status, wantBody)
			}
			if ct, _ := r.header("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q, want text/plain", ct)
			}
			if _, ok := r.header("X-Half-Written"); ok {
				t.Error("the failed handler's header leaked")
			}
			if got, _ := r.header(HeaderRequestID); got != id {
				t.Errorf("X-Request-Id %q, want %q", got, id)
			}
			lines := h.logs.take(t)
			if len(lines) != 1 || lines[0]["msg"] != "request failed" || lines[0]["level"] != tt.level {
				t.Fatalf("log lines %v, want one at %s", lines, tt.level)
			}
			if f := lines[0]; f["request_id"] != id || f["status"] != float64(tt.status) {
				t.Errorf("log fields %v", f)
			}
		})
	}
}

func httpStatusText(code int) string { return fasthttp.StatusMessage(code) }

func TestPanicAnswers500WithRequestID(t *testing.T) {
	boom := routes.HandlerFunc(func(*fasthttp.RequestCtx) error { panic("nil map somewhere") })
	h := newHarness(t, harnessOptions{
		reg:    routes.Registry{"boom": boom},
		routes: []routes.RouteConfig{{Name: "boom", Path: "/boom", Mode: routes.ModePorted, Handler: "boom"}},
	})
	r := h.roundTrip(t, get("/boom"))
	id, _ := r.header(HeaderRequestID)
	if r.status != 500 || id == "" || r.body != "Internal Server Error (request id "+id+")\n" {
		t.Errorf("got %d %q (id %q), want 500 naming the id", r.status, r.body, id)
	}
	if c, _ := r.header("Connection"); c != "close" {
		t.Errorf("Connection %q, want close after a panic", c)
	}
	logs := h.logs.take(t)
	if len(logs) != 1 || logs[0]["msg"] != "handler panicked" || logs[0]["level"] != "error" {
		t.Fatalf("want one Error line for the panic, got %v", logs)
	}
	f := logs[0]
	if f["request_id"] != id || f["panic"] != "nil map somewhere" || !strings.Contains(fmt.Sprint(f["stack"]), "server_test.go") {
		t.Errorf("panic line lacks id, value or stack: %v", f)
	}
	// The server is still up.
	if r := h.roundTrip(t, get("/other")); r.status != 200 {
		t.Errorf("after the panic: %d", r.status)
	}
}

func TestLimits(t *testing.T) {
	// legacy reads the whole body and reports its size; with X-Lose-Chain it
	// wraps the read error without %w, as a careless handler might.
	reader := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		var n int64
		var err error
		if s := ctx.RequestBodyStream(); s != nil {
			n, err = io.Copy(io.Discard, s)
		}
		if err != nil {
			if len(ctx.Request.Header.Peek("X-Lose-Chain")) > 0 {
				return fmt.Errorf("read body: %v", err)
			}
			return fmt.Errorf("read body: %w", err)
		}
		ctx.SetBodyString(fmt.Sprintf("read %d", n))
		return nil
	})
	h := newHarness(t, harnessOptions{legacy: reader, cfg: Config{Server: ServerConfig{MaxBodyBytes: 1024}}})
	chunked := func(size int, extra string) string {
		return "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n" + extra + "\r\n" +
			fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", size, strings.Repeat("c", size))
	}
	tests := []struct {
		name   string
		raw    string
		status int
		body   string // exact body for 2xx, else a required substring
	}{
		{"header line within 8 KiB", get("/", "X-Ok: "+strings.Repeat("a", 7*1024)), 200, "read 0"},
		{"header line over 8 KiB", get("/", "X-Big: "+strings.Repeat("a", 9*1024)), 431, "(request id "},
		{"header block over 32 KiB", get("/", manyHeaders(10, 4000)...), 431, "(request id "},
		{"request line over 8 KiB", get("/" + strings.Repeat("u", 9*1024)), 414, "(request id "},
		{"declared body within the limit", "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 1024\r\n\r\n" + strings.Repeat("d", 1024), 200, "read 1024"},
		// No body follows: the answer must not wait for one.
		{"declared body over the limit", "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 1025\r\n\r\n", 413, "(request id "},
		{"declared body over the limit, HTTP/1.0", "POST /up HTTP/1.0\r\nContent-Length: 1025\r\n\r\n" + strings.Repeat("d", 1025), 413, "(request id "},
		{"chunked body within the limit", chunked(1024, ""), 200, "read 1024"},
		{"chunked body over the limit", chunked(1025, ""), 413, "(request id "},
		{"chunked over, handler loses the chain", chunked(4096, "X-Lose-Chain: 1\r\n"), 413, "(request id "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.roundTrip(t, tt.raw)
			if r.status != tt.status {
				t.Fatalf("status %d %q, want %d", r.status, r.body, tt.status)
			}
			if (tt.status < 300 && r.body != tt.body) || !strings.Contains(r.body, tt.body) {
				t.Errorf("body %q, want %q", r.body, tt.body)
			}
			if tt.status >= 400 {
				id, _ := r.header(HeaderRequestID)
				if id == "" || !strings.Contains(r.body, id) {
					t.Errorf("error answer lacks its request id: %q %q", id, r.body)
				}
				if ct, _ := r.header("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
					t.Errorf("Content-Type %q", ct)
				}
			}
		})
	}
}

// manyHeaders returns n header lines of about size bytes each.
func manyHeaders(n, size int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("X-Many-%d: %s", i, strings.Repeat("b", size))
	}
	return out
}

func TestExpectContinue(t *testing.T) {
	h := newHarness(t, harnessOptions{cfg: Config{Server: ServerConfig{MaxBodyBytes: 1024}}})
	t.Run("within the limit", func(t *testing.T) {
		c, br := h.dial(t)
		_, _ = io.WriteString(c, "POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n")
		r, err := readResponse(br)
		if err != nil || r.status != 100 {
			t.Fatalf("interim %v %v, want 100", r, err)
		}
		_, _ = io.WriteString(c, "0123456789")
		if r, err = readResponse(br); err != nil || r.status != 200 {
			t.Fatalf("final %v %v, want 200", r, err)
		}
	})
	t.Run("over the limit", func(t *testing.T) {
		c, br := h.dial(t)
		_, _ = io.WriteString(c, "POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2048\r\n\r\n")
		r, err := readResponse(br)
		if err != nil || r.status != 413 || !strings.Contains(r.body, "(request id ") {
			t.Fatalf("got %+v %v, want 413 before any body byte", r, err)
		}
	})
}

// A body the client stops sending is the client's failure, not the
// upstream's, whatever error the handler returns for it.
func TestClientBodyFailuresBlameTheClient(t *testing.T) {
	// Like legacy: the body read error is wrapped without a sentinel.
	forward := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		if _, err := io.Copy(io.Discard, ctx.RequestBodyStream()); err != nil {
			return fmt.Errorf("forward: read request body: %w", err)
		}
		ctx.SetBodyString("sent")
		return nil
	})
	h := newHarness(t, harnessOptions{legacy: forward, cfg: Config{Server: ServerConfig{ReadTimeout: 200 * time.Millisecond}}})

	t.Run("silent client gets 408", func(t *testing.T) {
		c, br := h.dial(t)
		// More than the 8 KiB fasthttp reads before the handler runs, so the
		// handler is the one left waiting.
		_, _ = io.WriteString(c, "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 20000\r\n\r\n"+strings.Repeat("b", 9000))
		r, err := readResponse(br)
		if err != nil || r.status != 408 || !strings.Contains(r.body, "(request id ") {
			t.Fatalf("got %+v %v, want 408 with a request id", r, err)
		}
	})
	t.Run("client gone is 499, logged below Error", func(t *testing.T) {
		h.access.take(t)
		h.logs.take(t)
		c, _ := h.dial(t)
		_, _ = io.WriteString(c, "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n")
		time.Sleep(20 * time.Millisecond) // let the handler start reading
		c.Close()
		var lines []map[string]any
		for deadline := time.Now().Add(5 * time.Second); len(lines) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			lines = h.access.take(t)
		}
		if len(lines) != 1 || lines[0]["status"] != float64(499) || lines[0]["bytes_in"] != float64(10) {
			t.Fatalf("access lines %v, want one with status 499 and 10 bytes in", lines)
		}
		if strings.Contains(h.logs.text(), `"level":"error"`) {
			t.Errorf("a client leaving was logged as an error:\n%s", h.logs.text())
		}
	})
}

func TestGracefulShutdownFinishesInFlightRequests(t *testing.T) {
	const n = 8
	entered := make(chan struct{}, n)
	release := make(chan struct{})
	slow := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		entered <- struct{}{}
		<-release
		ctx.SetBodyString("done")
		return nil
	})
	h := newHarness(t, harnessOptions{legacy: slow})

	type result struct {
		r   *rawResponse
		err error
	}
	results := make(chan result, n)
	for range n {
		c, br := h.dial(t)
		if _, err := io.WriteString(c, get("/slow")); err != nil {
			t.Fatal(err)
		}
		go func() {
			r, err := readResponse(br)
			results <- result{r, err}
		}()
	}
	for range n {
		<-entered
	}

	shutdown := make(chan error, 1)
	go func() { shutdown <- h.srv.Shutdown(context.Background()) }()
	// The listener closes first: new connections are refused while the
	// requests already in flight are still running.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := h.ln.Dial()
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting during shutdown")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned (%v) with requests in flight", err)
	default:
	}
	close(release)
	for range n {
		res := <-results
		if res.err != nil || res.r.status != 200 || res.r.body != "done" {
			t.Errorf("in-flight request lost: %+v %v", res.r, res.err)
			continue
		}
		if c, _ := res.r.header("Connection"); c != "close" {
			t.Errorf("Connection %q, want close during shutdown", c)
		}
	}
	if err := <-shutdown; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestShutdownGivesUpAfterTimeout(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	stuck := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		close(entered)
		<-release
		return nil
	})
	h := newHarness(t, harnessOptions{legacy: stuck, cfg: Config{Server: ServerConfig{ShutdownTimeout: 50 * time.Millisecond}}})
	c, br := h.dial(t)
	_, _ = io.WriteString(c, get("/stuck"))
	<-entered
	if err := h.srv.Shutdown(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want a deadline error", err)
	}
	close(release)
	if _, err := readResponse(br); err != nil {
		t.Errorf("the request left running still completes: %v", err)
	}
}

// A signal can arrive between starting Serve's goroutine and Serve itself.
func TestShutdownBeforeServeStopsServe(t *testing.T) {
	srv, err := New(Options{Plane: emptyPlane(t), Legacy: legacyOK()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(fasthttputil.NewInmemoryListener()) }()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve still running after Shutdown")
	}
}

func TestAccessLogLineAndRedaction(t *testing.T) {
	notFound := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		_, _ = io.Copy(io.Discard, ctx.RequestBodyStream())
		return &StatusError{Code: 404}
	})
	h := newHarness(t, harnessOptions{legacy: notFound})
	h.roundTrip(t, "POST /a%2Fb?q=1 HTTP/1.1\r\nHost: Shop.Example\r\nCookie: session=s3cr3t-cookie\r\n"+
		"Authorization: Bearer s3cr3t-token\r\nX-Request-Id: acc-1\r\nContent-Length: 5\r\n\r\nhello")

	lines := h.access.take(t)
	if len(lines) != 1 {
		t.Fatalf("%d access lines, want 1", len(lines))
	}
	f := lines[0]
	want := map[string]any{
		"msg": "request", "request_id": "acc-1", "method": "POST", "host": "Shop.Example", "path": "/a%2Fb?q=1",
		"route": "_unmatched", "mode": "legacy", "backend": "legacy", "status": float64(404),
		"bytes_in": float64(5), "bytes_out": float64(len("Not Found (request id acc-1)\n")),
	}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("access %s = %v (%T), want %v", k, f[k], f[k], v)
		}
	}
	for _, k := range []string{"ts", "duration", "remote"} {
		if _, ok := f[k]; !ok {
			t.Errorf("access line lacks %s", k)
		}
	}
	// The Debug error line logs the headers, redacted.
	logs := h.logs.text()
	if strings.Contains(logs, "s3cr3t") {
		t.Errorf("a secret reached the log:\n%s", logs)
	}
	for _, want := range []string{"Cookie: [redacted]", "Authorization: [redacted]", "X-Request-Id: acc-1"} {
		if !strings.Contains(logs, want) {
			t.Errorf("debug line lacks %q:\n%s", want, logs)
		}
	}
}

func TestParseErrorsAreAnswered(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	r := h.roundTrip(t, "NOT-HTTP\r\n\r\n")
	if r.status != 400 || !strings.Contains(r.body, "(request id ") {
		t.Errorf("got %d %q, want 400 with a request id", r.status, r.body)
	}
	if n := len(h.access.take(t)); n != 1 {
		t.Errorf("%d access lines for an unparsable request, want 1", n)
	}
}

func BenchmarkFrontDoorLegacy(b *testing.B) {
	h := newHarness(b, harnessOptions{})
	c, br := h.dial(b)
	_ = c.SetDeadline(time.Time{})
	req := get("/bench", "X-Request-Id: bench-1")
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := io.WriteString(c, req); err != nil {
			b.Fatal(err)
		}
		if r, err := readResponse(br); err != nil || r.status != 200 {
			b.Fatalf("%v %v", r, err)
		}
	}
}

// Past server.concurrency a connection is answered 503 with Retry-After and
// the standard body, and closed; once a connection closes, its place is
// free again. A 503 a handler asks for carries Retry-After too.
func TestEvery503CarriesRetryAfter(t *testing.T) {
	unavailable := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		if string(ctx.Path()) == "/busy" {
			return &StatusError{Code: 503}
		}
		ctx.SetBodyString("legacy")
		return nil
	})
	h := newHarness(t, harnessOptions{legacy: unavailable, cfg: Config{Server: ServerConfig{Concurrency: 1}}})
	first, br := h.dial(t)
	if _, err := io.WriteString(first, get("/busy")); err != nil {
		t.Fatal(err)
	}
	r, err := readResponse(br)
	if err != nil {
		t.Fatal(err)
	}
	if ra, _ := r.header("Retry-After"); r.status != 503 || ra != "1" || !strings.Contains(r.body, "request id") {
		t.Errorf("handler's 503: %d, Retry-After %q, body %q", r.status, ra, r.body)
	}
	// first stays open (keep-alive): the next connection is one too many.
	r = h.roundTrip(t, get("/"))
	if ra, _ := r.header("Retry-After"); r.status != 503 || ra != "1" || !strings.Contains(r.body, "(request id ") {
		t.Fatalf("connection over the limit: %d, Retry-After %q, body %q", r.status, ra, r.body)
	}
	if c, _ := r.header("Connection"); c != "close" {
		t.Errorf("the refusal keeps the connection (Connection: %q)", c)
	}
	first.Close()
	waitFor(t, "the place to free up", func() bool { return h.roundTrip(t, get("/")).status == 200 })
}
