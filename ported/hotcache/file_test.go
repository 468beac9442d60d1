package hotcache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/ported/campaign"
)

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestFileLifecycle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "campaigns.json")
	writeFile(t, path, doc(t, 100, 1))
	c, reg := newCache(t, nil, Config{Source: "file://" + path})
	ctx := context.Background()
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	first := c.Snapshot()
	if first.Set().Len() != 100 || c.parses.Load() != 1 {
		t.Fatalf("initial: %d entries, %d parses", first.Set().Len(), c.parses.Load())
	}

	// Unchanged: not modified, not read again.
	if err := c.Refresh(ctx); err != nil || c.parses.Load() != 1 || c.Snapshot() != first {
		t.Fatalf("unchanged: %v, %d parses", err, c.parses.Load())
	}

	// Touched (same bytes, new mtime): not modified, new ETag, no parse.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	if err := c.Refresh(ctx); err != nil || c.parses.Load() != 1 {
		t.Fatalf("touched: %v, %d parses", err, c.parses.Load())
	}
	touched := c.Snapshot()
	if touched.ETag() == first.ETag() || touched.Set() != first.Set() {
		t.Fatalf("touched: etag %q (was %q), same set %v", touched.ETag(), first.ETag(), touched.Set() == first.Set())
	}
	if got := metric(t, reg, "strangler_hotcache_refreshes_total", ResultNotModified); got != 2 {
		t.Fatalf("not_modified %v", got)
	}

	// Changed.
	writeFile(t, path, doc(t, 120, 2))
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Snapshot().Set().Len() != 120 || c.parses.Load() != 2 {
		t.Fatalf("changed: %d entries, %d parses", c.Snapshot().Set().Len(), c.parses.Load())
	}
}

func TestFileFailuresKeepSnapshot(t *testing.T) {
	full := doc(t, 60, 4)
	tests := []struct {
		name    string
		breakIt func(t *testing.T, path string)
		maxB    int64
		wantErr error
	}{
		{"missing", func(t *testing.T, path string) { os.Remove(path) }, 0, os.ErrNotExist},
		{"corrupt", func(t *testing.T, path string) { writeFile(t, path, []byte("]]")) }, 0, nil},
		{"truncated", func(t *testing.T, path string) { writeFile(t, path, full[:len(full)/2]) }, 0, nil},
		{"invalid window", func(t *testing.T, path string) {
			writeFile(t, path, bytes.Replace(full, []byte(`"ends_at":"202`), []byte(`"ends_at":"198`), 1))
		}, 0, &campaign.InvalidError{}},
		{"too large", func(t *testing.T, path string) { writeFile(t, path, full) }, 4096, ErrTooLarge},
		{"directory", func(t *testing.T, path string) {
			os.Remove(path)
			os.Mkdir(path, 0o755)
		}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "campaigns.json")
			writeFile(t, path, doc(t, 10, 1))
			c, reg := newCache(t, nil, Config{Source: "file://" + path, MaxBytes: tt.maxB})
			ctx := context.Background()
			if err := c.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			good := c.Snapshot()
			tt.breakIt(t, path)
			err := c.Refresh(ctx)
			t.Logf("refresh error: %v", err)
			var invalid *campaign.InvalidError
			_, wantInvalid := tt.wantErr.(*campaign.InvalidError)
			if wantInvalid && !errors.As(err, &invalid) {
				t.Fatalf("refresh error %v, want an InvalidError", err)
			}
			if err == nil || (tt.wantErr != nil && !wantInvalid && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("refresh error %v, want %v", err, tt.wantErr)
			}
			if c.Snapshot() != good {
				t.Fatal("snapshot replaced by a failed refresh")
			}
			if _, ok := c.Campaign("cmp_000010"); !ok {
				t.Fatal("old snapshot no longer serves")
			}
			if got := metric(t, reg, "strangler_hotcache_refreshes_total", ResultError); got != 1 {
				t.Fatalf("error count %v", got)
			}
			// A second failure counts again: the metric says how long it lasts.
			if err := c.Refresh(ctx); err == nil {
				t.Fatal("second refresh succeeded")
			}
			if got := metric(t, reg, "strangler_hotcache_refreshes_total", ResultError); got != 2 {
				t.Fatalf("error count %v", got)
			}
		})
	}
}

// stubSource returns a fixed object, to test what the cache does with the
// size a source announces.
type stubSource struct {
	body []byte
	size int64
	etag string
}

func (s stubSource) Fetch(context.Context, string) (Object, error) {
	return Object{Body: io.NopCloser(bytes.NewReader(s.body)), ETag: s.etag, Size: s.size}, nil
}

func TestAnnouncedSize(t *testing.T) {
	body := doc(t, 5, 1)
	n := int64(len(body))
	tests := []struct {
		name    string
		size    int64
		max     int64
		wantErr error
	}{
		{"exact", n, 0, nil},
		{"unknown", -1, 0, nil},
		{"body shorter than announced", n + 10, 0, ErrTruncated},
		{"body longer than announced", n - 10, 0, ErrTruncated},
		{"announced too large", n, n - 1, ErrTooLarge},
		{"unknown and too large", -1, n - 1, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newCache(t, stubSource{body: body, size: tt.size, etag: "e"}, Config{MaxBytes: tt.max})
			err := c.Refresh(context.Background())
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if loaded := c.Snapshot().Loaded(); loaded != (tt.wantErr == nil) {
				t.Fatalf("loaded %v", loaded)
			}
		})
	}
}

// A store that ignores If-None-Match and answers 200 with the same ETag must
// not cause a re-parse.
func TestSameETagNotReparsed(t *testing.T) {
	c, reg := newCache(t, stubSource{body: doc(t, 5, 1), size: -1, etag: `"abc"`}, Config{})
	for range 3 {
		if err := c.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if c.parses.Load() != 1 || metric(t, reg, "strangler_hotcache_refreshes_total", ResultNotModified) != 2 {
		t.Fatalf("%d parses", c.parses.Load())
	}
}
