package shadow

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/ported/delivery"
	"github.com/strangler-proxy/strangler/routes"
)

// Idempotency-Keys in shadow mode.
//
// A client that retries with an Idempotency-Key gets the first answer
// again from the legacy side: the same event_id, the same received_at,
// and nothing published. A Go candidate that ignored the header would
// answer a fresh 202 and publish, and one such retry would teach the
// noise profile that event_id repeats and received_at lies outside its
// request's window: computed, for good, and every later comparison a
// false mismatch. So:
//
//   - the Go candidate runs with a key memory of its own (keyMemory,
//     settled by the RecordingSink when it records the message): it
//     validates, claims and replays keys as the live intake would, never
//     touching the live keys;
//   - the engine remembers the time windows (and a digest) of each keyed
//     request whose legacy answer was a success (retryWindows): a retry
//     the legacy side answers with those bytes again is compared in the
//     windows of the request it repeats, and its legacy answer teaches the
//     profile nothing (it is not a new value);
//   - a keyed request the engine never saw the first of (sent before the
//     proxy started, or its copy skipped) whose legacy answer holds a
//     clock value from before its own window, or names a message the
//     legacy side never published, is a replay nothing here can compare:
//     skipped (SkipIdempotentReplay); one whose key another job holds is
//     skipped too (SkipIdempotentInFlight);
//   - an answer to a keyed request the profile has not yet seen a time
//     at teaches it nothing from a time before its window
//     (compare.Profile.ObserveKeyed);
//   - the Go side is never asked twice for a keyed request (the second
//     call would be a retry by definition).

// IdempotencyKeyHeader is the header of the IETF httpapi
// idempotency-key draft.
const IdempotencyKeyHeader = "Idempotency-Key"

// DefaultIdempotencyWindow is how long keys are remembered when no window
// is given: the live spool's default (spool.idempotency_window) and the
// monolith's.
const DefaultIdempotencyWindow = 24 * time.Hour

// Skip reasons of keyed requests: a legacy answer that replays a request
// this process did not compare, and a request whose key another job still
// holds (the client retried before the first copy was compared).
const (
	SkipIdempotentReplay   = "idempotent_replay_unseen"
	SkipIdempotentInFlight = "idempotent_retry_in_flight"
)

// Bounds of the two memories. The Go side's holds more, so that it never
// forgets a key the engine still compares retries of.
const (
	maxRetryWindows = 16384
	maxShadowKeys   = 4 * maxRetryWindows
)

// keyMemory is delivery.Keys for the Go side's shadow dependencies: the
// live intake's claim, replay and reuse rules, in memory, bounded by count
// and by window.
type keyMemory struct {
	window time.Duration
	max    int
	now    func() time.Time

	mu      sync.Mutex
	entries map[[16]byte]shadowKey
	order   fifo[[16]byte] // settled keys
	seq     uint64
}

type shadowKey struct {
	pending bool
	r       delivery.Remembered
	seq     uint64 // which order item holds it
}

// fifo is the order in which a memory's entries came, for forgetting
// them by age and count. An entry replaced since keeps a stale item,
// which its seq tells apart.
type fifo[K comparable] struct {
	items []fifoItem[K] // oldest first, from head on
	head  int
}

type fifoItem[K comparable] struct {
	key K
	at  time.Time
	seq uint64
}

func (f *fifo[K]) push(key K, at time.Time, seq uint64) {
	f.items = append(f.items, fifoItem[K]{key, at, seq})
}

// expire pops the items older than window, then the oldest while more
// than max are left, handing each to forget.
func (f *fifo[K]) expire(now time.Time, window time.Duration, max int, forget func(key K, seq uint64)) {
	for f.head < len(f.items) {
		it := f.items[f.head]
		if len(f.items)-f.head <= max && now.Sub(it.at) < window {
			break
		}
		forget(it.key, it.seq)
		f.items[f.head] = fifoItem[K]{}
		f.head++
	}
	if f.head > 1024 && f.head > len(f.items)/2 {
		f.items = append(f.items[:0], f.items[f.head:]...)
		f.head = 0
	}
}

// Interface guard.
var _ delivery.Keys = (*keyMemory)(nil)

func newKeyMemory(window time.Duration, max int, now func() time.Time) *keyMemory {
	if window <= 0 {
		window = DefaultIdempotencyWindow
	}
	return &keyMemory{window: window, max: max, now: now, entries: map[[16]byte]shadowKey{}}
}

