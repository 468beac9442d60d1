// Package spool is the durable local log between the event intake and
// Kafka. Publish returns once the event is fsynced (group commit: one fsync
// covers every append queued behind it); a forwarder moves events to Kafka
// in order per key (one event of a key in flight at a time) and advances a
// durable checkpoint only over the contiguous prefix Kafka acked, so a
// crash replays (duplicates, deduped downstream by event_id) but never
// skips an event.
//
// Storage is tidwall/wal rather than bbolt: the spool is an append-only
// queue read in order, which is exactly a segmented log. Appends are
// sequential writes with one fsync per batch, acked data is dropped by
// deleting whole segments instead of freeing B-tree pages, and a crash can
// only tear the tail, which is cut back on open. bbolt would pay copy-on-write
// page rewrites and two fsyncs (data, meta) per commit, and its file never
// shrinks after an outage filled it.
package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidwall/wal"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/ported/delivery"
)

var (
	// ErrClosed is returned by Publish after Close.
	ErrClosed = errors.New("spool: closed")
	// ErrFailed wraps the disk error that stopped the spool; it stays
	// failed until restarted, because after a failed fsync the state of the
	// file is unknown.
	ErrFailed = errors.New("spool: failed")
)

// Interface guard: the spool is the `delivery: spool` sink.
var _ delivery.Sink = (*Spool)(nil)

// Option adjusts Open.
type Option func(*Spool)

// WithNow sets the clock stamped on records (forwarder lag). Default time.Now.
func WithNow(now func() time.Time) Option { return func(s *Spool) { s.now = now } }

// Spool is safe for concurrent use.
type Spool struct {
	cfg  Config
	log  *zap.Logger
	now  func() time.Time
	m    *metrics
	reg  prometheus.Registerer
	lock *dirLock // held from Open to Close
	id   string   // see idName
	// keys are the Idempotency-Keys (keys.go); keysMu orders the
	// committer's appends to keysFile against the forwarder's sync and
	// compaction.
	keys       *keyIndex
	keysMu     sync.Mutex
	keysFile   *keysFile
	keysMarked uint64 // records committed since the keys file's last marker

	wal  *wal.Log
	ckpt *checkpointFile
	segs *segmentWatch // owned by the committer

	reqs          chan *appendReq
	committerDone chan struct{}
	appended      chan struct{} // capacity 1: wakes the forwarder
	failed        atomic.Pointer[error]

	// mu orders Publish's enqueue against Close closing reqs, and guards
	// the forwarder fields.
	mu        sync.RWMutex
	closed    bool
	fwdCancel context.CancelFunc
	fwdDone   chan struct{}
	draining  chan struct{} // closed by Close: forward what is left, then stop

	last  atomic.Uint64 // last durable index
	acked atomic.Uint64 // last index of the contiguous acked prefix

	// depth counts un-acked plus reserved (queued) entries and bytes.
	depthMu      sync.Mutex
	depthBytes   int64
	depthEntries int64
	// sizes: the largest framed event among recent reservations, what
	// readiness assumes the next one needs (see nextSize).
	sizeCur, sizePrev int64
	sizeCount         int
	full              atomic.Bool // refusing since the last accepted reservation

	lastDrain atomic.Int64 // unix ns of the latest ack that advanced the prefix
	appends   atomic.Uint64
	commits   atomic.Uint64
	dirSyncs  atomic.Uint64 // directory fsyncs by the committer (tests)

	// readMu serialises reads: tidwall/wal's Read holds only a read lock
	// while it loads a segment into its shared cache, so two concurrent
	// Reads race (seen with -race). Writes exclude reads inside wal.
	readMu sync.Mutex

	oldestMu  sync.Mutex
	oldestIdx uint64
	oldestAt  time.Time
}

type appendReq struct {
	data []byte
	size int64
	done chan error
	// idem and eventID are set for a record with an Idempotency-Key: the
	// committer records the key once the record is durable, or releases
	// its claim when the batch fails.
	idem    *delivery.Idem
	eventID string
}

