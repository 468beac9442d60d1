package hotcache

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/strangler-proxy/strangler/ported/campaign"
)

func TestS3Lifecycle(t *testing.T) {
	env := newS3Env(t)
	env.put(t, "campaigns.json", doc(t, 100, 1))
	c, reg := newCache(t, NewS3Source(env.client, bucket, "campaigns.json"), Config{})
	ctx := context.Background()

	if err := c.Ready(ctx); !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("Ready before load: %v", err)
	}
	if _, ok := c.Campaign("cmp_000001"); ok {
		t.Fatal("lookup answered before the first load")
	}

	// Initial load.
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("Ready after load: %v", err)
	}
	first := c.Snapshot()
	if first.Set().Len() != 100 || first.ETag() == "" || c.parses.Load() != 1 {
		t.Fatalf("after load: %d entries, etag %q, %d parses", first.Set().Len(), first.ETag(), c.parses.Load())
	}
	if got := metric(t, reg, "strangler_hotcache_entries", ""); got != 100 {
		t.Fatalf("entries metric %v", got)
	}
	if got := metric(t, reg, "strangler_hotcache_bytes", ""); got != float64(first.Bytes()) || got == 0 {
		t.Fatalf("bytes metric %v, snapshot %d", got, first.Bytes())
	}

	// Unchanged: S3 answers 304 and nothing is parsed.
	env.lastCode()
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if code := env.lastCode(); code != http.StatusNotModified {
		t.Fatalf("unchanged object: S3 answered %d, want 304", code)
	}
	if c.parses.Load() != 1 || c.Snapshot() != first {
		t.Fatalf("unchanged object re-parsed (%d parses) or swapped", c.parses.Load())
	}
	if got := metric(t, reg, "strangler_hotcache_refreshes_total", ResultNotModified); got != 1 {
		t.Fatalf("not_modified count %v", got)
	}

	// Changed: a new snapshot.
	env.put(t, "campaigns.json", doc(t, 150, 2))
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	second := c.Snapshot()
	if second == first || second.Set().Len() != 150 || second.ETag() == first.ETag() || c.parses.Load() != 2 {
		t.Fatalf("after change: %d entries, etag %q (was %q), %d parses", second.Set().Len(), second.ETag(), first.ETag(), c.parses.Load())
	}
	if got := metric(t, reg, "strangler_hotcache_refreshes_total", ResultUpdated); got != 2 {
		t.Fatalf("updated count %v", got)
	}
	if got := metric(t, reg, "strangler_hotcache_last_refresh_failed", ""); got != 0 {
		t.Fatalf("failed gauge %v", got)
	}
}

