package proxy

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
	_, base := startAdmin(t, AdminOptions{Registry: prometheus.NewRegistry(), Live: routes.NewLive(nil)})
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
				Registry: prometheus.NewRegistry(), Live: routes.NewLive(nil),
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
	live := routes.NewLive(compile(t, rcs, false, reg))
	_, base := startAdmin(t, AdminOptions{Registry: prometheus.NewRegistry(), Live: live})

	var got RouteTable
	_, body, _ := fetch(t, base+"/routes")
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if got.AllLegacy || len(got.Routes) != 2 || got.Routes[0].Name != "ping" || got.Routes[0].EffectiveMode != routes.ModePorted {
		t.Errorf("/routes = %s", body)
	}
	// The live table, not a copy taken at start.
	live.Store(compile(t, rcs, true, reg))
	_, body, _ = fetch(t, base+"/routes")
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if !got.AllLegacy || got.Routes[0].EffectiveMode != routes.ModeLegacy {
		t.Errorf("after the kill switch, /routes = %s", body)
	}
}

func TestAdminMetricsCountRequests(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	_, base := startAdmin(t, AdminOptions{Registry: h.reg, Live: h.live})

	h.roundTrip(t, get("/counted"))
	_, body, _ := fetch(t, base+"/metrics")
	want := `strangler_requests_total{backend="legacy",mode="legacy",route="_unmatched",status="200"} 1`
	if !strings.Contains(body, want) {
		t.Errorf("/metrics lacks %s", want)
	}
	for _, name := range []string{"strangler_request_duration_seconds_bucket", "strangler_requests_in_flight 0", "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}
