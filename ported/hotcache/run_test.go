package hotcache

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strangler-proxy/strangler/ported/campaign"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runCache starts c.Run and returns a stop func that cancels it and waits.
func runCache(t *testing.T, c *Cache) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("Run did not stop after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestRunRefreshesOnInterval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.json")
	writeFile(t, path, doc(t, 10, 1))
	c, _ := newCache(t, nil, Config{Source: "file://" + path})
	c.interval = func() time.Duration { return 5 * time.Millisecond }
	stop := runCache(t, c)
	waitFor(t, "initial load", func() bool { return c.Snapshot().Set().Len() == 10 })
	writeFile(t, path, doc(t, 25, 2))
	waitFor(t, "refresh", func() bool { return c.Snapshot().Set().Len() == 25 })
	stop()
	// Stopped: a change is no longer picked up.
	writeFile(t, path, doc(t, 30, 3))
	time.Sleep(30 * time.Millisecond)
	if n := c.Snapshot().Set().Len(); n != 25 {
		t.Fatalf("refreshed after stop: %d entries", n)
	}
}

func TestRunRetriesFirstLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.json")
	c, reg := newCache(t, nil, Config{Source: "file://" + path})
	c.firstBackoff = 5 * time.Millisecond
	c.interval = func() time.Duration { return time.Hour }
	runCache(t, c)
	waitFor(t, "failed attempts", func() bool { return metric(t, reg, "strangler_hotcache_refreshes_total", ResultError) >= 2 })
	if err := c.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("Ready while failing: %v", err)
	}
	writeFile(t, path, doc(t, 10, 1))
	waitFor(t, "load after retries", func() bool { return c.Ready(context.Background()) == nil })
}

// Until a first load succeeds the cache says so (Loaded) and when to try
// again: the retry schedule, within [1s, 60s].
func TestNotLoadedSaysWhenToRetry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.json")
	c, reg := newCache(t, nil, Config{Source: "file://" + path, Refresh: time.Hour})
	if c.Loaded() {
		t.Fatal("Loaded before any load")
	}
	if d := c.RetryAfter(); d != time.Second {
		t.Errorf("RetryAfter before Run = %s, want the 1s floor", d)
	}
	c.firstBackoff = 40 * time.Second
	runCache(t, c)
	waitFor(t, "a failed attempt", func() bool { return metric(t, reg, "strangler_hotcache_refreshes_total", ResultError) >= 1 })
	waitFor(t, "the next attempt scheduled", func() bool { return c.RetryAfter() > 10*time.Second })
	if d := c.RetryAfter(); d > 40*time.Second {
		t.Errorf("RetryAfter = %s, want at most the 40s backoff", d)
	}
	c.nextLoad.Store(time.Now().Add(time.Hour).UnixNano())
	if d := c.RetryAfter(); d != time.Minute {
		t.Errorf("RetryAfter with the next attempt an hour away = %s, want the 60s cap", d)
	}
	writeFile(t, path, doc(t, 10, 1))
	if err := c.Refresh(context.Background()); err != nil || !c.Loaded() {
		t.Fatalf("Refresh = %v, Loaded %v", err, c.Loaded())
	}
}

func TestRunWaitsAfterPriorLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.json")
	writeFile(t, path, doc(t, 10, 1))
	c, reg := newCache(t, nil, Config{Source: "file://" + path})
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.interval = func() time.Duration { return time.Hour }
	stop := runCache(t, c)
	time.Sleep(20 * time.Millisecond)
	stop()
	total := 0.0
	for _, r := range []string{ResultUpdated, ResultNotModified, ResultError} {
		total += metric(t, reg, "strangler_hotcache_refreshes_total", r)
	}
	if total != 1 {
		t.Fatalf("%v refreshes; Run should wait an interval after a load done by the caller", total)
	}
}

