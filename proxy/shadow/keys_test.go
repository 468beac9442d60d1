package shadow

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/ported/delivery"
)

// The shadow handlers' key memory follows the live intake's rules — a
// claim in progress is in flight, a settled key replays its first answer,
// a released claim leaves nothing — and forgets keys past its window or
// its cap.
func TestKeyMemory(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	k := newKeyMemory(time.Hour, 2, clock)
	key := func(b byte) [16]byte { return [16]byte{b} }
	settle := func(b byte, id string) {
		t.Helper()
		if _, found, err := k.Claim(key(b)); found || err != nil {
			t.Fatalf("claim %d: found %v, %v", b, found, err)
		}
		if _, _, err := k.Claim(key(b)); !errors.Is(err, delivery.ErrKeyInFlight) {
			t.Fatalf("second claim of %d: %v, want in flight", b, err)
		}
		k.settle(delivery.Idem{Key: key(b), ReceivedAt: now.UnixMilli()}, id)
	}
	settle(1, "e1")
	if r, found, err := k.Claim(key(1)); !found || err != nil || r.EventID != "e1" {
		t.Fatalf("retry: %+v %v %v, want the first answer", r, found, err)
	}
	if _, _, err := k.Claim(key(9)); err != nil {
		t.Fatal(err)
	}
	k.Release(key(9))
	if _, found, err := k.Claim(key(9)); found || err != nil {
		t.Fatalf("after release: found %v, %v", found, err)
	}
	k.Release(key(9))
	settle(2, "e2")
	settle(3, "e3") // over the cap of 2: key 1 goes
	if _, found, _ := k.Claim(key(1)); found {
		t.Fatal("key 1 still remembered past the cap")
	}
	k.Release(key(1))
	now = now.Add(time.Hour)
	if _, found, _ := k.Claim(key(3)); found {
		t.Fatal("key 3 still remembered past the window")
	}
}

// A RecordingSink settles the claim a message carries, in the memory
// Keys gave.
func TestRecordingSinkSettlesKeys(t *testing.T) {
	s := NewRecordingSink(0)
	keys := s.Keys(0)
	k := [16]byte{7}
	if _, found, err := keys.Claim(k); found || err != nil {
		t.Fatal(found, err)
	}
	_ = s.Publish(context.Background(), delivery.Message{EventID: "e7", Value: []byte(`{}`), Idem: &delivery.Idem{Key: k, ReceivedAt: 42}})
	if r, found, err := keys.Claim(k); !found || err != nil || r.EventID != "e7" || r.ReceivedAt != 42 {
		t.Fatalf("%+v %v %v, want the recorded answer", r, found, err)
	}
}

// The engine's retry memory: one job per key at a time; the first answer
// kept wins; forgotten past the window or the cap.
func TestRetryWindows(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r := newRetryWindows(time.Hour, 1, func() time.Time { return now })
	if _, seen, busy := r.begin("events", "k"); seen || busy {
		t.Fatal(seen, busy)
	}
	if _, _, busy := r.begin("events", "k"); !busy {
		t.Fatal("a second job took a key in flight")
	}
	if _, seen, busy := r.begin("other", "k"); seen || busy {
		t.Fatal("keys are per route")
	}
	r.end("other", "k", nil)
	first := &firstAnswer{legacy: compare.Window{Start: now, End: now.Add(time.Millisecond)}}
	r.end("events", "k", first)
	f, seen, busy := r.begin("events", "k")
	if !seen || busy || f.legacy != first.legacy {
		t.Fatalf("%+v %v %v, want the first answer's windows", f, seen, busy)
	}
	r.end("events", "k", &firstAnswer{}) // not the first: ignored
	if f, _, _ := r.begin("events", "k"); f.legacy != first.legacy {
		t.Fatal("a later answer replaced the first")
	}
	r.end("events", "k", nil)
	r.begin("events", "k2")
	r.end("events", "k2", &firstAnswer{}) // over the cap of 1
	if _, seen, _ := r.begin("events", "k"); seen {
		t.Fatal("k still remembered past the cap")
	}
	r.end("events", "k", nil)
	now = now.Add(time.Hour)
	if _, seen, _ := r.begin("events", "k2"); seen {
		t.Fatal("k2 still remembered past the window")
	}
}
