package spool

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/ported/delivery"
)

// Sender is the asynchronous side of the Kafka producer (kafka.Producer
// satisfies it). Send returns once the message is handed over; ack is then
// called exactly once with the outcome. If Send returns an error, ack is
// never called. Messages sent in order keep their order per key.
type Sender interface {
	Send(ctx context.Context, m delivery.Message, ack func(error)) error
}

// Forward starts the forwarder, a goroutine owned by the spool that moves
// events to sender in log order until ctx ends or Close. Call it once, when
// Kafka is configured; without it events stay spooled.
func (s *Spool) Forward(ctx context.Context, sender Sender) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.fwdDone != nil {
		return errors.New("spool: already forwarding")
	}
	fctx, cancel := context.WithCancel(ctx)
	f := &forwarder{
		s:       s,
		sender:  sender,
		log:     s.log.Named("forward"),
		window:  uint64(s.cfg.ForwardWindow),
		ring:    make([]slot, s.cfg.ForwardWindow),
		acks:    make(chan ack, s.cfg.ForwardWindow),
		backoff: s.cfg.RetryBackoff,
		base:    s.acked.Load(),
	}
	f.next, f.ckptIdx = f.base+1, f.base
	s.fwdCancel, s.fwdDone = cancel, make(chan struct{})
	go f.run(fctx, s.fwdDone)
	return nil
}

type slot struct {
	size  int64
	acked bool
}

type ack struct {
	idx uint64
	err error
}

// forwarder keeps up to window events in flight. Entries in (base, next)
// are sent; base is the end of the contiguous acked prefix, the only thing
// ever checkpointed. After any failure it stops sending, waits for every
// in-flight outcome, backs off, and resends from base+1 in the original
// order: Kafka may get duplicates, never a gap, and the last copy of every
// event lands in spool order.
type forwarder struct {
	s      *Spool
	sender Sender
	log    *zap.Logger

	window uint64
	ring   []slot // ring[idx%window] for idx in (base, next)
	acks   chan ack

	base, next uint64
	inflight   int
	failed     error
	retry      *time.Timer
	backoff    time.Duration

	ckptIdx    uint64
	lastCkpt   time.Time
	ckptTimer  *time.Timer
	truncBytes int64 // acked bytes not yet truncated
	lastTrunc  time.Time
}

func (f *forwarder) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	f.ckptTimer = time.NewTimer(time.Hour)
	f.ckptTimer.Stop()
	defer f.ckptTimer.Stop()
	defer f.persist(true)
	draining := f.s.draining
	for {
		f.drainAcks()
		if ctx.Err() != nil {
			return
		}
		if draining == nil && f.base >= f.s.last.Load() {
			return // Close asked to drain and everything is acked
		}
		if f.failed != nil && f.inflight == 0 && f.retry == nil {
			f.scheduleRetry()
		}
		if f.failed == nil && f.next <= f.s.last.Load() && f.next-f.base <= f.window {
			f.sendNext(ctx)
			continue
		}
		var retryC <-chan time.Time
		if f.retry != nil {
			retryC = f.retry.C
		}
		select {
		case a := <-f.acks:
			f.handle(a)
		case <-f.s.appended:
		case <-retryC:
			f.retry = nil
			f.failed = nil
		case <-f.ckptTimer.C:
			f.persist(false)
		case <-draining:
			draining = nil
		case <-ctx.Done():
			if f.retry != nil {
				f.retry.Stop()
			}
			return
		}
	}
}

func (f *forwarder) drainAcks() {
	for {
		select {
		case a := <-f.acks:
			f.handle(a)
		default:
			return
		}
	}
}

func (f *forwarder) sendNext(ctx context.Context) {
	idx := f.next
	b, err := f.s.read(idx)
	if err != nil {
		f.fail(err)
		return
	}
	sl := &f.ring[idx%f.window]
	*sl = slot{size: framedSize(len(b))}
	rec, err := decodeRecord(b)
	if err != nil {
		// Not a torn tail (those are cut on open) but a damaged record
		// inside the log: it cannot be delivered, and holding it would stop
		// every event behind it.
		f.log.Error("skipping a corrupt spool record", zap.Uint64("index", idx), zap.Error(err))
		f.s.m.corrupt.Inc()
		sl.acked = true
		f.next++
		f.advance()
		return
	}
	err = f.sender.Send(ctx, rec.msg, func(err error) { f.acks <- ack{idx: idx, err: err} })
	if err != nil {
		if ctx.Err() == nil {
			f.fail(err)
		}
		return
	}
	f.inflight++
	f.next++
}

func (f *forwarder) handle(a ack) {
	f.inflight--
	if a.err != nil {
		f.fail(a.err)
		return
	}
	if a.idx > f.base && a.idx < f.next {
		f.ring[a.idx%f.window].acked = true
		f.advance()
	}
}

func (f *forwarder) fail(err error) {
	f.s.m.forwardErrors.Inc()
	if f.failed == nil {
		f.failed = err
	}
}

// advance moves base over the acked prefix and releases its room.
func (f *forwarder) advance() {
	var n, size int64
	for f.base+1 < f.next && f.ring[(f.base+1)%f.window].acked {
		f.base++
		sl := &f.ring[f.base%f.window]
		n++
		size += sl.size
		*sl = slot{}
	}
	if n == 0 {
		return
	}
	s := f.s
	s.unreserve(size, n)
	s.acked.Store(f.base)
	s.m.forwarded.Add(float64(n))
	s.lastDrain.Store(s.now().UnixNano())
	f.truncBytes += size
	f.backoff = s.cfg.RetryBackoff
	if wait := s.cfg.CheckpointInterval - time.Since(f.lastCkpt); wait <= 0 {
		f.persist(false)
	} else {
		f.ckptTimer.Reset(wait)
	}
}

func (f *forwarder) scheduleRetry() {
	f.log.Warn("kafka send failed; resending from the first un-acked event",
		zap.Uint64("from", f.base+1), zap.Duration("backoff", f.backoff), zap.Error(f.failed))
	for i := f.base + 1; i < f.next; i++ {
		f.ring[i%f.window] = slot{}
	}
	f.next = f.base + 1
	f.retry = time.NewTimer(f.backoff)
	f.backoff = min(f.backoff*2, f.s.cfg.MaxRetryBackoff)
}

// truncateEvery bounds how often a fully acked log is emptied when little
// traffic flows (each truncation costs an fsync).
const truncateEvery = time.Second

// persist writes the checkpoint and, once a segment's worth is acked (or
// everything is), drops the acked front of the log.
func (f *forwarder) persist(final bool) {
	s := f.s
	if f.base != f.ckptIdx {
		if err := s.ckpt.write(f.base); err != nil {
			// Only costs replays after a crash; keep forwarding.
			f.log.Error("spool checkpoint", zap.Error(err))
			return
		}
		f.ckptIdx = f.base
		f.lastCkpt = time.Now()
		s.m.checkpoint.Set(float64(f.base))
	}
	if f.truncBytes == 0 {
		return
	}
	all := f.base >= s.last.Load()
	if !final && f.truncBytes < int64(s.cfg.SegmentSize) && (!all || time.Since(f.lastTrunc) < truncateEvery) {
		if all {
			f.ckptTimer.Reset(truncateEvery)
		}
		return
	}
	if err := s.wal.TruncateFront(f.base + 1); err != nil {
		f.log.Error("spool truncate", zap.Uint64("index", f.base+1), zap.Error(err))
		s.fail(err) // tidwall/wal marks itself corrupt until reopened
		return
	}
	f.truncBytes = 0
	f.lastTrunc = time.Now()
}