func TestJitter(t *testing.T) {
	seen := map[time.Duration]bool{}
	for range 200 {
		d := jittered(time.Hour, 0.1)
		if d < 54*time.Minute || d > 66*time.Minute {
			t.Fatalf("jittered %v outside 1h±10%%", d)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Fatalf("only %d distinct intervals", len(seen))
	}
	if d := jittered(time.Hour, 0); d != time.Hour {
		t.Fatalf("no jitter: %v", d)
	}
}

// versions serves the same document under a new ETag on every fetch, so each
// refresh parses and swaps a new snapshot.
type versions struct {
	doc []byte
	n   atomic.Int64
}

func (v *versions) Fetch(context.Context, string) (Object, error) {
	return Object{Body: io.NopCloser(bytes.NewReader(v.doc)), ETag: fmt.Sprint("v", v.n.Add(1)), Size: int64(len(v.doc))}, nil
}

// Readers never block, never miss and never see a half-built snapshot while
// a 100,000-entry snapshot is rebuilt and swapped under them. (Slow under
// -race: encoding/json is; the readers pause now and then to leave the
// refresher CPU on a shared machine.)
func TestLookupsDuringRefresh(t *testing.T) {
	const n = 100_000
	t0 := time.Now()
	c, _ := newCache(t, &versions{doc: doc(t, n, 1)}, Config{Timeout: 5 * time.Minute})
	t.Logf("encode %v", time.Since(t0))
	ctx := context.Background()
	t0 = time.Now()
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("first load %v", time.Since(t0))
	var stop atomic.Bool
	var lookups atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan string, 2)
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			var id []byte
			for !stop.Load() {
				id = fmt.Appendf(id[:0], "cmp_%06d", 1+rng.IntN(n))
				cp, ok := c.Campaign(string(id))
				if !ok || cp.ID != string(id) {
					errs <- "lookup missed " + string(id)
					return
				}
				if lookups.Add(1)%512 == 0 {
					set := c.Set()
					de := set.Sorted("DE")
					if set.Len() != n || len(de) == 0 || !slices.IsSortedFunc(de, func(a, b *campaign.Campaign) int { return strings.Compare(a.ID, b.ID) }) {
						errs <- "inconsistent set"
						return
					}
					time.Sleep(100 * time.Microsecond)
				}
			}
		}()
	}
	before := c.Snapshot()
	seen := lookups.Load()
	t0 = time.Now()
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("refresh under readers %v, %d lookups", time.Since(t0), lookups.Load()-seen)
	if c.Snapshot() == before || c.Snapshot().Set().Len() != n {
		t.Fatal("refresh did not swap")
	}
	if lookups.Load() == seen {
		t.Fatal("no lookup was served during the refresh")
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

func TestRefreshHandler(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.json")
	writeFile(t, path, doc(t, 10, 1))
	c, _ := newCache(t, nil, Config{Source: "file://" + path})
	h := c.RefreshHandler()
	tests := []struct {
		name       string
		method     string
		before     func()
		wantStatus int
		wantResult string
		wantN      int
	}{
		{"get refused", http.MethodGet, nil, http.StatusMethodNotAllowed, "", 0},
		{"first load", http.MethodPost, nil, http.StatusOK, ResultUpdated, 10},
		{"unchanged", http.MethodPost, nil, http.StatusOK, ResultNotModified, 10},
		{"broken source", http.MethodPost, func() { writeFile(t, path, []byte("x")) }, http.StatusBadGateway, ResultError, 10},
		{"fixed", http.MethodPost, func() { writeFile(t, path, doc(t, 12, 2)) }, http.StatusOK, ResultUpdated, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != nil {
				tt.before()
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, "/admin/hotcache/refresh", nil))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantStatus == http.StatusMethodNotAllowed {
				if rec.Header().Get("Allow") != http.MethodPost {
					t.Fatalf("Allow %q", rec.Header().Get("Allow"))
				}
				return
			}
			var body struct {
				Result  string `json:"result"`
				Entries int    `json:"entries"`
				Error   string `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if body.Result != tt.wantResult || body.Entries != tt.wantN || (body.Error != "") != (tt.wantResult == ResultError) {
				t.Fatalf("body %s", rec.Body)
			}
		})
	}
}

func TestSnapshotAgeMetric(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.json")
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	advance := func(d time.Duration) { clock.Add(int64(d)) }
	reg := prometheus.NewRegistry()
	c, err := New(context.Background(), Options{Config: Config{Source: "file://" + path}, Registerer: reg, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	age := func() float64 { return metric(t, reg, "strangler_hotcache_snapshot_age_seconds", "") }
	advance(30 * time.Second)
	if got := age(); got != 30 {
		t.Fatalf("never loaded: age %v, want 30 (since start)", got)
	}
	writeFile(t, path, doc(t, 5, 1))
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := age(); got != 0 || !c.Snapshot().LoadedAt().Equal(now()) {
		t.Fatalf("just loaded: age %v", got)
	}
	advance(90 * time.Second)
	if err := c.Refresh(context.Background()); err != nil { // not modified: still current
		t.Fatal(err)
	}
	advance(10 * time.Second)
	if got := age(); got != 10 {
		t.Fatalf("after not-modified: age %v, want 10", got)
	}
	writeFile(t, path, []byte("broken"))
	if err := c.Refresh(context.Background()); err == nil {
		t.Fatal("broken file accepted")
	}
	advance(5 * time.Second)
	if got := age(); got != 15 {
		t.Fatalf("after a failure: age %v, want 15", got)
	}
}
