// Package hotcache keeps the campaign data set in memory, refreshed from S3
// or a file on a jittered interval with a conditional GET, parsed into an
// immutable snapshot and swapped atomically. A failed refresh keeps serving
// the last good snapshot and says so in metrics and logs.
//
// Wiring, in main:
//
//	cache, err := hotcache.New(ctx, hotcache.Options{Config: cfg.Hotcache, Logger: log, Registerer: reg})
//	group.Go(func() error { return cache.Run(ctx) })           // loads at once, then refreshes
//	readiness check: cache.Ready                                 // fails until the first load
//	admin mux: "/admin/hotcache/refresh" → cache.RefreshHandler() // POST forces a refresh
//	registry["campaigns.get"] = campaigns.NewGet(cache, time.Now) // *Cache is a campaigns.Source
//	events: cache is a campaign.Lookup
package hotcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/internal/jitter"
	"github.com/strangler-proxy/strangler/internal/promreg"
	"github.com/strangler-proxy/strangler/ported/campaign"
)

var (
	// ErrNotLoaded is returned by Ready before the first successful load.
	ErrNotLoaded = errors.New("hot cache not loaded")
	// ErrTooLarge says the document exceeds Config.MaxBytes.
	ErrTooLarge = errors.New("document too large")
	// ErrTruncated says the body is shorter or longer than announced.
	ErrTruncated = errors.New("body length differs from announced size")
)

// Refresh results, also the values of the refreshes_total "result" label.
const (
	ResultUpdated     = "updated"
	ResultNotModified = "not_modified"
	ResultError       = "error"
)

// Snapshot is one loaded version of the document. It is immutable; the cache
// replaces it whole.
type Snapshot struct {
	set      *campaign.Set
	etag     string
	loadedAt time.Time
	bytes    int64
}

// Set is the snapshot's campaigns; an empty set before the first load.
func (s *Snapshot) Set() *campaign.Set { return s.set }

// ETag identifies the source version the snapshot was parsed from.
func (s *Snapshot) ETag() string { return s.etag }

// LoadedAt is when the snapshot was parsed; zero before the first load.
func (s *Snapshot) LoadedAt() time.Time { return s.loadedAt }

// Bytes is the size of the source document.
func (s *Snapshot) Bytes() int64 { return s.bytes }

// Loaded reports whether the snapshot holds a loaded document.
func (s *Snapshot) Loaded() bool { return !s.loadedAt.IsZero() }

// Options configures New.
type Options struct {
	Config Config
	// Source overrides the one Config.Source names (tests, custom stores).
	Source Source
	// Logger; nil means no logs.
	Logger *zap.Logger
	// Registerer receives the metrics; nil means they are not registered.
	Registerer prometheus.Registerer
	// Now is the clock for ages and timestamps; nil means time.Now.
	Now func() time.Time
}

// Cache serves campaign lookups from the current snapshot. Lookups take no
// lock: one atomic load and one map lookup.
type Cache struct {
	cfg   Config
	src   Source
	log   *zap.Logger
	now   func() time.Time
	start time.Time

	cur       atomic.Pointer[Snapshot]
	checkedAt atomic.Int64 // unix nanos of the last successful refresh
	lastErr   atomic.Pointer[string]
	parses    atomic.Int64 // documents parsed, for tests
	// nextLoad is when Run tries a first load again (unix ns), while
	// nothing is loaded: what RetryAfter tells clients.
	nextLoad atomic.Int64

	// refreshMu makes refreshes (ticker and admin) one at a time.
	refreshMu sync.Mutex
	// interval picks the wait before the next refresh; firstBackoff is the
	// first retry delay while nothing is loaded. Fields so tests can shorten them.
	interval     func() time.Duration
	firstBackoff time.Duration

	refreshes *prometheus.CounterVec
	failing   prometheus.Gauge
}

// Interface guard.
var _ campaign.Lookup = (*Cache)(nil)

