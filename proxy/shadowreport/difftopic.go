package shadowreport

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/internal/dropqueue"
	"github.com/strangler-proxy/strangler/ported/delivery"
)

// Sender is what the diff topic needs of a Kafka producer
// (kafka.Producer.Send): queue m, and call ack with the brokers' answer.
type Sender interface {
	Send(ctx context.Context, m delivery.Message, ack func(error)) error
}

// DefaultDiffTopicSendWait bounds how long the sending goroutine waits for
// room in the producer before dropping an entry.
const DefaultDiffTopicSendWait = time.Second

// DiffTopic publishes diff log entries as JSON to a Kafka topic, keyed by
// route, from its own goroutine. Diff events are telemetry, not accepted
// client data: when the queue is full, the producer has no room within
// DefaultDiffTopicSendWait, or the cluster is unreachable, an entry is
// dropped and counted rather than held — the client's path never waits.
type DiffTopic struct {
	send Sender
	log  *zap.Logger
	q    *dropqueue.Queue[Entry]
	done chan struct{}
	// ctx ends when Close's deadline passes: waits for room end and what
	// is still queued is dropped.
	ctx    context.Context
	cancel context.CancelFunc

	sent, failed atomic.Uint64
}

// NewDiffTopic starts the sending goroutine. queue ≤ 0 ⇒ DefaultDiffLogQueue.
func NewDiffTopic(s Sender, queue int, logger *zap.Logger) *DiffTopic {
	if queue <= 0 {
		queue = DefaultDiffLogQueue
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	t := &DiffTopic{send: s, log: logger.Named("difftopic"), q: dropqueue.New[Entry](queue), done: make(chan struct{})}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	go t.run()
	return t
}

// Write queues e; false (and counted as dropped) when full or closed.
func (t *DiffTopic) Write(e Entry) bool { return t.q.Put(e) }

// Dropped, Sent and Failed count entries dropped before the producer,
// acked by the brokers, and failed by the producer after its retries.
func (t *DiffTopic) Dropped() uint64 { return t.q.Dropped() }
func (t *DiffTopic) Sent() uint64    { return t.sent.Load() }
func (t *DiffTopic) Failed() uint64  { return t.failed.Load() }

// Close stops taking entries and hands what is queued to the producer
// until ctx ends; the rest is dropped. Close it before the producer.
func (t *DiffTopic) Close(ctx context.Context) error {
	t.q.Close()
	defer t.cancel()
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		t.cancel()
		<-t.done
		return ctx.Err()
	}
}

func (t *DiffTopic) run() {
	defer close(t.done)
	for e := range t.q.C() {
		if t.ctx.Err() != nil {
			t.q.Drop(1)
			continue
		}
		t.publish(e)
	}
}

func (t *DiffTopic) publish(e Entry) {
	value, err := json.Marshal(e)
	if err != nil { // unreachable: Entry holds strings, numbers and times
		t.q.Drop(1)
		return
	}
	ctx, cancel := context.WithTimeout(t.ctx, DefaultDiffTopicSendWait)
	defer cancel()
	m := delivery.Message{Key: []byte(e.Route), Value: value}
	err = t.send.Send(ctx, m, func(err error) {
		if err != nil {
			t.failed.Add(1)
			return
		}
		t.sent.Add(1)
	})
	if err != nil {
		t.q.Drop(1)
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			if ce := t.log.Check(zap.DebugLevel, "diff event not sent"); ce != nil {
				ce.Write(zap.Error(err))
			}
		}
	}
}