// Open opens (or creates) the spool in cfg.Dir: it takes the directory's
// lock (ErrLocked, naming the holder's pid, while another process has it),
// cuts a torn tail back to the last whole record, drops acked entries, and
// leaves every un-acked entry for the forwarder to replay. Close it before
// exit.
func Open(cfg Config, log *zap.Logger, reg prometheus.Registerer, opts ...Option) (*Spool, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Spool{
		cfg:           cfg,
		log:           log.Named("spool"),
		now:           time.Now,
		reg:           reg,
		reqs:          make(chan *appendReq, cfg.QueueSize),
		committerDone: make(chan struct{}),
		appended:      make(chan struct{}, 1),
		draining:      make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool dir: %w", err)
	}
	// The lock comes before anything that writes to the directory.
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	s.lock = lock
	if err := removeTempFiles(cfg.Dir); err != nil {
		_ = lock.unlock()
		return nil, fmt.Errorf("spool dir: %w", err)
	}
	if s.id, err = loadID(cfg.Dir); err != nil {
		_ = lock.unlock()
		return nil, fmt.Errorf("spool id: %w", err)
	}
	if err := s.openLog(); err != nil {
		_ = lock.unlock()
		return nil, err
	}
	m, err := newMetrics(reg, s)
	if err != nil {
		_ = s.wal.Close()
		_ = s.ckpt.close()
		_ = lock.unlock()
		return nil, err
	}
	s.m = m
	go s.commitLoop()
	return s, nil
}

func (s *Spool) openLog() error {
	opts := &wal.Options{
		SegmentSize:      s.cfg.SegmentSize,
		LogFormat:        wal.Binary,
		SegmentCacheSize: 2,
		AllowEmpty:       true,
		DirPerms:         0o750,
		FilePerms:        0o640,
	}
	l, err := wal.Open(s.cfg.Dir, opts)
	if errors.Is(err, wal.ErrCorrupt) {
		// The failed open already settled .START/.END files, so the last
		// segment listed is the tail wal tried to load.
		n, rerr := repairTornTail(s.cfg.Dir)
		if rerr != nil {
			return fmt.Errorf("spool repair %s: %w", s.cfg.Dir, rerr)
		}
		s.log.Warn("dropped a torn record at the end of the spool", zap.Int64("bytes", n))
		l, err = wal.Open(s.cfg.Dir, opts)
	}
	if err != nil {
		return fmt.Errorf("spool open %s: %w", s.cfg.Dir, err)
	}
	s.wal = l
	if err := s.dropTrailingDebris(); err != nil {
		_ = l.Close()
		return err
	}
	// Keys first: settleCheckpoint truncates, and no key may be only in a
	// dropped record.
	if err := s.loadKeys(); err != nil {
		if s.keysFile != nil {
			_ = s.keysFile.close()
		}
		_ = l.Close()
		return err
	}
	ck, idx, ok, err := openCheckpoint(s.cfg.Dir)
	if err != nil {
		_ = s.keysFile.close()
		_ = l.Close()
		return fmt.Errorf("spool checkpoint: %w", err)
	}
	s.ckpt = ck
	if err := s.settleCheckpoint(idx, ok); err != nil {
		_ = l.Close()
		_ = ck.close()
		_ = s.keysFile.close()
		return err
	}
	// One directory fsync covers the segments created or repaired so far;
	// from here on the committer syncs it only when it may have added one.
	segs, err := newSegmentWatch(s.cfg.Dir, s.cfg.SegmentSize)
	if err == nil {
		err = syncDir(s.cfg.Dir)
	}
	if err != nil {
		_ = l.Close()
		_ = ck.close()
		_ = s.keysFile.close()
		return fmt.Errorf("spool dir: %w", err)
	}
	s.segs = segs
	return nil
}

// dropTrailingDebris removes entries at the end of the log that fail their
// checksum: a crash can leave a framed but zero-filled or half-written tail
// that tidwall/wal accepts. Only a trailing run is removed; a bad record
// followed by good ones is not a torn write and is skipped (and counted)
// by the forwarder instead.
func (s *Spool) dropTrailingDebris() error {
	first, _ := s.wal.FirstIndex()
	last, err := s.wal.LastIndex()
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	keep := last
	for ; keep >= first && keep > 0; keep-- {
		b, err := s.read(keep)
		if err != nil {
			return fmt.Errorf("spool read %d: %w", keep, err)
		}
		if validRecord(b) {
			break
		}
	}
	if keep == last {
		return nil
	}
	s.log.Warn("dropped unreadable records at the end of the spool", zap.Uint64("count", last-keep))
	if err := s.wal.TruncateBack(keep); err != nil {
		return fmt.Errorf("spool truncate back to %d: %w", keep, err)
	}
	return nil
}

