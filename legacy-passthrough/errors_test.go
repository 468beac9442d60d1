package legacy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zaptest"
)

// serveUntil answers requests on c with okResponse until one arrives for
// which stop reports true; that one gets no answer. It returns after c is
// closed or stop said so.
func serveUntil(c net.Conn, stop func(head []byte) bool) {
	br := bufio.NewReader(c)
	for {
		head, err := readHead(br)
		if err != nil {
			return
		}
		if _, err := readBody(br, head, false); err != nil {
			return
		}
		if stop(head) {
			return
		}
		if _, err := io.WriteString(c, okResponse); err != nil {
			return
		}
	}
}

func TestUpstreamErrors(t *testing.T) {
	tests := []struct {
		name     string
		upstream func(t *testing.T) string // returns the upstream address
		cfg      func(*Config)
		want     error
		status   int
		kind     string
	}{
		{
			name:     "connection refused",
			upstream: func(t *testing.T) string { return closedPort(t) },
			want:     ErrUpstreamUnreachable, status: 502, kind: "dial",
		},
		{
			name: "no answer within timeout",
			upstream: func(t *testing.T) string {
				return rawServer(t, func(c net.Conn) {
					serveUntil(c, func([]byte) bool { return true })
					_, _ = io.Copy(io.Discard, c) // hold the connection until the proxy gives up
				})
			},
			cfg:  func(c *Config) { c.Timeout = 300 * time.Millisecond },
			want: ErrUpstreamTimeout, status: 504, kind: "timeout",
		},
		{
			name: "closed before answering",
			upstream: func(t *testing.T) string {
				return rawServer(t, func(c net.Conn) { serveUntil(c, func([]byte) bool { return true }) })
			},
			want: ErrUpstreamUnreachable, status: 502, kind: "reset",
		},
		{
			name: "not HTTP",
			upstream: func(t *testing.T) string {
				up, _ := captureServer(t, "SSH-2.0-OpenSSH_9.2\r\n\r\n")
				return up
			},
			want: ErrBadUpstreamResponse, status: 502, kind: "bad_response",
		},
		{
			name: "head over max_response_header_bytes",
			upstream: func(t *testing.T) string {
				up, _ := captureServer(t, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("b", 4096)+"\r\nContent-Length: 0\r\n\r\n")
				return up
			},
			cfg:  func(c *Config) { c.MaxResponseHeaderBytes = 1024 },
			want: ErrBadUpstreamResponse, status: 502, kind: "bad_response",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(tt.upstream(t))
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			fwd, _ := newTestForwarder(t, cfg)
			fr := startFront(t, fwd, nil)

			head, _ := dial(t, fr.addr).do(t, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n", false)
			err := fr.lastErr(t)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Serve returned %v, want %v", err, tt.want)
			}
			if got := status(t, head); got != tt.status {
				t.Errorf("client got %d, want %d", got, tt.status)
			}
			for _, kind := range []string{"dial", "timeout", "reset", "bad_response", "body"} {
				want := 0.0
				if kind == tt.kind {
					want = 1
				}
				if got := counter(t, fwd, kind); got != want {
					t.Errorf("strangler_upstream_errors_total{kind=%q} = %v, want %v", kind, got, want)
				}
			}
			if got := value(t, fwd.metrics.retries); got != 0 {
				t.Errorf("retries = %v, want 0", got)
			}
		})
	}
}

func counter(t testing.TB, f *Forwarder, kind string) float64 {
	t.Helper()
	c := map[string]prometheus.Counter{
		"dial": f.metrics.dial, "timeout": f.metrics.timeout, "reset": f.metrics.reset,
		"bad_response": f.metrics.badResponse, "body": f.metrics.body,
	}[kind]
	return value(t, c)
}

// TestDialTimeout: dial_timeout caps the dial even when the exchange has
// much longer, and the failure is a timeout (504), as in Nginx.
func TestDialTimeout(t *testing.T) {
	hang := func(ctx context.Context, addr string) (net.Conn, error) {
		<-ctx.Done()
		// net.Dialer's shape for a dial that ran out of time.
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ctx.Err()}
	}
	cfg := testConfig("192.0.2.1:80")
	cfg.DialTimeout = 100 * time.Millisecond
	fwd, err := newForwarder(cfg, zaptest.NewLogger(t), nil, hang)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fwd.Close)
	fr := startFront(t, fwd, nil)

	start := time.Now()
	head, _ := dial(t, fr.addr).do(t, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", false)
	if err := fr.lastErr(t); !errors.Is(err, ErrUpstreamTimeout) || status(t, head) != 504 {
		t.Fatalf("got %q, Serve %v; want 504 and ErrUpstreamTimeout", head, err)
	}
	if d := time.Since(start); d > DefaultTimeout/3 {
		t.Errorf("took %s: dial_timeout did not cap the dial", d)
	}
	if counter(t, fwd, "dial") != 1 {
		t.Errorf("dial errors = %v, want 1", counter(t, fwd, "dial"))
	}
}

