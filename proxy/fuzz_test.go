package proxy

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
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/legacy-passthrough"
	"github.com/strangler-proxy/strangler/proxy/control"
	"github.com/strangler-proxy/strangler/routes"
)

// framingSeeds are request streams that probe framing and header hygiene:
// the classic smuggling shapes, each followed by a request the upstream must
// never receive on its own.
var framingSeeds = []string{
	"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET /api/v1/ping HTTP/1.1\r\nHost: h\r\n\r\nGET /headers HTTP/1.1\r\nHost: h\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\nContent-Length: 3\r\n\r\nabc",
	"POST / HTTP/1.1\r\nHost: h\r\nX: y\r\n Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
	"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabcGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc",
	"POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\nX-A: 1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX A: 1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX-A: \x01\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: u:p@h\r\n\r\n",
	"GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET /api/v1/./ping HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET /api/v1/ping%0a HTTP/1.1\r\nHost: h\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
	"GET / HTTP/1.1\r\nHost: h\r\nConnection: X-Forwarded-For, Upgrade\r\nUpgrade: websocket\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
}

// fuzzListener is an in-memory listener whose connections replay one input
// and then read EOF, as a client that half-closed would: fasthttp serves
// every complete request in it and closes. What the server writes is kept.
type fuzzListener struct {
	conns  chan *fuzzConn
	closed chan struct{}
	once   sync.Once
}

func newFuzzListener() *fuzzListener {
	return &fuzzListener{conns: make(chan *fuzzConn), closed: make(chan struct{})}
}

func (l *fuzzListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *fuzzListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *fuzzListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080} }

// serve hands the server a connection carrying in and returns what the
// server wrote once it closed the connection.
func (l *fuzzListener) serve(t *testing.T, in []byte) []byte {
	c := &fuzzConn{in: bytes.NewReader(in), done: make(chan struct{})}
	select {
	case l.conns <- c:
	case <-time.After(10 * time.Second):
		t.Fatal("the server accepts no connection")
	}
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the server did not close the connection of %q", in)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Bytes()
}

type fuzzConn struct {
	in   *bytes.Reader
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	once sync.Once
}

func (c *fuzzConn) Read(p []byte) (int, error) {
	select {
	case <-c.done:
		return 0, net.ErrClosed
	default:
	}
	return c.in.Read(p)
}

func (c *fuzzConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

func (c *fuzzConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

func (c *fuzzConn) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080} }
func (c *fuzzConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 40000}
}
func (c *fuzzConn) SetDeadline(time.Time) error      { return nil }
func (c *fuzzConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fuzzConn) SetWriteDeadline(time.Time) error { return nil }

// strictUpstream is the stand-in monolith: it reads what the forwarder sends
// with a strict HTTP/1.1 parser and records any request that would be
// ambiguous to some server: both Content-Length and Transfer-Encoding, a
// coding other than chunked, control characters, bare LF line ends,
// obs-fold, no or two Host fields.
type strictUpstream struct {
	addr     string
	requests atomic.Int64
	mu       sync.Mutex
	bad      string
	ln       net.Listener
	wg       sync.WaitGroup
}

func startStrictUpstream(tb testing.TB) *strictUpstream {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	u := &strictUpstream{addr: ln.Addr().String(), ln: ln}
	var conns sync.Map
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, struct{}{})
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				defer conns.Delete(c)
				defer c.Close()
				u.serveConn(c)
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		u.wg.Wait()
	})
	return u
}

func (u *strictUpstream) violation() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.bad
}

func (u *strictUpstream) fail(format string, args ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.bad == "" {
		u.bad = fmt.Sprintf(format, args...)
	}
}

