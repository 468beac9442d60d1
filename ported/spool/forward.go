package spool

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/internal/jitter"
	"github.com/strangler-proxy/strangler/ported/delivery"
)

// Sender is the asynchronous side of the Kafka producer (kafka.Producer
// satisfies it). Send returns once the message is handed over; ack is then
// called exactly once with the outcome. If Send returns an error, ack is
// never called.
type Sender interface {
	Send(ctx context.Context, m delivery.Message, ack func(error)) error
}

// Forward starts the forwarder, a goroutine owned by the spool that moves
// events to sender in log order per key until ctx ends or Close. Call it
// once, when Kafka is configured; without it events stay spooled.
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
		busy:    make(map[string]uint64),
		waiting: make(map[string][]uint64),
		backoff: s.cfg.RetryBackoff,
		base:    s.acked.Load(),
	}
	f.next, f.scanned, f.ckptIdx = f.base+1, f.base+1, f.base
	if r, ok := sender.(delivery.Resumer); ok && f.base < s.last.Load() {
		f.resumer = r
	}
	s.fwdCancel, s.fwdDone = cancel, make(chan struct{})
	go f.run(fctx, s.fwdDone)
	return nil
}

type slotState uint8

const (
	slotUnsent   slotState = iota // read; waits for its key, or for a resend
	slotInflight                  // handed to the sender, outcome pending
	slotAcked                     // in Kafka (or a corrupt record, skipped)
)

type slot struct {
	size  int64
	state slotState
}

type ack struct {
	idx uint64
	key string
	err error
}