// Every failure keeps the last good snapshot serving and counts an error.
func TestS3FailuresKeepSnapshot(t *testing.T) {
	dup := []byte(`{"version":1,"generated_at":"2025-01-01T00:00:00Z","campaigns":[` +
		`{"id":"cmp_1","advertiser_id":"a","name":"n","status":"active","countries":["DE"],"starts_at":"2025-01-01T00:00:00Z","ends_at":"2026-01-01T00:00:00Z","budget":{"amount_minor":1,"currency":"EUR"}},` +
		`{"id":"cmp_1","advertiser_id":"a","name":"n","status":"active","countries":["DE"],"starts_at":"2025-01-01T00:00:00Z","ends_at":"2026-01-01T00:00:00Z","budget":{"amount_minor":1,"currency":"EUR"}}]}`)
	tests := []struct {
		name    string
		breakIt func(t *testing.T, env *s3Env)
		wantErr error // optional, checked with errors.Is / errors.As
	}{
		{"unreachable", func(t *testing.T, env *s3Env) { env.srv.Close() }, nil},
		{"corrupt", func(t *testing.T, env *s3Env) { env.put(t, "k", []byte("{not json")) }, nil},
		{"trailing garbage", func(t *testing.T, env *s3Env) { env.put(t, "k", append(doc(t, 10, 3), "{}"...)) }, nil},
		{"duplicate ids", func(t *testing.T, env *s3Env) { env.put(t, "k", dup) }, &campaign.InvalidError{}},
		{"empty document", func(t *testing.T, env *s3Env) {
			env.put(t, "k", []byte(`{"version":1,"generated_at":"2025-01-01T00:00:00Z","campaigns":[]}`))
		}, nil},
		{"missing key", func(t *testing.T, env *s3Env) { env.del(t, "k") }, nil},
		{"truncated, Content-Length kept", func(t *testing.T, env *s3Env) {
			env.put(t, "k", doc(t, 60, 4))
			env.faults.mode.Store(faultTruncateKeepLength)
		}, nil},
		{"truncated, chunked", func(t *testing.T, env *s3Env) {
			env.put(t, "k", doc(t, 60, 4))
			env.faults.mode.Store(faultTruncateChunked)
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newS3Env(t)
			env.put(t, "k", doc(t, 50, 1))
			c, reg := newCache(t, NewS3Source(env.client, bucket, "k"), Config{})
			ctx := context.Background()
			if err := c.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			good := c.Snapshot()
			tt.breakIt(t, env)
			err := c.Refresh(ctx)
			if err == nil {
				t.Fatal("refresh succeeded")
			}
			t.Logf("refresh error: %v", err)
			if ie := new(campaign.InvalidError); tt.wantErr != nil && !errors.As(err, &ie) {
				t.Fatalf("error %v, want %T", err, tt.wantErr)
			}
			if c.Snapshot() != good {
				t.Fatal("snapshot replaced by a failed refresh")
			}
			if cp, ok := c.Campaign("cmp_000050"); !ok || cp.ID != "cmp_000050" {
				t.Fatal("old snapshot no longer serves")
			}
			if err := c.Ready(ctx); err != nil {
				t.Fatalf("Ready after a failed refresh of a loaded cache: %v", err)
			}
			if got := metric(t, reg, "strangler_hotcache_refreshes_total", ResultError); got != 1 {
				t.Fatalf("error count %v", got)
			}
			if got := metric(t, reg, "strangler_hotcache_last_refresh_failed", ""); got != 1 {
				t.Fatalf("failed gauge %v", got)
			}
			if got := metric(t, reg, "strangler_hotcache_entries", ""); got != 50 {
				t.Fatalf("entries %v", got)
			}
		})
	}
}

// The source is built from config the way main does it: s3:// with an
// endpoint, path style and static credentials.
func TestS3FromConfig(t *testing.T) {
	env := newS3Env(t)
	env.put(t, "data/campaigns.json", doc(t, 20, 1))
	cfg := Config{
		Source: "s3://" + bucket + "/data/campaigns.json",
		S3:     S3Config{Endpoint: env.srv.URL, PathStyle: true, AccessKeyID: "k", SecretAccessKey: "s"},
	}
	c, err := New(context.Background(), Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.Snapshot().Set().Len() != 20 {
		t.Fatalf("entries %d", c.Snapshot().Set().Len())
	}
	if err := c.Refresh(context.Background()); err != nil || c.parses.Load() != 1 {
		t.Fatalf("second refresh: %v, %d parses", err, c.parses.Load())
	}
}

// Until the first load, a failure leaves the cache not ready (when required).
func TestReadiness(t *testing.T) {
	f := false
	tests := []struct {
		name      string
		cfg       Config
		wantReady bool
	}{
		{"required by default", Config{}, false},
		{"not required", Config{RequireInitialLoad: &f}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newS3Env(t)
			c, _ := newCache(t, NewS3Source(env.client, bucket, "absent"), tt.cfg)
			if err := c.Refresh(context.Background()); err == nil {
				t.Fatal("refresh of a missing key succeeded")
			}
			err := c.Ready(context.Background())
			if (err == nil) != tt.wantReady {
				t.Fatalf("Ready: %v", err)
			}
			if !tt.wantReady && !errors.Is(err, ErrNotLoaded) {
				t.Fatalf("Ready error %v, want ErrNotLoaded", err)
			}
			if c.Set().Len() != 0 {
				t.Fatal("entries without a load")
			}
		})
	}
}
