package spool

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/ported/delivery"
)

// DirectProducer is what `delivery: direct` publishes through
// (kafka.Producer): Publish waits for the brokers' ack, Send reports it
// later.
type DirectProducer interface {
	delivery.Sink
	Sender
}

// Direct is the `delivery: direct` sink: each event waits for Kafka's ack,
// and the Idempotency-Keys of those Kafka acked are kept in this spool, as
// key-only records, so that they survive restarts as in spool mode.
//
// A keyed event whose ack does not come within the wait is answered 503
// (retry later), but its key stays claimed until the producer settles the
// message: a retry meanwhile gets 409, and after a late ack the first
// answer. So a client retrying after a partition never publishes twice;
// without the key, every such retry was a second event.
type Direct struct {
	s       *Spool
	p       DirectProducer
	timeout time.Duration
}

// Interface guard.
var _ delivery.Sink = (*Direct)(nil)

// Direct returns the `delivery: direct` sink over p; timeout bounds the
// wait for an ack of a keyed event (kafka.publish_timeout; unkeyed ones
// wait in p.Publish, bounded there).
func (s *Spool) Direct(p DirectProducer, timeout time.Duration) *Direct {
	return &Direct{s: s, p: p, timeout: timeout}
}

// errNoAck is a keyed publish that outwaited its bound; the event may still
// be delivered, and its key is then remembered.
var errNoAck = errors.New("no broker ack within publish_timeout")

// Publish implements delivery.Sink.
func (d *Direct) Publish(ctx context.Context, m delivery.Message) error {
	if m.Idem == nil {
		return d.p.Publish(ctx, m)
	}
	// The producer may hold the bytes after we return (no ack in time),
	// and callers reuse theirs.
	idem := *m.Idem
	m = delivery.Message{
		Key: append([]byte(nil), m.Key...), Value: append([]byte(nil), m.Value...),
		EventID: m.EventID, Idem: &idem,
	}
	tctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	acked := make(chan (<-chan error), 1)
	err := d.p.Send(tctx, m, func(err error) { acked <- d.settle(m, err) })
	if err != nil {
		d.s.releaseIdem(m.Idem)
		return fmt.Errorf("publish %s: %w: %w", m.EventID, delivery.ErrUnavailable, err)
	}
	select {
	case kept := <-acked:
		select {
		case kerr := <-kept:
			if kerr != nil {
				// Delivered; only the key is lost (the committer dropped
				// the claim): a retry would publish again.
				d.s.log.Warn("event delivered, its Idempotency-Key not kept", zap.String("event_id", m.EventID), zap.Error(kerr))
			}
		case <-tctx.Done():
			// Delivered; the key is being made durable (or dropped).
		}
	case <-tctx.Done():
		err = errNoAck
	}
	if err != nil {
		return fmt.Errorf("publish %s: %w: %w", m.EventID, delivery.ErrUnavailable, err)
	}
	return nil
}

// settle runs in the producer's goroutine once the message has an outcome:
// a failure drops the claim; a success hands the key to the committer,
// without waiting for its fsync (that is for Publish, if it still waits),
// so acks are not held behind the disk. The channel gets the outcome.
func (d *Direct) settle(m delivery.Message, err error) <-chan error {
	out := make(chan error, 1)
	if err != nil {
		d.s.releaseIdem(m.Idem)
		out <- err
		return out
	}
	kept, err := d.s.enqueue(context.Background(), m, true)
	if err != nil {
		// In Kafka, but the key is not kept: a retry would publish again.
		d.s.log.Warn("event delivered, its Idempotency-Key not kept", zap.String("event_id", m.EventID), zap.Error(err))
		out <- nil
		return out
	}
	return kept
}
