package proxy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/ported/delivery"
	"github.com/strangler-proxy/strangler/proxy/control"
	"github.com/strangler-proxy/strangler/proxy/shadow"
	"github.com/strangler-proxy/strangler/routes"
)

// idemIntake is an event intake with the contract's Idempotency-Key
// rules, on either side: a key accepted before gets the first 202 again
// and publishes nothing. publish writes a fresh event's message; ignore
// makes it a Go side that forgets keys (the bug the test must catch).
type idemIntake struct {
	mu      sync.Mutex
	keys    delivery.Keys        // the Go side's (the shadow sink's memory)
	answers map[string][2]string // the legacy side's: key → event_id, received_at
	publish func(id, at string, idem *delivery.Idem)
	ignore  bool
}

func millis(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func (h *idemIntake) Serve(ctx *fasthttp.RequestCtx) error {
	drainBody(ctx)
	key := string(ctx.Request.Header.Peek("Idempotency-Key"))
	answer := func(id, at string) {
		jsonAnswer(ctx, 202, fmt.Sprintf(`{"status":"accepted","event_id":%q,"received_at":%q}`, id, at))
	}
	now := time.Now()
	if key == "" || h.ignore {
		id := testUUID()
		h.publish(id, millis(now), nil)
		answer(id, millis(now))
		return nil
	}
	if h.keys == nil { // the legacy side
		h.mu.Lock()
		defer h.mu.Unlock()
		if a, ok := h.answers[key]; ok {
			answer(a[0], a[1])
			return nil
		}
		id := testUUID()
		h.answers[key] = [2]string{id, millis(now)}
		h.publish(id, millis(now), nil)
		answer(id, millis(now))
		return nil
	}
	var digest [16]byte
	copy(digest[:], func() []byte { s := sha256.Sum256([]byte(key)); return s[:] }())
	first, found, err := h.keys.Claim(digest)
	switch {
	case errors.Is(err, delivery.ErrKeyInFlight):
		jsonAnswer(ctx, 409, `{"error":"idempotency_key_in_use"}`)
		return nil
	case found:
		answer(first.EventID, millis(time.UnixMilli(first.ReceivedAt)))
		return nil
	}
	id := testUUID()
	h.publish(id, millis(now), &delivery.Idem{Key: digest, ReceivedAt: now.UnixMilli()})
	answer(id, millis(now))
	return nil
}

// A client retrying with an Idempotency-Key gets the first answer again
// from the monolith, which publishes nothing. With a Go side that does
// the same, a retry is no mismatch, and its replayed event_id and
// received_at teach the noise profile nothing (one retry must not make
// those paths "computed" for good). A replay of a request the proxy never
// saw (answered before it started) is skipped, even before anything is
// learned. A Go side that forgets keys is caught at the retry.
func TestShadowComparesIdempotentRetries(t *testing.T) {
	for _, tt := range []struct {
		name     string
		ignore   bool
		mismatch bool
	}{
		{"go side replays", false, false},
		{"go side forgets keys", true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			eventsFile := filepath.Join(t.TempDir(), "forwarded-events.jsonl")
			line := func(id, at string) string {
				return fmt.Sprintf(`{"event_id":%q,"received_at":%q,"amount":"25.50"}`, id, at)
			}
			php := &idemIntake{answers: map[string][2]string{}, publish: func(id, at string, _ *delivery.Idem) {
				f, err := os.OpenFile(eventsFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
				if err != nil {
					panic(err)
				}
				defer f.Close()
				fmt.Fprintln(f, line(id, at))
			}}
			// Accepted before the proxy started: its retry is a replay the
			// shadow never saw the first of.
			php.answers["before-start"] = [2]string{testUUID(), millis(time.Now().Add(-5 * time.Minute))}
			rec := shadow.NewRecordingSink(0)
			goIntake := &idemIntake{keys: rec.Keys(0), ignore: tt.ignore, publish: func(id, at string, idem *delivery.Idem) {
				_ = rec.Publish(context.Background(), delivery.Message{EventID: id, Value: []byte(line(id, at)), Idem: idem})
			}}
			reg := routes.Registry{"h": goIntake}
			h := newHarness(t, harnessOptions{
				legacy: php,
				routes: []routes.RouteConfig{shadowRoute("events", "/events", "POST", &routes.ShadowConfig{LegacyEventsFile: eventsFile})},
				reg:    reg,
				mod:    func(o *Options) { o.Recorded = rec },
				// Both sides share this process's clock: a skew of 1ms lets
				// a retry 20ms later show its replayed times as old.
				plane: func(o *control.Options) { o.ShadowRegistry, o.Noise.ClockSkew = reg, time.Millisecond },
			})
			sent := uint64(0)
			post := func(key string) {
				t.Helper()
				hdr := ""
				if key != "" {
					hdr = "Idempotency-Key: " + key + "\r\n"
				}
				if r := h.roundTrip(t, "POST /events HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"+hdr+"Content-Length: 2\r\n\r\n{}"); r.status != 202 {
					t.Fatalf("status %d", r.status)
				}
				sent++
				// One at a time: a retry sent while the first is compared is
				// skipped (idempotent_retry_in_flight), which is not this test.
				// A job releases its key once it is done, just after its
				// outcome is counted: wait for both.
				waitFor(t, fmt.Sprintf("%d outcomes", sent), func() bool {
					c := h.srv.stats.Lookup("events")
					if c == nil {
						return false
					}
					k := c.Snapshot().Counts
					return k.Compared+k.Pending+k.Skipped+k.Errors >= sent && h.srv.engine.InFlight() == 0
				})
			}
			post("before-start") // nothing learned yet
			for range 25 {
				post("")
			}
			post("before-start")
			for i := range 5 {
				key := fmt.Sprintf("k-%d", i)
				post(key)
				time.Sleep(20 * time.Millisecond)
				post(key)
				post(key)
			}
			for range 25 {
				post("")
			}
			s := h.snapshot(t, "events", sent)
			if got := s.SkipReasons[shadow.SkipIdempotentReplay]; got != 2 {
				t.Errorf("skipped %v, want the 2 replays of a request the proxy never saw", s.SkipReasons)
			}
			classes := map[string]string{}
			for _, f := range s.Profile {
				classes[f.Template] = f.Class
			}
			for _, p := range []string{"body.event_id", "published.event_id"} {
				if classes[p] != "generated" {
					t.Errorf("%s is %q, want generated (profile %+v)", p, classes[p], s.Profile)
				}
			}
			for _, p := range []string{"body.received_at", "published.received_at"} {
				if classes[p] != "clock" {
					t.Errorf("%s is %q, want clock (profile %+v)", p, classes[p], s.Profile)
				}
			}
			if !tt.mismatch {
				if s.Counts.Mismatch != 0 || s.Counts.Compared != sent-2 {
					t.Fatalf("counts %+v, skipped %v, diffs %+v: want %d compared, none a mismatch", s.Counts, s.SkipReasons, s.TopDiffs, sent-2)
				}
				return
			}
			// Each key's two retries: the Go side answered anew and published.
			if s.Counts.Mismatch != 10 {
				t.Fatalf("counts %+v, skipped %v, diffs %+v: want the 10 retries mismatches", s.Counts, s.SkipReasons, s.TopDiffs)
			}
		})
	}
}
