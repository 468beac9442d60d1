package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strangler-proxy/strangler/routes"
)

func TestLoopbackListen(t *testing.T) {
	for _, tt := range []struct {
		give string
		want bool
	}{
		{"127.0.0.1:9901", true},
		{"127.8.9.10:1", true},
		{"[::1]:9901", true},
		{"localhost:9901", true},
		{"[::ffff:127.0.0.1]:9901", true},
		{":9901", false},
		{"0.0.0.0:9901", false},
		{"[::]:9901", false},
		{"10.0.0.5:9901", false},
		{"admin.internal:9901", false},
		{"127.0.0.1", false},
	} {
		if got := loopbackListen(tt.give); got != tt.want {
			t.Errorf("loopbackListen(%q) = %v, want %v", tt.give, got, tt.want)
		}
	}
}

func TestAdminExposureNeedsToken(t *testing.T) {
	const token = "0123456789abcdef0123"
	tests := []struct {
		name        string
		admin, tok  string
		wantRefused bool
	}{
		{"default loopback", "", "", false},
		{"v6 loopback", "[::1]:9901", "", false},
		{"all interfaces without token", "0.0.0.0:9901", "", true},
		{"empty host without token", ":9901", "", true},
		{"private address without token", "10.1.2.3:9901", "", true},
		{"all interfaces with token", "0.0.0.0:9901", token, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Config{AdminListen: tt.admin, AdminToken: tt.tok}.WithDefaults().Validate()
			if (err != nil) != tt.wantRefused {
				t.Fatalf("Validate = %v, want refused=%v", err, tt.wantRefused)
			}
			if err != nil && !strings.Contains(err.Error(), "set admin_token") {
				t.Errorf("error %q does not say how to fix it", err)
			}
		})
	}
}

// fakeLocal makes every accepted connection report a non-loopback local
// address, as an admin listener bound to a LAN address would.
type fakeLocal struct{ net.Listener }

func (l fakeLocal) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return localConn{c}, nil
}

type localConn struct{ net.Conn }

func (localConn) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 9901} }

// TestAdminActionsNeedAuthorization: a component's endpoint that changes
// state takes the bearer token when one is set, and off loopback is refused
// without one; reads stay open.
func TestAdminActionsNeedAuthorization(t *testing.T) {
	const token = "0123456789abcdef0123"
	action := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "done") })
	tests := []struct {
		name     string
		token    string
		loopback bool
		method   string
		auth     string
		want     int
	}{
		{"read, no token configured, off loopback", "", false, "GET", "", 200},
		{"action, no token configured, loopback", "", true, "POST", "", 200},
		{"action, no token configured, off loopback", "", false, "POST", "", 403},
		{"action without the token", token, true, "POST", "", 401},
		{"action with a wrong token", token, true, "POST", "Bearer " + strings.Repeat("x", len(token)), 401},
		{"action with a basic credential", token, true, "POST", "Basic " + token, 401},
		{"action with the token", token, false, "POST", "Bearer " + token, 200},
		{"DELETE without the token", token, true, "DELETE", "", 401},
		{"read without the token", token, false, "GET", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAdmin(AdminOptions{
				Registry: prometheus.NewRegistry(),
				Live:     routes.NewLive(nil),
				Token:    tt.token,
				Routes:   []AdminRoute{{Pattern: "/admin/thing", Handler: action}},
			})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			var serveLn net.Listener = ln
			if !tt.loopback {
				serveLn = fakeLocal{ln}
			}
			go func() { served <- a.Serve(serveLn) }()
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = a.Shutdown(ctx)
				<-served
			})
			req, _ := http.NewRequest(tt.method, "http://"+ln.Addr().String()+"/admin/thing", nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			c := &http.Client{Timeout: 10 * time.Second}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			c.CloseIdleConnections()
			if resp.StatusCode != tt.want {
				t.Fatalf("%s: %d %q, want %d", tt.method, resp.StatusCode, body, tt.want)
			}
			if (tt.want == 200) != (string(body) == "done") {
				t.Errorf("the handler ran = %v with status %d", string(body) == "done", resp.StatusCode)
			}
		})
	}
}