func (u *strictUpstream) serveConn(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		_ = c.SetDeadline(time.Now().Add(time.Minute))
		var head []string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if !strings.HasSuffix(line, "\r\n") || strings.ContainsAny(strings.TrimSuffix(line, "\r\n"), "\r\n") {
				u.fail("line not ended by CRLF: %q", line)
				return
			}
			line = strings.TrimSuffix(line, "\r\n")
			if line == "" {
				break
			}
			head = append(head, line)
		}
		u.requests.Add(1)
		if len(head) == 0 || len(strings.Split(head[0], " ")) != 3 || !strings.HasSuffix(head[0], " HTTP/1.1") {
			u.fail("request line %q", head)
			return
		}
		var lengths, codings, hosts []string
		for _, l := range head[1:] {
			k, v, ok := strings.Cut(l, ":")
			if !ok || k == "" || strings.ContainsAny(k, " \t") || l[0] == ' ' || l[0] == '\t' {
				u.fail("field line %q", l)
				return
			}
			for _, b := range []byte(l) {
				if b < ' ' && b != '\t' || b == 0x7f {
					u.fail("control character in %q", l)
					return
				}
			}
			v = strings.Trim(v, " \t")
			switch strings.ToLower(k) {
			case "content-length":
				lengths = append(lengths, v)
			case "transfer-encoding":
				codings = append(codings, v)
			case "host":
				hosts = append(hosts, v)
			}
		}
		var body io.Reader = http.NoBody
		switch {
		case len(hosts) != 1:
			u.fail("%d Host fields in %q", len(hosts), head)
			return
		case len(lengths) > 0 && len(codings) > 0, len(lengths) > 1, len(codings) > 1:
			u.fail("ambiguous framing in %q", head)
			return
		case len(codings) == 1:
			if codings[0] != "chunked" {
				u.fail("coding %q", codings[0])
				return
			}
			body = httputil.NewChunkedReader(br)
		case len(lengths) == 1:
			n, err := strconv.ParseInt(lengths[0], 10, 64)
			if err != nil || n < 0 || lengths[0] != strconv.FormatInt(n, 10) {
				u.fail("Content-Length %q", lengths[0])
				return
			}
			body = io.LimitReader(br, n)
		}
		if _, err := io.Copy(io.Discard, body); err != nil {
			return // cut short by the forwarder: it closes the connection
		}
		if len(codings) == 1 {
			// The trailer section: the forwarder never sends trailers.
			if l, err := br.ReadString('\n'); err != nil || l != "\r\n" {
				if err == nil {
					u.fail("trailer %q", l)
				}
				return
			}
		}
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nlegacy"); err != nil {
			return
		}
	}
}

// FuzzFrontDoorFraming feeds raw client bytes through the real front door
// (request id, limits, screen, routing) and the real legacy forwarder to a
// strict upstream. Invariants: nothing panics; the client gets valid HTTP
// responses; the upstream never receives an ambiguous request (CL with TE,
// a coding but chunked, control characters, bad line ends, not exactly one
// Host); and it never receives more requests than the front door handled,
// so no client request can carry a second one past it.
func FuzzFrontDoorFraming(f *testing.F) {
	for _, s := range framingSeeds {
		f.Add([]byte(s))
	}
	up := startStrictUpstream(f)
	fwd, err := legacy.New(legacy.Config{Upstream: "http://" + up.addr, Timeout: 5 * time.Second, IdleConnTimeout: 500 * time.Millisecond}, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(fwd.Close)
	var handled atomic.Int64
	goPing := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		ctx.SetBodyString("go")
		return nil
	})
	tab, err := routes.Compile(routes.Config{Routes: []routes.RouteConfig{
		{Name: "ping", Path: "/api/v1/ping", Methods: []string{"GET"}, Mode: routes.ModePorted, Handler: "ping"},
	}}, routes.Registry{"ping": goPing})
	if err != nil {
		f.Fatal(err)
	}
	plane, err := control.New(control.Options{})
	if err != nil {
		f.Fatal(err)
	}
	if err := plane.Publish(tab); err != nil {
		f.Fatal(err)
	}
	srv, err := New(Options{
		Config:    Config{Server: ServerConfig{ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, MaxBodyBytes: 1 << 20}},
		Plane:     plane,
		Legacy:    fwd,
		AccessLog: countingWriter{n: &handled},
	})
	if err != nil {
		f.Fatal(err)
	}
	ln := newFuzzListener()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
	})

	f.Fuzz(func(t *testing.T, in []byte) {
		out := ln.serve(t, in)
		if v := up.violation(); v != "" {
			t.Fatalf("the upstream received an ambiguous request: %s (input %q)", v, in)
		}
		// Every upstream request belongs to a request the front door
		// handled (and logged once, when it finished).
		if n, h := up.requests.Load(), handled.Load(); n > h {
			t.Fatalf("the upstream received %d requests, the front door handled %d (input %q)", n, h, in)
		}
		if len(out) == 0 {
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
		if err != nil {
			t.Fatalf("not an HTTP response: %v: %q (input %q)", err, out, in)
		}
		resp.Body.Close()
	})
}

// countingWriter counts access lines and keeps nothing: the front door
// writes one per request it handled, in one Write.
type countingWriter struct{ n *atomic.Int64 }

func (c countingWriter) Write(p []byte) (int, error) {
	c.n.Add(1)
	return len(p), nil
}

// phpRoutes are index.php's patterns for the routes that have a Go twin,
// with the Go route that owns each.
var phpRoutes = []struct {
	method, route string
	re            *regexp.Regexp
}{
	{"GET", "ping", regexp.MustCompile(`^/api/v1/ping$`)},
	{"GET", "campaign", regexp.MustCompile(`^/api/v1/campaigns/(?P<id>[^/]+)$`)},
	{"GET", "campaigns", regexp.MustCompile(`^/api/v1/campaigns$`)},
	{"POST", "events", regexp.MustCompile(`^/api/v1/events$`)},
}