// settleCheckpoint reconciles the stored checkpoint with the log and drops
// the acked front.
func (s *Spool) settleCheckpoint(ck uint64, ok bool) error {
	first, _ := s.wal.FirstIndex()
	last, _ := s.wal.LastIndex()
	switch {
	case !ok || ck < first-1:
		// Entries before first were truncated, which only happens to acked ones.
		ck = first - 1
	case ck > last:
		// Cannot happen unless the disk lost fsynced data; without the clamp
		// new entries would get indexes at or below the checkpoint and be
		// taken for acked.
		s.log.Error("spool checkpoint is past the end of the log; clamping",
			zap.Uint64("checkpoint", ck), zap.Uint64("last", last))
		ck = last
		if err := s.ckpt.write(ck); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	}
	if ck+1 > first {
		if err := s.wal.TruncateFront(ck + 1); err != nil {
			return fmt.Errorf("spool truncate front to %d: %w", ck+1, err)
		}
	}
	s.acked.Store(ck)
	s.last.Store(last)
	segs, err := listSegments(s.cfg.Dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var size int64
	for _, seg := range segs {
		fi, err := os.Stat(seg.path)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		size += fi.Size()
	}
	s.depthBytes, s.depthEntries = size, int64(last-ck)
	if last > ck {
		s.log.Info("spool has un-acked events to replay",
			zap.Uint64("entries", last-ck), zap.Int64("bytes", size), zap.Uint64("from", ck+1))
	}
	return nil
}

// Publish appends m and returns once an fsync covers it. A full spool
// answers *delivery.BackpressureError. If ctx ends while the append is
// queued, the event may still become durable (and be delivered): the
// client's retry is then a duplicate, unless it carries an Idempotency-Key.
// A message with Idem settles the key's claim (delivery.Keys): done when
// the record is durable, released when it certainly is not.
func (s *Spool) Publish(ctx context.Context, m delivery.Message) error {
	return s.append(ctx, m, false)
}

// append writes m, or with keyOnly only its Idem (remember). A key-only
// record is a few dozen bytes and is not refused for room: the event it
// stands for is already in Kafka, and its key must not be lost.
func (s *Spool) append(ctx context.Context, m delivery.Message, keyOnly bool) error {
	done, err := s.enqueue(ctx, m, keyOnly)
	if err != nil {
		return err
	}
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("spool %s: %w", m.EventID, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("spool %s: %w", m.EventID, ctx.Err())
	}
}

// enqueue hands m to the committer; the channel gets the commit's outcome.
// The claim of m.Idem is settled either way (here, or by the committer).
func (s *Spool) enqueue(ctx context.Context, m delivery.Message, keyOnly bool) (<-chan error, error) {
	if err := s.failure(); err != nil {
		s.releaseIdem(m.Idem)
		return nil, err
	}
	data := encodeRecord(m, s.now(), keyOnly)
	size := framedSize(len(data))
	if keyOnly {
		s.depthMu.Lock()
		s.depthBytes += size
		s.depthEntries++
		s.depthMu.Unlock()
	} else if err := s.reserve(size); err != nil {
		s.m.rejected.WithLabelValues("full").Inc()
		s.releaseIdem(m.Idem)
		return nil, err
	}
	req := &appendReq{data: data, size: size, done: make(chan error, 1), idem: m.Idem, eventID: m.EventID}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		s.unreserve(size, 1)
		s.releaseIdem(m.Idem)
		return nil, ErrClosed
	}
	select {
	case s.reqs <- req:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		s.unreserve(size, 1)
		s.releaseIdem(m.Idem)
		return nil, fmt.Errorf("spool %s: %w", m.EventID, ctx.Err())
	}
	return req.done, nil
}

func (s *Spool) failure() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *Spool) fail(err error) {
	err = fmt.Errorf("%w: %w", ErrFailed, err)
	if s.failed.CompareAndSwap(nil, &err) {
		s.log.Error("spool stopped accepting events", zap.Error(err))
	}
}

func (s *Spool) reserve(size int64) error {
	s.depthMu.Lock()
	defer s.depthMu.Unlock()
	s.noteSize(size)
	if !s.fits(size) {
		err := &delivery.BackpressureError{
			Reason: fmt.Sprintf("spool holds %d events (%d bytes) not yet in Kafka", s.depthEntries, s.depthBytes),
			After:  s.retryAfter(),
		}
		if !s.full.Swap(true) {
			// Once per spell; each refused request is only a 503 and a count.
			s.log.Warn("spool full: refusing events until Kafka drains it",
				zap.Int64("entries", s.depthEntries), zap.Int64("bytes", s.depthBytes),
				zap.Int64("max_bytes", s.cfg.MaxBytes), zap.Int64("max_entries", s.cfg.MaxEntries))
		}
		return err
	}
	if s.full.Load() && s.full.Swap(false) {
		s.log.Info("spool accepting events again", zap.Int64("entries", s.depthEntries), zap.Int64("bytes", s.depthBytes))
	}
	s.depthBytes += size
	s.depthEntries++
	return nil
}

