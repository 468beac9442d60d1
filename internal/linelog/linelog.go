// Package linelog is the bounded, buffered path for log lines written once
// per request (the access log, the shadow's mismatch lines): a request pays
// for a copy into memory, never for a write(2), and a slow or stuck output
// costs dropped lines, counted, instead of stalled requests.
//
// Lines go into a buffer; a full buffer, or one whose first line has waited
// FlushInterval, is handed to one flusher goroutine that writes it out in a
// single call. At most BufferBytes are held (filled, queued or being
// written): when every buffer is taken the line is dropped and counted
// (Dropped, OnDrop). Close writes what is held and stops the flusher.
//
// A Writer is a zapcore.WriteSyncer: zap's JSON core hands it each entry,
// newline included, in one Write, so a line is never split or interleaved.
// Direct gives the same output unbuffered, serialized with the flushes, for
// the rare lines (errors) that should not wait.
package linelog

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Defaults of Options' zero values.
const (
	DefaultBufferBytes   = 1 << 20
	DefaultFlushInterval = 200 * time.Millisecond
	DefaultCloseTimeout  = 5 * time.Second
	// chunkBytes is one buffer's capacity: one write(2) per chunk at load.
	chunkBytes = 64 << 10
)

// Options tune New. The zero value means the defaults.
type Options struct {
	// BufferBytes bounds the memory held for lines not yet written, in
	// 64 KiB buffers (at least one). Zero means 1 MiB.
	BufferBytes int
	// FlushInterval is the longest a line waits in a partly filled buffer.
	// Zero means 200ms.
	FlushInterval time.Duration
	// OnDrop is told, from the flusher goroutine and at most once per
	// FlushInterval, how many lines were dropped since its last call and in
	// all. It may log through Direct (never through the Writer itself: a
	// full Writer would drop that line too). Nil: drops are only counted.
	OnDrop func(dropped, total uint64)
	// CloseTimeout bounds Close when the output is stuck (a pipe nobody
	// reads): Close then returns an error and the lines still held are
	// lost with the process. Zero means 5s.
	CloseTimeout time.Duration
}

// Writer is safe for concurrent use. Create it with New; Close it once.
type Writer struct {
	out      io.Writer
	interval time.Duration
	closeMax time.Duration
	onDrop   func(dropped, total uint64)

	mu        sync.Mutex // guards the fields below; held only for a copy
	cur       *chunk     // lines being added; nil until the next line
	free      []*chunk   // written chunks, for reuse
	allocated int        // chunks that exist: cur, queued, being written, free
	limit     int        // the bound on allocated
	armed     bool       // the flusher's timer runs for cur's first line
	closed    bool

	outMu sync.Mutex // serializes writes to out: flushes and Direct

	queue chan *chunk   // full chunks, in order; capacity max: never blocks
	kick  chan struct{} // a line went into an empty chunk: start the timer
	flush chan chan error
	stop  chan struct{}
	done  chan struct{}

	dropped atomic.Uint64
	written atomic.Uint64

	errMu   sync.Mutex
	lastErr error // the output's first error since the last Sync
}

type chunk struct {
	b     []byte
	lines uint64
}

