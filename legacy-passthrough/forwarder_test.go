package legacy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"go.uber.org/zap"
)

func TestPing(t *testing.T) {
	live := rawServer(t, func(net.Conn) {})
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name     string
		upstream string
		ctx      context.Context
		wantErr  bool
	}{
		{"listening", live, context.Background(), false},
		{"nothing listens", closedPort(t), context.Background(), true},
		{"caller gave up", live, canceled, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fwd, _ := newTestForwarder(t, testConfig(tt.upstream))
			err := fwd.Ping(tt.ctx)
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrUpstreamUnreachable)) {
				t.Fatalf("Ping = %v, want error %v (ErrUpstreamUnreachable)", err, tt.wantErr)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	if _, err := New(Config{}, nil, nil); err == nil || !strings.Contains(err.Error(), "upstream") {
		t.Errorf("New without upstream: %v, want an error naming upstream", err)
	}
	reg := prometheus.NewRegistry()
	if _, err := New(testConfig("127.0.0.1:1"), nil, reg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(testConfig("127.0.0.1:1"), nil, reg); err == nil {
		t.Error("a second Forwarder on the same registry: want a registration error")
	}
}

// TestCloseStopsCleaner: fasthttp's idle-connection cleaner, which the
// other tests ignore, does end after Close.
func TestCloseStopsCleaner(t *testing.T) {
	up, _ := captureServer(t, okResponse)
	cfg := testConfig(up)
	cfg.IdleConnTimeout = 100 * time.Millisecond
	fwd, _ := newTestForwarder(t, cfg)
	fr := startFront(t, fwd, nil)
	if head, _ := dial(t, fr.addr).do(t, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", false); status(t, head) != 200 {
		t.Fatalf("got %q", head)
	}
	if !cleanerRunning(fwd.clients[0]) {
		t.Fatal("no connection cleaner after a request: the test checks nothing")
	}
	fwd.Close()
	waitFor(t, "the connection cleaner to exit", func() bool { return !cleanerRunning(fwd.clients[0]) })
}

// cleanerRunning reports whether hc's cleaner goroutine is alive (other
// tests' cleaners may still be sleeping; stacks name the receiver).
func cleanerRunning(hc *fasthttp.HostClient) bool {
	buf := make([]byte, 4<<20)
	return bytes.Contains(buf[:runtime.Stack(buf, true)], fmt.Appendf(nil, "(*HostClient).connsCleaner(%p", hc))
}

// BenchmarkForward sends a small GET through a front-door server, the
// forwarder and an upstream server, all on in-memory listeners, with
// fasthttp clients on both ends of the chain.
func BenchmarkForward(b *testing.B) { benchForward(b, 1) }

// BenchmarkForwardThreeBackends is BenchmarkForward with three backends
// listed (all dialing the same in-memory server): the balancer's own cost.
func BenchmarkForwardThreeBackends(b *testing.B) { benchForward(b, 3) }

func benchForward(b *testing.B, backends int) {
	upLn := fasthttputil.NewInmemoryListener()
	up := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.Response.Header.Set("Set-Cookie", "a=1; Path=/")
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"ok":true}`)
		},
		NoDefaultDate: true, MaxIdleWorkerDuration: workerIdle,
	}
	go func() { _ = up.Serve(upLn) }()
	defer func() { _ = up.Shutdown() }()

	cfg := testConfig("upstream.test:80")
	if backends > 1 {
		cfg.Upstream = ""
		for i := range backends {
			cfg.Upstreams = append(cfg.Upstreams, Backend{URL: fmt.Sprintf("http://upstream%d.test:80", i)})
		}
	}
	fwd, err := newForwarder(cfg, zap.NewNop(), nil,
		func(context.Context, string) (net.Conn, error) { return upLn.Dial() })
	if err != nil {
		b.Fatal(err)
	}
	defer fwd.Close()

	frontLn := fasthttputil.NewInmemoryListener()
	front := frontServer(func(ctx *fasthttp.RequestCtx) {
		if err := fwd.Serve(ctx); err != nil {
			ctx.SetStatusCode(statusOf(err))
		}
	})
	go func() { _ = front.Serve(frontLn) }()
	defer func() { _ = front.Shutdown() }()

	c := &fasthttp.HostClient{
		Addr:                          "front.test",
		Dial:                          func(string) (net.Conn, error) { return frontLn.Dial() },
		DisableHeaderNamesNormalizing: true,
		MaxIdleConnDuration:           time.Second,
	}
	defer c.CloseIdleConnections()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://front.test/api/v1/campaigns/cmp_000042?country=FR")
	req.Header.Set("Cookie", "PHPSESSID=abc; last_user=bob")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Request-Id", "0123456789abcdef0123456789abcdef")

	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := c.Do(req, resp); err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode() != 200 || len(resp.Body()) != len(`{"ok":true}`) {
			b.Fatalf("got %d %q", resp.StatusCode(), resp.Body())
		}
	}
}

func TestPatternChecker(t *testing.T) {
	tests := []struct {
		name string
		skip int64 // bytes dropped from the stream at 100000
		flip bool  // one byte changed at 100000
		ok   bool
	}{
		{"intact", 0, false, true},
		{"a byte missing", 1, false, false},
		{"a byte changed", 0, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			_, _ = io.CopyN(&b, &pattern{}, 300000)
			data := b.Bytes()
			if tt.flip {
				data[100000]++
			}
			data = append(data[:100000:100000], data[100000+tt.skip:]...)
			c := newPatternChecker()
			_, _ = c.Write(data[:77777])
			_, _ = c.Write(data[77777:])
			if ok := c.bad < 0 && c.n == int64(len(data)); ok != tt.ok {
				t.Errorf("checker says ok=%v (bad at %d), want %v", ok, c.bad, tt.ok)
			}
		})
	}
}