// fits reports whether an event of size framed bytes can be taken now; a
// single event larger than the cap still goes into an empty spool. Called
// with depthMu held.
func (s *Spool) fits(size int64) bool {
	if s.cfg.MaxEntries > 0 && s.depthEntries+1 > s.cfg.MaxEntries {
		return false
	}
	return s.depthEntries == 0 || s.depthBytes+size <= s.cfg.MaxBytes
}

// sizeWindow is how many reservations one bucket of noteSize spans.
const sizeWindow = 1024

// noteSize keeps the largest size of the last one to two thousand events.
// Called with depthMu held.
func (s *Spool) noteSize(size int64) {
	s.sizeCur = max(s.sizeCur, size)
	if s.sizeCount++; s.sizeCount == sizeWindow {
		s.sizePrev, s.sizeCur, s.sizeCount = s.sizeCur, 0, 0
	}
}

// nextSize is what readiness assumes the next event needs: the largest of
// the recent ones, or the average of what waits when none arrived since
// Open. Called with depthMu held.
func (s *Spool) nextSize() int64 {
	n := max(s.sizeCur, s.sizePrev)
	if n == 0 && s.depthEntries > 0 {
		n = s.depthBytes / s.depthEntries
	}
	return max(n, 1)
}

func (s *Spool) unreserve(size, n int64) {
	s.depthMu.Lock()
	s.depthBytes -= size
	s.depthEntries -= n
	s.depthMu.Unlock()
}

// retryAfter: a spool that Kafka is draining frees room within seconds; one
// that is not (brokers away, or no brokers configured) will not soon.
func (s *Spool) retryAfter() time.Duration {
	if last := s.lastDrain.Load(); last != 0 && s.now().Sub(time.Unix(0, last)) < 10*time.Second {
		return time.Second
	}
	return s.cfg.FullRetryAfter
}

// commitLoop is the only writer of the log. It batches queued appends and
// covers each batch with one fsync.
func (s *Spool) commitLoop() {
	defer close(s.committerDone)
	var (
		batch []*appendReq
		wb    wal.Batch
		timer = time.NewTimer(time.Hour)
	)
	timer.Stop()
	for {
		first, ok := <-s.reqs
		if !ok {
			return
		}
		batch = append(batch[:0], first)
		open := s.gather(&batch, timer)
		s.commit(batch, &wb)
		clear(batch)
		if !open {
			return
		}
	}
}

// gather adds queued appends to batch. If none was waiting, it holds the
// batch up to GroupCommitInterval for company. It returns false once reqs
// is closed.
func (s *Spool) gather(batch *[]*appendReq, timer *time.Timer) bool {
	for len(*batch) < s.cfg.MaxBatch {
		select {
		case r, ok := <-s.reqs:
			if !ok {
				return false
			}
			*batch = append(*batch, r)
			continue
		default:
		}
		break
	}
	if len(*batch) > 1 || s.cfg.GroupCommitInterval <= 0 {
		return true
	}
	timer.Reset(s.cfg.GroupCommitInterval)
	defer timer.Stop()
	for len(*batch) < s.cfg.MaxBatch {
		select {
		case r, ok := <-s.reqs:
			if !ok {
				return false
			}
			*batch = append(*batch, r)
		case <-timer.C:
			return true
		}
	}
	return true
}

func (s *Spool) commit(batch []*appendReq, wb *wal.Batch) {
	if err := s.failure(); err != nil {
		s.finish(batch, err)
		return
	}
	start := time.Now()
	idx := s.last.Load()
	var framed int64
	for i, r := range batch {
		wb.Write(idx+uint64(i)+1, r.data)
		framed += r.size
	}
	// WriteBatch writes the batch and fsyncs the tail segment once; a
	// segment it fills is fsynced before the next one is created.
	err := s.wal.WriteBatch(wb)
	if err == nil {
		// A new segment's directory entry is only durable once the
		// directory is synced too.
		var sync bool
		if sync, err = s.segs.wrote(framed); sync && err == nil {
			err = syncDir(s.cfg.Dir)
			s.dirSyncs.Add(1)
		}
	}
	if err != nil {
		wb.Clear()
		s.fail(err)
		s.finish(batch, err)
		return
	}
	// Keys before the answers: a retry after the 202 must find its key.
	s.recordKeys(batch, idx)
	s.last.Store(idx + uint64(len(batch)))
	s.commits.Add(1)
	s.appends.Add(uint64(len(batch)))
	s.m.batch.Observe(float64(len(batch)))
	s.m.commitTime.Observe(time.Since(start).Seconds())
	select {
	case s.appended <- struct{}{}:
	default:
	}
	for _, r := range batch {
		r.done <- nil
	}
}

