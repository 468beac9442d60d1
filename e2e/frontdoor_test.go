package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SIGTERM under load: requests already in flight complete, then exit 0.
func TestGracefulShutdownLosesNoInFlightRequest(t *testing.T) {
	m := startMonolith(t)
	p := start(t, config{Upstream: m.URL})

	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	started := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.DialTimeout("tcp", strings.TrimPrefix(p.URL, "http://"), 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
			fmt.Fprintf(conn, "GET /slow?ms=800 HTTP/1.1\r\nHost: shop.example\r\n\r\n")
			started <- struct{}{}
			resp, err := http.ReadResponse(bufioReader(conn), nil)
			if err != nil {
				errs <- fmt.Errorf("in-flight request lost: %w", err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("in-flight request got %d", resp.StatusCode)
			}
		}()
	}
	for i := 0; i < n; i++ {
		<-started
	}
	// An idle keep-alive connection must not hold shutdown up: it is closed,
	// not waited for until shutdown_timeout (30s by default).
	idle, err := net.DialTimeout("tcp", strings.TrimPrefix(p.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	fmt.Fprintf(idle, "GET /static/hello.txt HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	_ = idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	if resp, err := http.ReadResponse(bufioReader(idle), nil); err != nil {
		t.Fatal(err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	time.Sleep(200 * time.Millisecond) // the requests are inside PHP now
	p.signal(syscall.SIGTERM)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if code := p.waitExit(t, 15*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	// Stopped accepting: a new connection is refused.
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(p.URL, "http://"), time.Second); err == nil {
		c.Close()
		t.Error("listener still accepts after shutdown")
	}
}

func TestUpstreamFailuresMapTo502And504(t *testing.T) {
	m := startMonolith(t)
	p := start(t, config{Upstream: m.URL, LegacyTimeout: 300 * time.Millisecond})

	resp, body := get(t, p.URL+"/slow?ms=2000", "X-Request-Id", "slow-req-1")
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(body), "slow-req-1") {
		t.Errorf("slow upstream: %d %q, want 504 naming the request id", resp.StatusCode, body)
	}

	dead := start(t, config{Upstream: "http://" + freeAddr(t)})
	resp, body = get(t, dead.URL+"/", "X-Request-Id", "dead-req-1")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "dead-req-1") {
		t.Errorf("upstream down: %d %q, want 502 naming the request id", resp.StatusCode, body)
	}
	if len(body) > 200 {
		t.Errorf("error body should be short, got %d bytes", len(body))
	}
}

func TestHeaderAndBodyLimits(t *testing.T) {
	m := startMonolith(t)
	p := start(t, config{Upstream: m.URL, Extra: "server:\n  max_body_bytes: 1048576\n"})

	tests := []struct {
		name, request string
		want          int
	}{
		{"header line over 8 KiB", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Big: " + strings.Repeat("a", 9*1024) + "\r\n\r\n", 431},
		{"header block over 32 KiB", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n" + strings.Repeat("X-Many: "+strings.Repeat("b", 4000)+"\r\n", 9) + "\r\n", 431},
		{"headers within limits", "GET / HTTP/1.1\r\nHost: a\r\nX-Ok: " + strings.Repeat("c", 7*1024) + "\r\nConnection: close\r\n\r\n", 200},
		{"body over the limit", "POST /upload HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 2097152\r\nContent-Type: application/octet-stream\r\n\r\n", 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := rawExchange(t, p.URL, tt.request)
			want := fmt.Sprintf("HTTP/1.1 %d", tt.want)
			if !strings.HasPrefix(raw, want) {
				t.Fatalf("got %.120q, want %s", raw, want)
			}
		})
	}
}
