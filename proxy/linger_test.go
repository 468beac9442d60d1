package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// serveTCP runs a front door on a loopback port: lingering needs real TCP.
func serveTCP(t *testing.T, cfg Config) string {
	t.Helper()
	srv, err := New(Options{Config: cfg, Plane: emptyPlane(t), Legacy: legacyOK()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// A client whose request is rejected before it was all read still gets the
// answer and a clean EOF, not a connection reset.
func TestRejectedRequestsEndWithoutReset(t *testing.T) {
	addr := serveTCP(t, Config{Server: ServerConfig{MaxBodyBytes: 1024}})
	tests := []struct {
		name   string
		head   string
		body   int // bytes the client sends after the head, answer or not
		status int
	}{
		{"head over max_header_bytes", get("/", manyHeaders(10, 4000)...), 0, 431},
		// No Expect: the client streams the body while the 413 comes back.
		{"body over max_body_bytes", "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 3000000\r\n\r\n", 3000000, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A reset is a race, so try a few times.
			for i := range 10 {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				sent := make(chan struct{})
				go func() {
					defer close(sent)
					if _, err := io.WriteString(c, tt.head); err != nil {
						return
					}
					_, _ = io.CopyN(c, strings.NewReader(strings.Repeat("x", tt.body)), int64(tt.body))
				}()
				raw, err := io.ReadAll(bufio.NewReader(c))
				<-sent
				c.Close()
				if err != nil {
					t.Fatalf("try %d: %v after %d bytes of answer", i, err, len(raw))
				}
				if want := fmt.Sprintf("HTTP/1.1 %d ", tt.status); !strings.HasPrefix(string(raw), want) {
					t.Fatalf("try %d: answer %.80q, want %s", i, raw, want)
				}
			}
		})
	}
}
