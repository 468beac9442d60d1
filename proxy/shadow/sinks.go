package shadow

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strangler-proxy/strangler/ported/delivery"
)

// Published gives back what a side published for one event, by event id:
// the event's JSON and true, or false when it is not known (never
// published, or evicted). Take forgets what it returns.
type Published interface {
	Take(eventID string) ([]byte, bool)
}

// DefaultRecorded bounds the messages a RecordingSink or TapSink keeps.
const DefaultRecorded = 4096

// ring keeps the last max messages by event id.
type ring struct {
	mu    sync.Mutex
	max   int
	byID  map[string][]byte
	order []string // circular, oldest at next once full
	next  int
}

func newRing(max int) ring {
	if max <= 0 {
		max = DefaultRecorded
	}
	return ring{max: max, byID: make(map[string][]byte)}
}

func (r *ring) put(id string, v []byte) {
	if id == "" {
		return // nobody can ask for it
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byID[id]; ok {
		r.byID[id] = v
		return
	}
	if len(r.order) < r.max {
		r.order = append(r.order, id)
	} else {
		delete(r.byID, r.order[r.next])
		r.order[r.next] = id
		r.next = (r.next + 1) % r.max
	}
	r.byID[id] = v
}

func (r *ring) peek(id string) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.byID[id]
	return v, ok
}

func (r *ring) take(id string) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.byID[id]
	if ok {
		// The id stays in order until its slot is reused; a stale id there
		// deletes nothing.
		delete(r.byID, id)
	}
	return v, ok
}

// RecordingSink is the delivery.Sink of the shadow dependencies: it keeps
// what a Go candidate would have published, for the comparison, and
// publishes nothing. Publish never fails and never waits. It keeps the last
// max messages (older ones are dropped unread).
type RecordingSink struct {
	r        ring
	recorded atomic.Uint64
	keys     atomic.Pointer[keyMemory]
}

// Interface guards.
var (
	_ delivery.Sink = (*RecordingSink)(nil)
	_ Published     = (*RecordingSink)(nil)
	_ delivery.Sink = (*TapSink)(nil)
	_ Published     = (*TapSink)(nil)
)

// NewRecordingSink keeps up to max messages; max <= 0 means
// DefaultRecorded.
func NewRecordingSink(max int) *RecordingSink {
	return &RecordingSink{r: newRing(max)}
}

// Publish records m. The sink keeps m's slices: delivery.Message values
// are owned by the sink once published (the intake allocates each one).
func (s *RecordingSink) Publish(_ context.Context, m delivery.Message) error {
	s.recorded.Add(1)
	s.r.put(m.EventID, m.Value)
	if k := s.keys.Load(); k != nil && m.Idem != nil {
		k.settle(*m.Idem, m.EventID)
	}
	return nil
}

// Keys returns the Idempotency-Key memory of the handlers built on this
// sink (their delivery.Keys): a key a candidate claims is settled when the
// sink records its message, and remembered for window (the live spool's
// spool.idempotency_window; 0: DefaultIdempotencyWindow), in memory, never
// in the live spool's keys. Call it once, before the first Publish.
func (s *RecordingSink) Keys(window time.Duration) delivery.Keys {
	k := newKeyMemory(window, maxShadowKeys, time.Now)
	s.keys.Store(k)
	return k
}

// Take returns and forgets the recorded event with this id.
func (s *RecordingSink) Take(eventID string) ([]byte, bool) { return s.r.take(eventID) }

// Recorded counts every message ever published to the sink.
func (s *RecordingSink) Recorded() uint64 { return s.recorded.Load() }

// TapSink wraps the live sink of a Go handler that may be a shadow
// primary: it publishes through Inner and remembers what was published, so
// the comparison can see the Go primary's real side effect. It keeps the
// last max messages.
type TapSink struct {
	inner delivery.Sink
	r     ring
}

// NewTapSink taps inner; max <= 0 means DefaultRecorded.
func NewTapSink(inner delivery.Sink, max int) *TapSink {
	return &TapSink{inner: inner, r: newRing(max)}
}

// Publish publishes m through the inner sink and remembers it if that
// succeeded.
func (s *TapSink) Publish(ctx context.Context, m delivery.Message) error {
	if err := s.inner.Publish(ctx, m); err != nil {
		return err
	}
	s.r.put(m.EventID, m.Value)
	return nil
}

// Take returns and forgets the published event with this id.
func (s *TapSink) Take(eventID string) ([]byte, bool) { return s.r.take(eventID) }