// New builds a cache; it loads nothing until Refresh or Run.
func New(ctx context.Context, o Options) (*Cache, error) {
	if err := o.Config.Validate(); err != nil {
		return nil, err
	}
	cfg := o.Config.WithDefaults()
	c := &Cache{cfg: cfg, src: o.Source, log: o.Logger, now: o.Now}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	c.log = c.log.Named("hotcache")
	if c.now == nil {
		c.now = time.Now
	}
	if c.src == nil {
		src, err := NewSource(ctx, cfg)
		if err != nil {
			return nil, err
		}
		c.src = src
	}
	c.start = c.now()
	c.cur.Store(&Snapshot{})
	c.interval = func() time.Duration { return jittered(cfg.Refresh, *cfg.Jitter) }
	c.firstBackoff = time.Second
	if err := c.registerMetrics(o.Registerer); err != nil {
		return nil, err
	}
	return c, nil
}

func jittered(d time.Duration, j float64) time.Duration {
	if j <= 0 {
		return d
	}
	// Uniform in d×[1-j, 1+j].
	return time.Duration(float64(d) * (1 - j + 2*j*rand.Float64()))
}

func (c *Cache) registerMetrics(reg prometheus.Registerer) error {
	c.refreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strangler_hotcache_refreshes_total",
		Help: "Hot cache refresh attempts by result (updated, not_modified, error).",
	}, []string{"result"})
	for _, r := range []string{ResultUpdated, ResultNotModified, ResultError} {
		c.refreshes.WithLabelValues(r)
	}
	c.failing = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "strangler_hotcache_last_refresh_failed",
		Help: "1 when the last refresh failed and an older snapshot (or none) is being served.",
	})
	collectors := []prometheus.Collector{
		c.refreshes,
		c.failing,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strangler_hotcache_snapshot_age_seconds",
			Help: "Seconds since the source was last confirmed current (updated or not modified); since start when never loaded.",
		}, func() float64 { return c.age().Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strangler_hotcache_entries",
			Help: "Campaigns in the current snapshot.",
		}, func() float64 { return float64(c.cur.Load().set.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strangler_hotcache_bytes",
			Help: "Size of the document behind the current snapshot.",
		}, func() float64 { return float64(c.cur.Load().bytes) }),
	}
	return promreg.Register(reg, "hotcache", collectors...)
}

func (c *Cache) age() time.Duration {
	since := c.start
	if ns := c.checkedAt.Load(); ns != 0 {
		since = time.Unix(0, ns)
	}
	return c.now().Sub(since)
}

// Campaign implements campaign.Lookup from the current snapshot.
func (c *Cache) Campaign(id string) (*campaign.Campaign, bool) {
	return c.cur.Load().set.Campaign(id)
}

// Set returns the current snapshot's campaigns. A caller that needs several
// reads to agree (a list page) uses one Set for the whole request.
func (c *Cache) Set() *campaign.Set { return c.cur.Load().set }

// Snapshot returns the current snapshot.
func (c *Cache) Snapshot() *Snapshot { return c.cur.Load() }

// Loaded reports whether a document was ever loaded. Before that every
// campaign is unknown, and the handlers answer 503 with Retry-After rather
// than a permanent "not found".
func (c *Cache) Loaded() bool { return c.cur.Load().Loaded() }

// RetryAfter is how long a client should wait before trying again while
// nothing is loaded: the time to Run's next attempt, within [1s, 60s] (a
// first load failing for long backs off up to the refresh interval, which
// is no delay to hand a client).
func (c *Cache) RetryAfter() time.Duration {
	d := time.Duration(c.nextLoad.Load() - c.now().UnixNano())
	return min(max(d, time.Second), time.Minute)
}

// Ready returns nil once a document is loaded, or at once when the config
// does not require an initial load.
func (c *Cache) Ready(context.Context) error {
	if c.cur.Load().Loaded() || !*c.cfg.RequireInitialLoad {
		return nil
	}
	if msg := c.lastErr.Load(); msg != nil {
		return fmt.Errorf("%w: %s", ErrNotLoaded, *msg)
	}
	return ErrNotLoaded
}

// Refresh fetches the source now (conditionally on the current ETag) and
// swaps in a new snapshot when it changed. On error the current snapshot
// stays, the metrics say so, and the error is the caller's to report (Run
// logs it; RefreshHandler answers it).
func (c *Cache) Refresh(ctx context.Context) error {
	_, err := c.refresh(ctx)
	return err
}

