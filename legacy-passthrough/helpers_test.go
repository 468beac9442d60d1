package legacy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

// ignoreCleaner: fasthttp's HostClient idle-connection cleaner has no stop
// signal; it sleeps up to idle_conn_timeout and exits once Close has closed
// every connection. TestCloseStopsCleaner checks that it does exit.
var ignoreCleaner = goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, ignoreCleaner)
}

// ioTimeout bounds every blocking step of a test, so a bug fails the test
// instead of hanging it.
const ioTimeout = 30 * time.Second

// testConfig is a valid Config for upstream, with short idle timeouts so the
// idle-connection cleaner exits soon after a test.
func testConfig(upstream string) Config {
	return Config{
		Upstream:        "http://" + upstream,
		IdleConnTimeout: 500 * time.Millisecond,
	}
}

func newTestForwarder(t testing.TB, cfg Config) (*Forwarder, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	f, err := New(cfg, zaptest.NewLogger(t), reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(f.Close)
	return f, reg
}

// front is a fasthttp server set up like the proxy's front door, whose
// handler is the forwarder. It records what Serve returned and maps an
// error the way the front door does.
type front struct {
	addr string

	mu   sync.Mutex
	errs []error
}

// frontServer returns a fasthttp.Server configured like the front door.
func frontServer(h fasthttp.RequestHandler) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                       h,
		DisableHeaderNamesNormalizing: true,
		NoDefaultContentType:          true,
		NoDefaultDate:                 true,
		NoDefaultServerHeader:         true,
		StreamRequestBody:             true,
		DisablePreParseMultipartForm:  true,
		MaxRequestBodySize:            3 << 30,
		ReadTimeout:                   2 * time.Minute,
		WriteTimeout:                  2 * time.Minute,
		IdleTimeout:                   10 * time.Second,
		CloseOnShutdown:               true,
		MaxIdleWorkerDuration:         workerIdle,
	}
}

// workerIdle is short so that fasthttp's worker-pool cleaner, which checks
// for a stop only between sleeps this long, ends soon after Shutdown.
const workerIdle = 100 * time.Millisecond

// startFront serves fwd on 127.0.0.1. edit, if set, runs before Serve, as
// the front door's request-id step does.
func startFront(t testing.TB, fwd *Forwarder, edit func(*fasthttp.RequestCtx)) *front {
	t.Helper()
	fr := &front{}
	srv := frontServer(func(ctx *fasthttp.RequestCtx) {
		if edit != nil {
			edit(ctx)
		}
		err := fwd.Serve(ctx)
		fr.mu.Lock()
		fr.errs = append(fr.errs, err)
		fr.mu.Unlock()
		if err != nil {
			ctx.SetStatusCode(statusOf(err))
			ctx.SetBodyString("proxy error\n")
		}
	})
	fr.addr = serve(t, srv)
	return fr
}

// lastErr is what the last Serve returned.
func (fr *front) lastErr(t testing.TB) error {
	t.Helper()
	fr.mu.Lock()
	defer fr.mu.Unlock()
	if len(fr.errs) == 0 {
		t.Fatal("Serve was not called")
	}
	return fr.errs[len(fr.errs)-1]
}

// statusOf is the front door's mapping (proxy.StatusOf) for these errors.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrUpstreamTimeout):
		return http.StatusGatewayTimeout
	case errors.Is(err, ErrUpstreamUnreachable), errors.Is(err, ErrBadUpstreamResponse):
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

// serve runs srv on a fresh 127.0.0.1 listener until the test ends.
func serve(t testing.TB, srv *fasthttp.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		if err := srv.ShutdownWithContext(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// fastUpstream is an upstream fasthttp server (NoDefaultDate: fasthttp's date
// ticker would outlive the test).
func fastUpstream(t testing.TB, h fasthttp.RequestHandler) string {
	t.Helper()
	return serve(t, &fasthttp.Server{
		Handler:                       h,
		NoDefaultDate:                 true,
		DisableHeaderNamesNormalizing: true,
		StreamRequestBody:             true,
		MaxRequestBodySize:            3 << 30,
		ReadTimeout:                   2 * time.Minute,
		WriteTimeout:                  2 * time.Minute,
		CloseOnShutdown:               true,
		MaxIdleWorkerDuration:         workerIdle,
	})
}

// rawServer accepts connections on 127.0.0.1 and runs handle on each in its
// own goroutine. At the end of the test it closes the listener and every
// connection and waits for the goroutines.
func rawServer(t testing.TB, handle func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(ioTimeout))
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// captured is one request as the upstream received it.
type captured struct {
	head []byte // request line and fields, exactly as on the wire
	body []byte // decoded body
}

// captureServer records every request it receives, answering each with
// response (a raw HTTP response; keep-alive unless it says
// "Connection: close").
func captureServer(t testing.TB, response string) (string, <-chan captured) {
	t.Helper()
	got := make(chan captured, 64)
	addr := rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			head, err := readHead(br)
			if err != nil {
				return
			}
			body, err := readBody(br, head, false)
			if err != nil {
				t.Errorf("capture: read body: %v", err)
				return
			}
			got <- captured{head: head, body: body}
			if _, err := io.WriteString(c, response); err != nil || strings.Contains(response, "\r\nConnection: close\r\n") {
				return
			}
		}
	})
	return addr, got
}