// finish fails a batch that was not written.
func (s *Spool) finish(batch []*appendReq, err error) {
	var size int64
	for _, r := range batch {
		size += r.size
		s.releaseIdem(r.idem)
		r.done <- err
	}
	s.unreserve(size, int64(len(batch)))
	s.m.rejected.WithLabelValues("error").Add(float64(len(batch)))
}

// read returns a copy of entry idx.
func (s *Spool) read(idx uint64) ([]byte, error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	return s.wal.Read(idx)
}

// ID is the spool's id, the SPOOL part of the spool_position header of
// every message it forwards.
func (s *Spool) ID() string { return s.id }

// Stats is a snapshot of the spool's counters.
type Stats struct {
	Entries  int64  // un-acked (and queued) events
	Bytes    int64  // their on-disk bytes
	Last     uint64 // index of the last durable event
	Acked    uint64 // index up to which Kafka acked every event
	Appends  uint64 // events made durable since Open
	Commits  uint64 // fsynced batches since Open
	OldestAt time.Time
}

// Stats returns current counters.
func (s *Spool) Stats() Stats {
	s.depthMu.Lock()
	st := Stats{Entries: s.depthEntries, Bytes: s.depthBytes}
	s.depthMu.Unlock()
	st.Last, st.Acked = s.last.Load(), s.acked.Load()
	st.Appends, st.Commits = s.appends.Load(), s.commits.Load()
	st.OldestAt = s.oldestUnacked()
	return st
}

// oldestUnacked is the acceptance time of the first un-acked event, zero
// when there is none.
func (s *Spool) oldestUnacked() time.Time {
	idx := s.acked.Load() + 1
	if idx > s.last.Load() {
		return time.Time{}
	}
	s.oldestMu.Lock()
	defer s.oldestMu.Unlock()
	if s.oldestIdx == idx {
		return s.oldestAt
	}
	b, err := s.read(idx)
	if err != nil {
		return time.Time{}
	}
	rec, err := decodeRecord(b)
	if err != nil {
		return time.Time{}
	}
	s.oldestIdx, s.oldestAt = idx, rec.at
	return rec.at
}

// Ping is the readiness check: nil while Publish can take the next event,
// taken to be as large as the largest recent one. It fails when the spool
// failed or is closed, and when the next event would not fit: refusal
// starts before max_bytes is reached, at the first event that would cross
// it, and so does this.
func (s *Spool) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.failure(); err != nil {
		return err
	}
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	s.depthMu.Lock()
	defer s.depthMu.Unlock()
	if !s.fits(s.nextSize()) {
		return &delivery.BackpressureError{Reason: "spool full", After: s.retryAfter()}
	}
	return nil
}

// Close stops accepting events, commits those queued, lets the forwarder
// push what it can until ctx ends, persists the acked position, and closes
// the log. What is not acked stays on disk for the next Open. Close the
// spool before the Kafka producer it forwards to.
func (s *Spool) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	close(s.reqs)
	fwdDone, fwdCancel := s.fwdDone, s.fwdCancel
	s.mu.Unlock()

	<-s.committerDone
	close(s.draining)
	var errs []error
	if fwdDone != nil {
		select {
		case <-fwdDone:
		case <-ctx.Done():
			fwdCancel()
			<-fwdDone
			errs = append(errs, fmt.Errorf("spool close: %w (un-acked events stay on disk)", ctx.Err()))
		}
		fwdCancel()
	}
	if err := s.wal.Close(); err != nil && !errors.Is(err, wal.ErrClosed) {
		errs = append(errs, fmt.Errorf("spool close log: %w", err))
	}
	if err := s.ckpt.close(); err != nil {
		errs = append(errs, fmt.Errorf("spool close checkpoint: %w", err))
	}
	if err := s.syncKeys(); err != nil {
		errs = append(errs, fmt.Errorf("spool close: %w", err))
	}
	if err := s.keysFile.close(); err != nil {
		errs = append(errs, fmt.Errorf("spool close keys: %w", err))
	}
	if err := s.lock.unlock(); err != nil {
		errs = append(errs, fmt.Errorf("spool unlock: %w", err))
	}
	s.m.unregister(s.reg)
	return errors.Join(errs...)
}
