// Package delivery holds the message type that crosses from the event intake
// to whatever delivers it (the durable spool, the Kafka producer, or the shadow
// recorder), so that none of those packages imports another.
package delivery

import (
	"context"
	"errors"
	"time"
)

// Message is one accepted event on its way to Kafka.
type Message struct {
	Key     []byte // the partition key: the event's user_id, so per-user order is kept
	Value   []byte // the normalised, enriched event as JSON
	EventID string // lets consumers dedupe after an at-least-once replay
	// Position is set by the spool's forwarder (see Position).
	Position Position
	// Idem, when set, is the request's Idempotency-Key, which the sink
	// remembers with the event (see Keys).
	Idem *Idem
}

// Idem is what an Idempotency-Key makes a sink remember about the event it
// came with: enough to tell a retry from a reuse, and to answer the retry
// as the first request was answered (event_id is the message's).
type Idem struct {
	Key         [16]byte // a digest of the key
	Fingerprint [16]byte // a digest of the request body
	ReceivedAt  int64    // the 202's received_at, unix milliseconds
}

// Remembered is the first answer to an Idempotency-Key.
type Remembered struct {
	EventID     string
	ReceivedAt  int64 // unix milliseconds
	Fingerprint [16]byte
}

// ErrKeyInFlight says another request holds the Idempotency-Key and its
// event is not settled yet.
var ErrKeyInFlight = errors.New("idempotency key in use by a request in progress")

// Keys remembers the Idempotency-Keys of accepted events (the spool keeps
// them, across restarts, for a window). A request claims its key before
// publishing; a sink given a Message with Idem settles the claim: it
// records the answer once the event is safe, or drops the claim when the
// event certainly was not stored. A request that publishes nothing
// releases its claim itself.
type Keys interface {
	// Claim returns the first answer when key was accepted within the
	// window (found), ErrKeyInFlight while another request holds it, or
	// else gives the caller the claim.
	Claim(key [16]byte) (r Remembered, found bool, err error)
	// Release drops a claim no published event carries.
	Release(key [16]byte)
}

// Sink takes a message and returns once it is safe: durable on local disk
// (spool) or acknowledged by the broker (direct). The consumer (ported/events)
// depends on this shape only.
type Sink interface {
	Publish(ctx context.Context, m Message) error
}

// ErrUnavailable marks a sink failure that passes by itself (brokers away,
// no ack in time): the caller answers 503 with Retry-After, and leaves the
// logging of the outage to the sink, which says once when it starts and
// once when it ends.
var ErrUnavailable = errors.New("sink unavailable")

// BackpressureError says the sink is full; the caller should answer 503 with
// Retry-After instead of accepting an event it cannot keep.
type BackpressureError struct {
	Reason string
	After  time.Duration
}

func (e *BackpressureError) Error() string { return "sink full: " + e.Reason }

// RetryAfter is how long a client should wait before trying again.
func (e *BackpressureError) RetryAfter() time.Duration { return e.After }

// Position is a spooled message's place in its spool. The spool's forwarder
// sets it and the Kafka producer sends it as the spool_position header, so
// that a forwarder restarted after a crash can tell which entries Kafka
// already holds. The zero Position means the message did not come from a
// spool.
type Position struct {
	Spool string // the spool's id: random, made with its directory
	Index uint64 // the entry's index in the spool's log
}

// HeldQuery asks which entries of one spool a topic already holds. The
// answer can only be read from the end of each partition backwards; From,
// Floor and Since say how far back is enough.
type HeldQuery struct {
	// Spool is the spool's id (Position.Spool).
	Spool string
	// From and To bound the indexes asked about.
	From, To uint64
	// Keys are the partition keys of those entries: only the partitions
	// they hash to need reading. An empty key stands for every partition.
	Keys [][]byte
	// Floor: a record of this spool with an index at or below it was
	// written before every entry asked about (the forwarder never has an
	// entry in flight more than its window ahead of the acked prefix), so
	// nothing older in its partition needs reading.
	Floor uint64
	// Since: entry From was accepted at Since, so a record of any producer
	// stamped earlier marks where reading can stop. A wrong clock there only
	// stops early, which costs duplicates, never an event.
	Since time.Time
}

// Resumer reads back what a sink already delivered. Held returns the
// indexes in [q.From, q.To] that it found, ascending; an entry it did not
// find is sent again, so a partial answer costs duplicates, never an event.
// It waits while the brokers are away, until ctx ends.
type Resumer interface {
	Held(ctx context.Context, q HeldQuery) ([]uint64, error)
}