func receive(t testing.TB, ch <-chan captured) captured {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(ioTimeout):
		t.Fatal("upstream received nothing")
		return captured{}
	}
}

// readHead reads one message head, up to and including the empty line.
func readHead(br *bufio.Reader) ([]byte, error) {
	var head []byte
	for {
		line, err := br.ReadSlice('\n')
		head = append(head, line...)
		if err != nil {
			return head, err
		}
		if len(line) <= 2 && strings.TrimRight(string(line), "\r\n") == "" {
			return head, nil
		}
	}
}

// field returns the first value of name in head, case-insensitively.
func headField(head []byte, name string) (string, bool) {
	lines := strings.Split(string(head), "\r\n")
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// readBody reads the body that head frames: chunked (decoded), by
// Content-Length, none for a bodiless response, or to EOF for a response
// without either.
func readBody(br *bufio.Reader, head []byte, response bool) ([]byte, error) {
	if te, ok := headField(head, "Transfer-Encoding"); ok && strings.EqualFold(te, "chunked") {
		b, err := io.ReadAll(httputil.NewChunkedReader(br))
		if err != nil {
			return b, err
		}
		_, err = readHead(br) // the trailer section, up to its empty line
		return b, err
	}
	if cl, ok := headField(head, "Content-Length"); ok {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil {
			return nil, err
		}
		b := make([]byte, n)
		_, err = io.ReadFull(br, b)
		return b, err
	}
	if response {
		return io.ReadAll(br)
	}
	return nil, nil
}

// client is a raw HTTP/1.1 client connection, to see the exact bytes.
type client struct {
	c  net.Conn
	br *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	return &client{c: c, br: bufio.NewReader(c)}
}

// do sends the raw request and reads one response: the head as received and
// the decoded body. bodiless is for HEAD requests, 204 and 304.
func (cl *client) do(t testing.TB, request string, bodiless bool) (string, []byte) {
	t.Helper()
	if _, err := io.WriteString(cl.c, request); err != nil {
		t.Fatalf("write request: %v", err)
	}
	head, err := readHead(cl.br)
	if err != nil {
		t.Fatalf("read response head: %v (got %q)", err, head)
	}
	if bodiless {
		return string(head), nil
	}
	body, err := readBody(cl.br, head, true)
	if err != nil {
		t.Fatalf("read response body: %v", err)
	}
	return string(head), body
}

// status is the status code of a response head.
func status(t testing.TB, head string) int {
	t.Helper()
	f := strings.Fields(head)
	if len(f) < 2 {
		t.Fatalf("no status line in %q", head)
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatalf("bad status line in %q", head)
	}
	return n
}

// closedPort returns a 127.0.0.1 address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// patternPeriod is prime, so a stream shifted by a few bytes, or missing
// some, does not line up with the pattern again.
const patternPeriod = 65521

// patternBlock is one period of the test byte pattern.
var patternBlock = sync.OnceValue(func() []byte {
	b := make([]byte, patternPeriod)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
})

// pattern is an endless reader of the test pattern. It copies whole runs
// (not byte by byte): under -race a per-byte loop would dominate the big
// transfers.
type pattern struct{ off int64 }

func (p *pattern) Read(b []byte) (int, error) {
	blk := patternBlock()
	n := 0
	for n < len(b) {
		n += copy(b[n:], blk[(p.off+int64(n))%patternPeriod:])
	}
	p.off += int64(n)
	return n, nil
}

// patternChecker counts what is written to it and finds the first offset
// that differs from pattern.
type patternChecker struct {
	n   int64
	bad int64 // -1 while everything matched
}

func newPatternChecker() *patternChecker { return &patternChecker{bad: -1} }

func (c *patternChecker) Write(b []byte) (int, error) {
	blk := patternBlock()
	for i := 0; i < len(b) && c.bad < 0; {
		want := blk[(c.n+int64(i))%patternPeriod:]
		m := min(len(want), len(b)-i)
		if !bytes.Equal(b[i:i+m], want[:m]) {
			c.bad = c.n + int64(i) // within this run; precise enough
		}
		i += m
	}
	c.n += int64(len(b))
	return len(b), nil
}

func (c *patternChecker) check(t testing.TB, want int64) {
	t.Helper()
	if c.n != want || c.bad >= 0 {
		t.Fatalf("body: got %d bytes (first bad run at %d), want %d pattern bytes", c.n, c.bad, want)
	}
}

func mustEqualHead(t testing.TB, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s differs\n got: %q\nwant: %q\n%s", what, got, want, lineDiff(got, want))
	}
}

func lineDiff(got, want string) string {
	g, w := strings.Split(got, "\r\n"), strings.Split(want, "\r\n")
	var b bytes.Buffer
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		mark := " "
		if gl != wl {
			mark = "!"
		}
		fmt.Fprintf(&b, "%s got %-50q want %q\n", mark, gl, wl)
	}
	return b.String()
}