// forwarder keeps up to window events in flight, but never two of one key.
//
// That second rule is what keeps per-key order through outages. sarama
// fails a batch back when its retries run out, or at once when it cannot
// find the partition's leader (every broker away), and then bumps the
// idempotent producer's epoch, which restarts the partition's sequence
// numbers: the messages it still holds for that partition are accepted by
// the broker under the new epoch, ahead of the failed one the forwarder
// resends. With one event per key in flight, an event's successor is only
// handed over once the event itself is acked, so nothing of its key can
// overtake it, whatever the producer retries or gives up on. Events of
// other keys still fill the window, so a single key's rate is bounded by
// one broker round trip per event (acks=all) while the spool absorbs
// bursts; most traffic is spread over many users.
//
// Entries in (base, scanned) have been read; base is the end of the
// contiguous acked prefix, the only thing ever checkpointed. next is where
// reading resumes: scanned, or lower while a resend walks the window again.
// After any failure it stops sending, waits for every in-flight outcome,
// backs off, and resends what is not acked, in log order per key.
type forwarder struct {
	s      *Spool
	sender Sender
	log    *zap.Logger

	window uint64
	ring   []slot // ring[idx%window] for idx in (base, scanned)
	acks   chan ack

	base, next, scanned uint64
	inflight            int
	busy                map[string]uint64   // key → its one index in flight
	waiting             map[string][]uint64 // key → read indexes behind it, in order
	failed              error
	diskFailure         bool // failed is the spool's own (a read), not the sender's
	sendFailures        int  // failed retries in a row
	retry               *time.Timer
	backoff             time.Duration

	// resumer, when set, is asked once at start which un-acked entries
	// Kafka already holds (a crash lost their acks); held lists them,
	// ascending, and readNext passes them over.
	resumer delivery.Resumer
	held    []uint64

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
	if f.resumer != nil {
		f.resume(ctx)
	}
	draining := f.s.draining
	for {
		f.drainAcks(ctx)
		if ctx.Err() != nil {
			return
		}
		if draining == nil && f.base >= f.s.last.Load() {
			return // Close asked to drain and everything is acked
		}
		if f.failed != nil && f.inflight == 0 && f.retry == nil {
			f.scheduleRetry()
		}
		if f.failed == nil && f.next <= f.s.last.Load() && (f.next < f.scanned || f.next-f.base <= f.window) {
			f.readNext(ctx)
			continue
		}
		var retryC <-chan time.Time
		if f.retry != nil {
			retryC = f.retry.C
		}
		select {
		case a := <-f.acks:
			f.handle(ctx, a)
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

func (f *forwarder) drainAcks(ctx context.Context) {
	for {
		select {
		case a := <-f.acks:
			f.handle(ctx, a)
		default:
			return
		}
	}
}

// readNext takes entry next: it is sent, queued behind its key's event in
// flight, or (acked already, corrupt) passed over.
func (f *forwarder) readNext(ctx context.Context) {
	idx := f.next
	f.next++
	sl := &f.ring[idx%f.window]
	if idx == f.scanned {
		f.scanned++
		*sl = slot{}
	} else if sl.state != slotUnsent {
		return // acked before a resend started, or sent again already
	}
	b, err := f.s.read(idx)
	if err != nil {
		f.next--
		f.failDisk(err)
		return
	}
	sl.size = framedSize(len(b))
	rec, err := decodeRecord(b)
	if err != nil {
		// Not a torn tail (those are cut on open) but a damaged record
		// inside the log: it cannot be delivered, and holding it would stop
		// every event behind it.
		f.log.Error("skipping a corrupt spool record", zap.Uint64("index", idx), zap.Error(err))
		f.s.m.corrupt.Inc()
		sl.state = slotAcked
		f.advance()
		return
	}
	if rec.keyOnly {
		// An Idempotency-Key of an event `delivery: direct` delivered.
		sl.state = slotAcked
		f.advance()
		return
	}
	if f.isHeld(idx) {
		sl.state = slotAcked
		f.s.m.resumeSkipped.Inc()
		f.advance()
		return
	}
	key := string(rec.msg.Key)
	if _, ok := f.busy[key]; ok && key != "" {
		f.waiting[key] = append(f.waiting[key], idx)
		return
	}
	f.send(ctx, idx, key, rec.msg)
}

// send hands entry idx to the sender; key is its gate ("" has none: such a
// message has no order to keep).
func (f *forwarder) send(ctx context.Context, idx uint64, key string, m delivery.Message) {
	m.Position = delivery.Position{Spool: f.s.id, Index: idx}
	err := f.sender.Send(ctx, m, func(err error) { f.acks <- ack{idx: idx, key: key, err: err} })
	if err != nil {
		if ctx.Err() == nil {
			f.fail(err)
		}
		return
	}
	f.ring[idx%f.window].state = slotInflight
	f.inflight++
	if key != "" {
		f.busy[key] = idx
	}
}

func (f *forwarder) handle(ctx context.Context, a ack) {
	f.inflight--
	if f.busy[a.key] == a.idx {
		delete(f.busy, a.key)
	}
	sl := &f.ring[a.idx%f.window]
	if a.err != nil {
		sl.state = slotUnsent
		f.fail(a.err)
		return
	}
	sl.state = slotAcked
	f.advance()
	if f.failed == nil && ctx.Err() == nil {
		f.sendWaiting(ctx, a.key)
	}
}

// sendWaiting sends the oldest event queued behind key, now that key has
// nothing in flight.
func (f *forwarder) sendWaiting(ctx context.Context, key string) {
	q := f.waiting[key]
	if len(q) == 0 {
		return
	}
	idx := q[0]
	if len(q) == 1 {
		delete(f.waiting, key)
	} else {
		f.waiting[key] = q[1:]
	}
	b, err := f.s.read(idx)
	if err == nil {
		var rec record
		if rec, err = decodeRecord(b); err == nil {
			f.send(ctx, idx, key, rec.msg)
			return
		}
	}
	// It decoded when it was read into the window; a failure now is the
	// disk's. Resend it, with its queue, once the retry walks the window.
	f.failDisk(err)
}

func (f *forwarder) fail(err error) {
	f.s.m.forwardErrors.Inc()
	if f.failed == nil {
		f.failed = err
	}
}

func (f *forwarder) failDisk(err error) {
	if f.failed == nil {
		f.diskFailure = true
	}
	f.fail(err)
}

// advance moves base over the acked prefix and releases its room.
func (f *forwarder) advance() {
	var n, size int64
	for f.base+1 < f.scanned && f.ring[(f.base+1)%f.window].state == slotAcked {
		f.base++
		sl := &f.ring[f.base%f.window]
		n++
		size += sl.size
		*sl = slot{}
	}
	if n == 0 {
		return
	}
	f.next = max(f.next, f.base+1)
	s := f.s
	s.unreserve(size, n)
	s.acked.Store(f.base)
	s.m.forwarded.Add(float64(n))
	s.lastDrain.Store(s.now().UnixNano())
	f.truncBytes += size
	f.backoff, f.sendFailures = s.cfg.RetryBackoff, 0
	if wait := s.cfg.CheckpointInterval - time.Since(f.lastCkpt); wait <= 0 {
		f.persist(false)
	} else {
		f.ckptTimer.Reset(wait)
	}
}

// scheduleRetry runs once every send has an outcome: nothing of the
// window is in flight, so the resend can walk it from base+1 and send
// what is not acked, one event per key at a time as always.
func (f *forwarder) scheduleRetry() {
	wait := jitter.Down(f.backoff, 0.5)
	f.sendFailures++
	// A broker outage is logged once, by the producer, when it starts and
	// when it ends; each resend during it is only a debug line. The spool's
	// own read errors are not the producer's to report.
	lvl := zap.DebugLevel
	if f.diskFailure {
		lvl = zap.ErrorLevel
	}
	if ce := f.log.Check(lvl, "send failed; resending what is not acked"); ce != nil {
		ce.Write(zap.Uint64("from", f.base+1), zap.Int("attempt", f.sendFailures),
			zap.Duration("backoff", wait), zap.Error(f.failed))
	}
	f.diskFailure = false
	clear(f.busy)
	clear(f.waiting)
	f.next = f.base + 1
	f.retry = time.NewTimer(wait)
	f.backoff = min(f.backoff*2, f.s.cfg.MaxRetryBackoff)
}

// resumeReadAhead is how far past its window a restarted forwarder asks
// Kafka about: the acked prefix can run ahead of the last checkpoint by
// what was acked within checkpoint_interval, and entries up to a window
// past it may be in Kafka. Beyond this bound they are sent again.
const resumeReadAhead = 64 << 10

// resumeClockSlack widens HeldQuery.Since for clocks that disagree (other
// producers' CreateTime, this host's clock between runs).
const resumeClockSlack = time.Minute

// resume asks the resumer which of the un-acked entries Kafka already
// holds, so that only the rest is sent again: after a kill -9 the
// checkpoint lags what was acked by up to checkpoint_interval. Every
// message carries its position (spool id and index), and Held reads the end
// of the partitions these entries go to. It blocks until the brokers
// answer (nothing could be sent before anyway) or ctx ends.
func (f *forwarder) resume(ctx context.Context) {
	from := f.base + 1
	to := min(f.s.last.Load(), f.base+f.window+resumeReadAhead)
	keys, since, err := f.candidates(from, to)
	if err != nil {
		f.log.Warn("spool resume: cannot read the entries to check; sending them all again", zap.Error(err))
		return
	}
	q := delivery.HeldQuery{
		Spool: f.s.id, From: from, To: to, Keys: keys,
		Floor: f.base - min(f.base, f.window),
		Since: since.Add(-resumeClockSlack),
	}
	held, err := f.resumer.Held(ctx, q)
	if err != nil && ctx.Err() == nil {
		f.log.Warn("spool resume: Kafka's copy was not fully read back; what was not found is sent again",
			zap.Int("found", len(held)), zap.Error(err))
	}
	f.held = held
	if len(held) > 0 {
		f.log.Info("spool resume: skipping entries Kafka already holds",
			zap.Int("entries", len(held)), zap.Uint64("from", from), zap.Uint64("to", to))
	}
}

// candidates reads entries [from, to]: their distinct keys, and when entry
// from was accepted.
func (f *forwarder) candidates(from, to uint64) ([][]byte, time.Time, error) {
	seen := make(map[string]struct{})
	var keys [][]byte
	var since time.Time
	for idx := from; idx <= to; idx++ {
		b, err := f.s.read(idx)
		if err != nil {
			return nil, time.Time{}, err
		}
		rec, err := decodeRecord(b)
		if err != nil || rec.keyOnly {
			continue // readNext reports or passes over it
		}
		if since.IsZero() {
			since = rec.at
		}
		if _, ok := seen[string(rec.msg.Key)]; !ok {
			seen[string(rec.msg.Key)] = struct{}{}
			keys = append(keys, rec.msg.Key)
		}
	}
	return keys, since, nil
}

// isHeld reports whether resume found idx in Kafka. Entries are first read
// in ascending order, so the list is consumed from its front.
func (f *forwarder) isHeld(idx uint64) bool {
	for len(f.held) > 0 && f.held[0] < idx {
		f.held = f.held[1:]
	}
	if len(f.held) > 0 && f.held[0] == idx {
		f.held = f.held[1:]
		return true
	}
	return false
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
	// The keys of the records about to go must be durable elsewhere.
	if err := s.syncKeys(); err != nil {
		f.log.Error("spool keys", zap.Error(err))
		s.fail(err)
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
