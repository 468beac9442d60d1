package control

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/routes"
)

// startAdmin serves an Admin on a loopback port and returns its base URL.
func startAdmin(t *testing.T, o AdminOptions) (*Admin, string) {
	t.Helper()
	a, err := NewAdmin(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("admin shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("admin serve: %v", err)
		}
	})
	return a, "http://" + ln.Addr().String()
}

func fetch(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	c.CloseIdleConnections()
	return resp.StatusCode, string(b), resp.Header
}

func TestAdminHealthz(t *testing.T) {
	_, base := startAdmin(t, AdminOptions{Registry: prometheus.NewRegistry(), Plane: newPlane(t)})
	if code, body, _ := fetch(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
}

func TestAdminReadyz(t *testing.T) {
	ok := Check{Name: "legacy", Fn: func(context.Context) error { return nil }}
	down := Check{Name: "spool", Fn: func(context.Context) error { return errors.New("disk full") }}
	// A check that only ends when its context does: the timeout must end it.
	hangs := Check{Name: "cache", Fn: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	tests := []struct {
		name   string
		checks []Check
		drain  bool
		code   int
		status string
		failed []string
	}{
		{"no checks", nil, false, 200, "ready", nil},
		{"all pass", []Check{ok}, false, 200, "ready", nil},
		{"one fails", []Check{ok, down}, false, 503, "not ready", []string{"spool"}},
		{"one times out", []Check{hangs, ok}, false, 503, "not ready", []string{"cache"}},
		{"draining", []Check{ok}, true, 503, "draining", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, base := startAdmin(t, AdminOptions{
				Registry: prometheus.NewRegistry(), Plane: newPlane(t),
				Checks: tt.checks, CheckTimeout: 50 * time.Millisecond,
			})
			if tt.drain {
				a.Drain()
			}
			code, body, hdr := fetch(t, base+"/readyz")
			if code != tt.code {
				t.Errorf("code %d, want %d: %s", code, tt.code, body)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if ra := hdr.Get("Retry-After"); (code == 503) != (ra == "1") {
				t.Errorf("%d with Retry-After %q; want 1 with every 503 and none otherwise", code, ra)
			}
			var got Readiness
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			if got.Status != tt.status || len(got.Checks) != len(tt.checks) {
				t.Errorf("got %+v, want status %q and %d checks", got, tt.status, len(tt.checks))
			}
			var failed []string
			for i, c := range got.Checks {
				if c.Name != tt.checks[i].Name {
					t.Errorf("check %d is %q, want %q (config order)", i, c.Name, tt.checks[i].Name)
				}
				if !c.OK {
					failed = append(failed, c.Name)
					if c.Error == "" {
						t.Errorf("failed check %s has no error", c.Name)
					}
				}
			}
			if strings.Join(failed, ",") != strings.Join(tt.failed, ",") {
				t.Errorf("failed checks %v, want %v", failed, tt.failed)
			}
		})
	}
}

func TestAdminRoutes(t *testing.T) {
	reg := routes.Registry{"ping": routes.HandlerFunc(func(*fasthttp.RequestCtx) error { return nil })}
	rcs := []routes.RouteConfig{
		{Name: "ping", Methods: []string{"GET"}, Path: "/api/v1/ping", Mode: routes.ModePorted, Handler: "ping"},
		{Name: "home", Path: "/"},
	}
	plane := newPlane(t)
	publish(t, plane, rcs, false, reg)
	_, base := startAdmin(t, AdminOptions{Registry: prometheus.NewRegistry(), Plane: plane})

	var got RouteTable
	_, body, _ := fetch(t, base+"/routes")
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if got.AllLegacy || len(got.Routes) != 2 || got.Routes[0].Name != "ping" || got.Routes[0].EffectiveMode != routes.ModePorted {
		t.Errorf("/routes = %s", body)
	}
	// The live table, not a copy taken at start.
	publish(t, plane, rcs, true, reg)
	_, body, _ = fetch(t, base+"/routes")
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if !got.AllLegacy || got.Routes[0].EffectiveMode != routes.ModeLegacy {
		t.Errorf("after the kill switch, /routes = %s", body)
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
				Plane:    newPlane(t),
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