// New starts the flusher for out.
func New(out io.Writer, o Options) *Writer {
	if o.BufferBytes <= 0 {
		o.BufferBytes = DefaultBufferBytes
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = DefaultCloseTimeout
	}
	n := max(1, o.BufferBytes/chunkBytes)
	w := &Writer{
		out:      out,
		interval: o.FlushInterval,
		closeMax: o.CloseTimeout,
		onDrop:   o.OnDrop,
		limit:    n,
		queue:    make(chan *chunk, n),
		kick:     make(chan struct{}, 1),
		flush:    make(chan chan error),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go w.run()
	return w
}

// Interface guard: zap cores take it as their output.
var _ zapcore.WriteSyncer = (*Writer)(nil)

// Write takes one or more whole lines. It never blocks on the output and
// never fails: a line that finds no room is dropped and counted.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.dropped.Add(1)
		return len(p), nil
	}
	c := w.cur
	if c != nil && len(c.b)+len(p) > cap(c.b) && len(c.b) > 0 {
		w.queue <- c // room for every chunk: never blocks
		c, w.cur = nil, nil
	}
	if c == nil {
		if c = w.take(); c == nil {
			w.mu.Unlock()
			w.dropped.Add(1)
			return len(p), nil
		}
		w.cur = c
	}
	first := len(c.b) == 0
	c.b = append(c.b, p...)
	c.lines++
	kick := first && !w.armed
	if kick {
		w.armed = true
	}
	w.mu.Unlock()
	if kick {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// take returns an empty chunk, or nil when all of them are in use. Called with
// mu held.
func (w *Writer) take() *chunk {
	if n := len(w.free); n > 0 {
		c := w.free[n-1]
		w.free = w.free[:n-1]
		return c
	}
	if w.allocated == w.limit {
		return nil
	}
	w.allocated++
	return &chunk{b: make([]byte, 0, chunkBytes)}
}

// Sync writes every line taken so far and returns the output's first
// error since the last Sync, if any. zap calls it after Panic and Fatal
// entries, so those lines are out before the process ends.
func (w *Writer) Sync() error {
	reply := make(chan error, 1)
	select {
	case w.flush <- reply:
		return <-reply
	case <-w.done:
		return nil
	}
}

// Close writes every line taken so far, stops the flusher and drops (and
// counts) lines written after it, within CloseTimeout. It returns the
// output's first error since the last Sync, or ErrStuck.
func (w *Writer) Close() error {
	w.mu.Lock()
	already := w.closed
	w.closed = true
	w.mu.Unlock()
	if !already {
		close(w.stop)
	}
	t := time.NewTimer(w.closeMax)
	defer t.Stop()
	select {
	case <-w.done:
	case <-t.C:
		return fmt.Errorf("%w: lines still held after %s", ErrStuck, w.closeMax)
	}
	if already {
		return nil
	}
	return w.takeErr()
}

// ErrStuck is Close's error when the output took no write within
// CloseTimeout.
var ErrStuck = errors.New("log output stuck")

// Dropped is the number of lines dropped since New.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Written is the number of lines written out since New.
func (w *Writer) Written() uint64 { return w.written.Load() }

// Direct is out, unbuffered, for lines that must not wait or be dropped:
// each Write goes straight to out, never in the middle of a flush.
func (w *Writer) Direct() zapcore.WriteSyncer { return direct{w} }

type direct struct{ w *Writer }

func (d direct) Write(p []byte) (int, error) {
	d.w.outMu.Lock()
	defer d.w.outMu.Unlock()
	return d.w.out.Write(p)
}

func (d direct) Sync() error {
	if s, ok := d.w.out.(interface{ Sync() error }); ok {
		d.w.outMu.Lock()
		defer d.w.outMu.Unlock()
		if err := s.Sync(); err != nil && !ignorableSyncError(err) {
			return err
		}
	}
	return nil
}

// ignorableSyncError: fsync of a pipe or a terminal fails with EINVAL, which
// says nothing about the lines written (zap's own Sync has the same problem).
func ignorableSyncError(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP)
}

func (w *Writer) setErr(err error) {
	w.errMu.Lock()
	if w.lastErr == nil {
		w.lastErr = err
	}
	w.errMu.Unlock()
}

func (w *Writer) takeErr() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	err := w.lastErr
	w.lastErr = nil
	return err
}

func (w *Writer) run() {
	defer close(w.done)
	timer := time.NewTimer(w.interval)
	timer.Stop()
	var lastReport uint64
	var lastReportAt time.Time
	report := func(force bool) {
		total := w.dropped.Load()
		if total == lastReport || w.onDrop == nil || !force && time.Since(lastReportAt) < w.interval {
			return
		}
		w.onDrop(total-lastReport, total)
		lastReport, lastReportAt = total, time.Now()
	}
	for {
		select {
		case c := <-w.queue:
			w.write(c)
		case <-w.kick:
			timer.Reset(w.interval)
		case <-timer.C:
			w.writeCurrent()
		case reply := <-w.flush:
			w.drainQueue()
			w.writeCurrent()
			reply <- w.takeErr()
		case <-w.stop:
			timer.Stop()
			w.drainQueue()
			w.writeCurrent()
			report(true)
			return
		}
		report(false)
	}
}

// writeCurrent writes the partly filled chunk, if any, after the ones
// already queued (lines keep their order).
func (w *Writer) writeCurrent() {
	w.drainQueue()
	w.mu.Lock()
	c := w.cur
	w.cur, w.armed = nil, false
	w.mu.Unlock()
	if c != nil {
		w.write(c)
	}
}

func (w *Writer) drainQueue() {
	for {
		select {
		case c := <-w.queue:
			w.write(c)
		default:
			return
		}
	}
}

// write writes one chunk and gives it back. A failed write drops its lines.
func (w *Writer) write(c *chunk) {
	if len(c.b) > 0 {
		w.outMu.Lock()
		_, err := w.out.Write(c.b)
		w.outMu.Unlock()
		if err != nil {
			w.dropped.Add(c.lines)
			w.setErr(err)
		} else {
			w.written.Add(c.lines)
		}
	}
	c.b, c.lines = c.b[:0], 0
	if cap(c.b) > 4*chunkBytes {
		c.b = make([]byte, 0, chunkBytes) // a huge line grew it: do not keep that
	}
	w.mu.Lock()
	w.free = append(w.free, c)
	w.mu.Unlock()
}

// NewLogger is an unsampled zap logger writing zap's production JSON to w
// at level: for lines that must each be kept, written once per request or
// comparison (a shadow mismatch), through the same bounded buffer as the
// access log.
func NewLogger(w *Writer, level zapcore.LevelEnabler) *zap.Logger {
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), w, level))
}
