package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const pingRoute = "  - {name: ping, methods: [GET], path: /api/v1/ping, mode: %s, handler: ping}\n"

func pingRoutes(mode string) string { return strings.Replace(pingRoute, "%s", mode, 1) }

func implementation(t testing.TB, body []byte) string {
	t.Helper()
	var v struct {
		Status, Implementation string
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("ping body %q: %v", body, err)
	}
	return v.Implementation
}

// Flipping a route by editing config.yaml while a client loops: no request
// fails, and the answer switches within a second of the write.
func TestFlipRouteLiveWithoutFailedRequests(t *testing.T) {
	m := startMonolith(t)
	c := config{Upstream: m.URL, Routes: pingRoutes("legacy")}
	p := start(t, c)

	if _, b := get(t, p.URL+"/api/v1/ping"); implementation(t, b) != "php" {
		t.Fatalf("before the flip: %s", b)
	}

	var (
		failed, served atomic.Int64
		switchedAt     atomic.Int64 // unix nanos of the first "go" answer
		stop           = make(chan struct{})
		wg             sync.WaitGroup
	)
	cl := client()
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := cl.Get(p.URL + "/api/v1/ping")
				if err != nil {
					failed.Add(1)
					continue
				}
				var v struct{ Implementation string }
				err = json.NewDecoder(resp.Body).Decode(&v)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					failed.Add(1)
					continue
				}
				served.Add(1)
				if v.Implementation == "go" {
					switchedAt.CompareAndSwap(0, time.Now().UnixNano())
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	c.Listen, c.Admin = strings.TrimPrefix(p.URL, "http://"), strings.TrimPrefix(p.Admin, "http://")
	c.SpoolDir = p.Dir + "/spool"
	c.Routes = pingRoutes("ported")
	wrote := time.Now()
	p.rewriteConfig(t, c.render())

	deadline := time.Now().Add(5 * time.Second)
	for switchedAt.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // keep load on after the switch
	close(stop)
	wg.Wait()

	if failed.Load() != 0 {
		t.Errorf("%d requests failed during the flip (%d served)", failed.Load(), served.Load())
	}
	if switchedAt.Load() == 0 {
		t.Fatal("the route never switched to Go")
	}
	if took := time.Unix(0, switchedAt.Load()).Sub(wrote); took > time.Second {
		t.Errorf("switch took %s, want ≤ 1s", took)
	}
	if _, b := get(t, p.URL+"/api/v1/ping"); implementation(t, b) != "go" {
		t.Fatalf("after the flip: %s", b)
	}
}

// A bad edit is refused and the running table keeps serving.
func TestInvalidEditsAreRefusedAndOldTableServes(t *testing.T) {
	m := startMonolith(t)
	c := config{Upstream: m.URL, Routes: pingRoutes("ported")}
	p := start(t, c)
	c.Listen, c.Admin, c.SpoolDir = strings.TrimPrefix(p.URL, "http://"), strings.TrimPrefix(p.Admin, "http://"), p.Dir+"/spool"

	tests := []struct {
		name, routes, wantLog string
	}{
		{"unknown handler", "  - {name: ping, methods: [GET], path: /api/v1/ping, mode: ported, handler: pong}\n", "pong"},
		{"bad mode", "  - {name: ping, methods: [GET], path: /api/v1/ping, mode: sideways, handler: ping}\n", "sideways"},
		{"broken yaml", "  - {name: ping, methods: [GET\n", "yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(p.logs.String())
			c.Routes = tt.routes
			p.rewriteConfig(t, c.render())
			deadline := time.Now().Add(3 * time.Second)
			for !strings.Contains(p.logs.String()[before:], tt.wantLog) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if !strings.Contains(p.logs.String()[before:], tt.wantLog) {
				t.Fatalf("no log line naming %q after the bad edit:\n%s", tt.wantLog, p.logs.String()[before:])
			}
			if _, b := get(t, p.URL+"/api/v1/ping"); implementation(t, b) != "go" {
				t.Fatalf("old table no longer serves: %s", b)
			}
		})
	}
}

// all_legacy sends every route to the monolith at once.
func TestKillSwitchSendsEverythingToLegacy(t *testing.T) {
	m := startMonolith(t)
	c := config{Upstream: m.URL, Routes: pingRoutes("ported")}
	p := start(t, c)
	if _, b := get(t, p.URL+"/api/v1/ping"); implementation(t, b) != "go" {
		t.Fatalf("ported route not served by Go: %s", b)
	}
	c.Listen, c.Admin, c.SpoolDir = strings.TrimPrefix(p.URL, "http://"), strings.TrimPrefix(p.Admin, "http://"), p.Dir+"/spool"
	c.AllLegacy = true
	p.rewriteConfig(t, c.render())
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if _, b := get(t, p.URL+"/api/v1/ping"); implementation(t, b) == "php" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("all_legacy did not send the ported route to PHP within 2s")
}
