package legacy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/internal/monolith"
	"github.com/strangler-proxy/strangler/internal/monolith/monolithtest"
)

// TestMonolithBackendOutage: three real Nginx + PHP-FPM backends under a
// steady load of GETs. One is killed mid-load and later started again on
// its port. No client sees an error; the dead backend is ejected and marked
// unhealthy (in the metrics), then readmitted, and gets its share of the
// load again.
func TestMonolithBackendOutage(t *testing.T) {
	ms := monolithtest.StartN(t, 3, monolith.Options{Workers: 2})
	cfg := testConfig("unused")
	cfg.Upstream = ""
	for _, m := range ms {
		cfg.Upstreams = append(cfg.Upstreams, Backend{URL: m.URL})
	}
	// Short intervals so the test is quick; the test waits for states,
	// never for durations.
	cfg.Health = HealthConfig{Path: "/healthz-php", Interval: 300 * time.Millisecond, Timeout: 300 * time.Millisecond,
		HealthyAfter: 2, UnhealthyAfter: 2}
	cfg.Ejection = EjectionConfig{ConsecutiveFailures: 3, BaseTime: 500 * time.Millisecond, MaxTime: 2 * time.Second}
	fwd, reg := newTestForwarder(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- fwd.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	fr := startFront(t, fwd, nil)

	// The load: GETs that PHP answers at once, and ones it holds 20 ms, so
	// that requests are inside PHP when the backend dies.
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		served   atomic.Int64
		mu       sync.Mutex
		failures []string
	)
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: ioTimeout}
	for w := range 6 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				target := "/headers?w=" + strconv.Itoa(w)
				if i%2 == 1 {
					target = "/slow?ms=20"
				}
				if err := get(client, "http://"+fr.addr+target); err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				served.Add(1)
			}
		})
	}
	defer func() {
		stop.Store(true)
		wg.Wait()
		if len(failures) > 0 {
			t.Errorf("%d client errors, first: %s", len(failures), failures[0])
		}
	}()

	dead := fwd.pool.backends[1]
	requests := func(b *backend) float64 {
		return gatherValue(t, reg, "strangler_upstream_backend_requests_total", b.addr)
	}
	gauge := func(name string, b *backend) float64 {
		return gatherValue(t, reg, "strangler_upstream_backend_"+name, b.addr)
	}
	waitFor(t, "every backend to serve", func() bool {
		for _, b := range fwd.pool.backends {
			if requests(b) < 20 {
				return false
			}
		}
		return true
	})

	port, _ := strconv.Atoi(mustURL(t, ms[1].URL).Port())
	if err := ms[1].Stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the dead backend to be ejected and unhealthy", func() bool {
		return gatherValue(t, reg, "strangler_upstream_backend_ejections_total", dead.addr) >= 1 && gauge("healthy", dead) == 0
	})
	if gatherValue(t, reg, "strangler_upstream_backend_errors_total", dead.addr) < 3 {
		t.Errorf("dead backend errors = %v, want at least consecutive_failures", gatherValue(t, reg, "strangler_upstream_backend_errors_total", dead.addr))
	}
	// While it is down, the others carry everything.
	before := served.Load()
	waitFor(t, "load on the others", func() bool { return served.Load() > before+50 })

	monolithtest.Start(t, monolith.Options{Workers: 2, Port: port})
	waitFor(t, "the backend to be healthy and readmitted", func() bool {
		return gauge("healthy", dead) == 1 && gauge("ejected", dead) == 0
	})
	// Load spreads again: of the next requests, the returned backend gets a
	// fair part (a third, give or take; a tenth is far from zero).
	base := make([]float64, 3)
	for i, b := range fwd.pool.backends {
		base[i] = requests(b)
	}
	total := func() float64 {
		var n float64
		for i, b := range fwd.pool.backends {
			n += requests(b) - base[i]
		}
		return n
	}
	waitFor(t, "300 more requests", func() bool { return total() >= 300 })
	if share := (requests(dead) - base[1]) / total(); share < 0.1 {
		t.Errorf("the returned backend got %.0f%% of the requests after it came back, want about a third", 100*share)
	}
	if counter(t, fwd, "dial")+counter(t, fwd, "reset") != 0 {
		t.Errorf("errors reaching clients: dial %v, reset %v", counter(t, fwd, "dial"), counter(t, fwd, "reset"))
	}
	t.Logf("served %d requests, %v retries", served.Load(), value(t, fwd.metrics.retries))
}

// get fails unless target answers 200 with a complete body.
func get(c *http.Client, target string) error {
	resp, err := c.Get(target)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: body: %w", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s %.100q", target, resp.Status, body)
	}
	return nil
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