// Claim: see delivery.Keys.
func (k *keyMemory) Claim(key [16]byte) (delivery.Remembered, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.trim()
	e, ok := k.entries[key]
	switch {
	case ok && e.pending:
		return delivery.Remembered{}, false, delivery.ErrKeyInFlight
	case ok:
		return e.r, true, nil
	}
	k.entries[key] = shadowKey{pending: true}
	return delivery.Remembered{}, false, nil
}

// Release: see delivery.Keys.
func (k *keyMemory) Release(key [16]byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := k.entries[key]; ok && e.pending {
		delete(k.entries, key)
	}
}

// settle records the answer of a claimed key whose message the sink took.
func (k *keyMemory) settle(idem delivery.Idem, eventID string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := k.entries[idem.Key]; ok && !e.pending {
		return // the first answer wins
	}
	k.seq++
	k.entries[idem.Key] = shadowKey{r: delivery.Remembered{EventID: eventID, ReceivedAt: idem.ReceivedAt, Fingerprint: idem.Fingerprint}, seq: k.seq}
	k.order.push(idem.Key, k.now(), k.seq)
	k.trim()
}

// trim forgets settled keys past the window or the cap. Caller holds mu.
func (k *keyMemory) trim() {
	k.order.expire(k.now(), k.window, k.max, func(key [16]byte, seq uint64) {
		if e, ok := k.entries[key]; ok && !e.pending && e.seq == seq {
			delete(k.entries, key)
		}
	})
}

// retryWindows remembers, per route and Idempotency-Key, the time windows
// in which each side answered the first keyed request the legacy side
// answered with a success: a retry's answers are that request's, so its
// clock values are judged against those windows.
type retryWindows struct {
	window time.Duration
	max    int
	now    func() time.Time

	mu       sync.Mutex
	entries  map[string]firstAnswer
	inFlight map[string]struct{}
	order    fifo[string]
	seq      uint64
}

// firstAnswer is when each side answered the first request of a key, and
// a digest of the legacy answer (status and body).
type firstAnswer struct {
	legacy, ported compare.Window
	digest         [sha256.Size]byte
	seq            uint64
}

// answerDigest is what replays compares.
func answerDigest(r compare.Response) [sha256.Size]byte {
	h := sha256.New()
	var st [8]byte
	binary.BigEndian.PutUint64(st[:], uint64(r.Status))
	h.Write(st[:])
	h.Write(r.Body)
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

// replays reports whether r, a legacy answer to a retry, is the first
// answer again.
func (f firstAnswer) replays(r compare.Response) bool { return answerDigest(r) == f.digest }

func newRetryWindows(window time.Duration, max int, now func() time.Time) *retryWindows {
	if window <= 0 {
		window = DefaultIdempotencyWindow
	}
	return &retryWindows{window: window, max: max, now: now, entries: map[string]firstAnswer{}, inFlight: map[string]struct{}{}}
}

func retryKey(route, key string) string { return route + "\x00" + key }

// begin takes route's key for one job: it returns the first answer's
// windows if remembered, or busy (taking nothing) while another job holds
// the key. A job that took it gives it back with end.
func (r *retryWindows) begin(route, key string) (f firstAnswer, seen, busy bool) {
	k := retryKey(route, key)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.inFlight[k]; ok {
		return f, false, true
	}
	r.inFlight[k] = struct{}{}
	r.trim(r.now())
	f, seen = r.entries[k]
	return f, seen, false
}

// end gives route's key back, remembering f (unless nil, or the key's
// first answer is known already: the first request wins).
func (r *retryWindows) end(route, key string, f *firstAnswer) {
	k := retryKey(route, key)
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.inFlight, k)
	if _, ok := r.entries[k]; ok || f == nil {
		return
	}
	now := r.now()
	r.seq++
	e := *f
	e.seq = r.seq
	r.entries[k] = e
	r.order.push(k, now, e.seq)
	r.trim(now)
}

// trim forgets entries past the window or the cap. Caller holds mu.
func (r *retryWindows) trim(now time.Time) {
	r.order.expire(now, r.window, r.max, func(key string, seq uint64) {
		if e, ok := r.entries[key]; ok && e.seq == seq {
			delete(r.entries, key)
		}
	})
}

// side returns the window of one side.
func (f firstAnswer) side(s routes.Side) compare.Window {
	if s == routes.SidePorted {
		return f.ported
	}
	return f.legacy
}