// phpMatch is preg_match without the D modifier: '$' also matches right
// before a final newline.
func phpMatch(re *regexp.Regexp, s string) []string {
	if m := re.FindStringSubmatch(s); m != nil {
		return m
	}
	if strings.HasSuffix(s, "\n") {
		return re.FindStringSubmatch(strings.TrimSuffix(s, "\n"))
	}
	return nil
}

// phpRawurldecode is PHP's rawurldecode.
func phpRawurldecode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// FuzzPathPolicy: for any request target the screen accepts, the route the
// table matched is the route PHP's router would pick for the same request,
// with the same parameter, and the path the table matched is the path PHP
// decodes from the target the forwarder sends. Otherwise the request must
// be refused with a 4xx/5xx StatusError.
func FuzzPathPolicy(f *testing.F) {
	for _, s := range []string{
		"/api/v1/ping", "/api/v1/./ping", "/api/v1/../v1/ping", "/api//v1/ping", "/api/v1/%70ing",
		"/api/v1/ping;x", "/api%2Fv1/ping", "/api/v1/ping%00", `/api\v1\ping`, "/API/v1/ping",
		"/api/v1/ping%0A", "/api/v1/campaigns/cmp_000042", "/api/v1/campaigns/a%2Fb", "/api/v1/campaigns/%0a",
		"/api/v1/campaigns/..", "/api/v1/campaigns?country=FR", "http://h/api/v1/ping", "/api/v1/ping#x",
		"/api/v1/campaigns/x%0A", "/api/v1/campaigns/%2e%2e", "/api/v1/pi%6eg",
	} {
		f.Add("GET", s)
	}
	f.Add("POST", "/api/v1/events")
	f.Add("POST", "/api/v1/events%0a")
	stub := routes.HandlerFunc(func(*fasthttp.RequestCtx) error { return nil })
	tab, err := routes.Compile(routes.Config{Routes: []routes.RouteConfig{
		{Name: "ping", Path: "/api/v1/ping", Methods: []string{"GET"}, Mode: routes.ModePorted, Handler: "h"},
		{Name: "campaign", Path: "/api/v1/campaigns/{id}", Methods: []string{"GET"}, Mode: routes.ModePorted, Handler: "h"},
		{Name: "campaigns", Path: "/api/v1/campaigns", Methods: []string{"GET"}, Mode: routes.ModePorted, Handler: "h"},
		{Name: "events", Path: "/api/v1/events", Methods: []string{"POST"}, Mode: routes.ModePorted, Handler: "h"},
	}}, routes.Registry{"h": stub})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, target string) {
		var ctx fasthttp.RequestCtx
		raw := method + " " + target + " HTTP/1.1\r\nHost: shop.example\r\n\r\n"
		if err := ctx.Request.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			return // fasthttp's parser refuses it before the front door sees it
		}
		if err := screen(&ctx); err != nil {
			var se *StatusError
			if !errors.As(err, &se) || se.Code < 400 {
				t.Fatalf("screen(%q) = %v, want a refusal status", target, err)
			}
			return
		}
		m := tab.Match(&ctx)
		forwarded := string(ctx.Request.Header.RequestURI())
		if rest, ok := cutScheme([]byte(forwarded)); ok {
			forwarded = "/"
			if i := strings.IndexAny(string(rest), "/?"); i >= 0 {
				forwarded = string(rest[i:])
				if forwarded[0] == '?' {
					forwarded = "/" + forwarded
				}
			}
		}
		phpPath, _, _ := strings.Cut(forwarded, "?")
		phpPath = phpRawurldecode(phpPath)
		if phpPath != string(ctx.Path()) {
			t.Fatalf("%q: the table matched %q, PHP decodes %q", target, ctx.Path(), phpPath)
		}
		phpRoute, phpID := "", ""
		for _, r := range phpRoutes {
			if r.method != string(ctx.Method()) {
				continue
			}
			if sub := phpMatch(r.re, phpPath); sub != nil {
				phpRoute = r.route
				if len(sub) > 1 {
					phpID = sub[1]
				}
				break
			}
		}
		goRoute, goID := "", ""
		if m.Route != nil {
			goRoute = m.Route.Name
			goID = routes.Param(&ctx, "id")
		}
		if phpRoute != goRoute || phpID != goID {
			t.Fatalf("%s %q: the table picked %q (id %q), PHP's router would pick %q (id %q)",
				method, target, goRoute, goID, phpRoute, phpID)
		}
	})
}