// TestRetry: the upstream closes a kept-alive connection after one answer;
// the next request finds it dead. Only an idempotent request without a body
// is sent again, on a fresh connection, once.
func TestRetry(t *testing.T) {
	tests := []struct {
		name      string
		request   string
		wantRetry bool
	}{
		{"GET", "GET /r HTTP/1.1\r\nHost: h\r\n\r\n", true},
		{"HEAD", "HEAD /r HTTP/1.1\r\nHost: h\r\n\r\n", true},
		{"DELETE", "DELETE /r HTTP/1.1\r\nHost: h\r\n\r\n", true},
		{"OPTIONS", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", true},
		{"PUT with a body", "PUT /r HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi", false},
		{"POST", "POST /r HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", false},
		{"POST with a body", "POST /r HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi", false},
		{"PATCH", "PATCH /r HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var conns atomic.Int32
			up := rawServer(t, func(c net.Conn) {
				if conns.Add(1) == 1 {
					// One answer, then close the idle connection, as Nginx
					// does at keepalive_timeout or on reload.
					n := 0
					serveUntil(c, func([]byte) bool { n++; return n > 1 })
					return
				}
				serveUntil(c, func([]byte) bool { return false })
			})
			cfg := testConfig(up)
			cfg.IdleConnTimeout = 10 * time.Second // fasthttp must not drop it first
			fwd, _ := newTestForwarder(t, cfg)
			fr := startFront(t, fwd, nil)
			cl := dial(t, fr.addr)

			// The first request opens the connection the upstream will close.
			if head, _ := cl.do(t, "GET /first HTTP/1.1\r\nHost: h\r\n\r\n", false); status(t, head) != 200 {
				t.Fatalf("first request: %q", head)
			}
			// The upstream closes right after its first answer; give the FIN
			// a moment to reach the proxy's socket.
			time.Sleep(50 * time.Millisecond)

			head, _ := cl.do(t, tt.request, strings.HasPrefix(tt.request, "HEAD"))
			err := fr.lastErr(t)
			retries := value(t, fwd.metrics.retries)
			if tt.wantRetry {
				if err != nil || status(t, head) != 200 || retries != 1 || conns.Load() != 2 {
					t.Fatalf("got %q, Serve %v, %v retries, %d upstream connections; want 200 after 1 retry on a 2nd connection",
						head, err, retries, conns.Load())
				}
				return
			}
			if !errors.Is(err, ErrUpstreamUnreachable) || status(t, head) != 502 || retries != 0 {
				t.Fatalf("got %q, Serve %v, %v retries; want 502 and no retry", head, err, retries)
			}
			if counter(t, fwd, "reset") != 1 {
				t.Errorf("reset errors = %v, want 1", counter(t, fwd, "reset"))
			}
		})
	}
}

// TestNoRetryAfterTimeout: a request the upstream read but did not answer is
// not sent again, even on a reused connection.
func TestNoRetryAfterTimeout(t *testing.T) {
	up := rawServer(t, func(c net.Conn) {
		n := 0
		serveUntil(c, func([]byte) bool { n++; return n > 1 })
		_, _ = io.Copy(io.Discard, c)
	})
	cfg := testConfig(up)
	cfg.Timeout = 300 * time.Millisecond
	fwd, _ := newTestForwarder(t, cfg)
	fr := startFront(t, fwd, nil)
	cl := dial(t, fr.addr)
	if head, _ := cl.do(t, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n", false); status(t, head) != 200 {
		t.Fatalf("first request: %q", head)
	}
	head, _ := cl.do(t, "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n", false)
	if err := fr.lastErr(t); !errors.Is(err, ErrUpstreamTimeout) || status(t, head) != 504 {
		t.Fatalf("got %q, Serve %v; want 504", head, err)
	}
	if r := value(t, fwd.metrics.retries); r != 0 {
		t.Errorf("retries = %v, want 0", r)
	}
}

// value reads a counter (prometheus/testutil needs a module go.sum lacks).
func value(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
