// Package delivery holds the message type that crosses from the event intake
// to whatever delivers it (the durable spool, the Kafka producer, or the shadow
// recorder), so that none of those packages imports another.
package delivery

import (
	"context"
	"time"
)

// Message is one accepted event on its way to Kafka.
type Message struct {
	Key     []byte // the partition key: the event's user_id, so per-user order is kept
	Value   []byte // the normalised, enriched event as JSON
	EventID string // lets consumers dedupe after an at-least-once replay
}

// Sink takes a message and returns once it is safe: durable on local disk
// (spool) or acknowledged by the broker (direct). The consumer (ported/events)
// depends on this shape only.
type Sink interface {
	Publish(ctx context.Context, m Message) error
}

// BackpressureError says the sink is full; the caller should answer 503 with
// Retry-After instead of accepting an event it cannot keep.
type BackpressureError struct {
	Reason string
	After  time.Duration
}

func (e *BackpressureError) Error() string { return "sink full: " + e.Reason }

// RetryAfter is how long a client should wait before trying again.
func (e *BackpressureError) RetryAfter() time.Duration { return e.After }