func (c *Cache) refresh(ctx context.Context) (string, error) {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()

	began := time.Now()
	result, err := c.load(ctx)
	took := time.Since(began)
	c.refreshes.WithLabelValues(result).Inc()
	if err != nil {
		msg := err.Error()
		c.lastErr.Store(&msg)
		c.failing.Set(1)
		return result, err
	}
	c.lastErr.Store(nil)
	c.failing.Set(0)
	c.checkedAt.Store(c.now().UnixNano())
	if result == ResultUpdated {
		snap := c.cur.Load()
		c.log.Info("snapshot updated", zap.Int("entries", snap.set.Len()), zap.Int64("bytes", snap.bytes),
			zap.String("etag", snap.etag), zap.Duration("took", took))
	} else if ce := c.log.Check(zap.DebugLevel, "snapshot not modified"); ce != nil {
		ce.Write(zap.Duration("took", took))
	}
	return result, nil
}

// load does one fetch-validate-swap. Called with refreshMu held.
func (c *Cache) load(ctx context.Context) (string, error) {
	prev := c.cur.Load()
	obj, err := c.src.Fetch(ctx, prev.etag)
	if err != nil {
		return ResultError, fmt.Errorf("fetch: %w", err)
	}
	if obj.NotModified {
		if !prev.Loaded() {
			return ResultError, errors.New("fetch: not modified before a first load")
		}
		if obj.ETag != "" && obj.ETag != prev.etag {
			next := *prev
			next.etag = obj.ETag
			c.cur.Store(&next)
		}
		return ResultNotModified, nil
	}
	if obj.Body == nil {
		return ResultError, errors.New("fetch: no body")
	}
	defer obj.Body.Close()
	// A store that ignores If-None-Match answers 200 with the same ETag.
	if prev.Loaded() && obj.ETag != "" && obj.ETag == prev.etag {
		return ResultNotModified, nil
	}
	if obj.Size > c.cfg.MaxBytes {
		return ResultError, fmt.Errorf("read: %d bytes: %w", obj.Size, ErrTooLarge)
	}
	var buf bytes.Buffer
	if obj.Size > 0 {
		buf.Grow(int(obj.Size) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(obj.Body, c.cfg.MaxBytes+1)); err != nil {
		return ResultError, fmt.Errorf("read: %w", err)
	}
	n := int64(buf.Len())
	if n > c.cfg.MaxBytes {
		return ResultError, fmt.Errorf("read: more than %d bytes: %w", c.cfg.MaxBytes, ErrTooLarge)
	}
	if obj.Size >= 0 && n != obj.Size {
		return ResultError, fmt.Errorf("read: got %d of %d bytes: %w", n, obj.Size, ErrTruncated)
	}
	c.parses.Add(1)
	f, err := campaign.Unmarshal(buf.Bytes())
	if err != nil {
		return ResultError, err
	}
	if len(f.Campaigns) == 0 {
		// An empty export is far more likely a broken job than a business
		// decision; keep the last good data.
		return ResultError, errors.New("invalid campaigns: document has no campaigns")
	}
	set, err := campaign.NewSet(f)
	if err != nil {
		return ResultError, err
	}
	c.cur.Store(&Snapshot{set: set, etag: obj.ETag, loadedAt: c.now(), bytes: n})
	return ResultUpdated, nil
}

// Run loads the document and refreshes it until ctx is done; it returns nil
// then. Until the first load succeeds it retries with a backoff from 1s up
// to the refresh interval (each wait drawn from its upper half), instead
// of waiting a full interval.
func (c *Cache) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	if c.cur.Load().Loaded() {
		timer.Reset(c.interval())
	}
	backoff := c.firstBackoff
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		err := c.Refresh(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			snap := c.cur.Load()
			c.log.Warn("refresh failed; keeping the current snapshot",
				zap.Error(err), zap.Bool("loaded", snap.Loaded()), zap.String("etag", snap.etag))
		}
		switch {
		case err != nil && !c.cur.Load().Loaded():
			// Equal jitter: a fleet started together does not retry the
			// source in lockstep.
			wait := jitter.Down(backoff, 0.5)
			c.nextLoad.Store(c.now().Add(wait).UnixNano())
			timer.Reset(wait)
			backoff = min(2*backoff, c.cfg.Refresh)
		default:
			timer.Reset(c.interval())
		}
	}
}
