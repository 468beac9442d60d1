package shadowreport

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/internal/dropqueue"
	"github.com/strangler-proxy/strangler/routes"
)

// Entry is one line of the JSONL diff log: a comparison that did not
// match, or a side that failed.
type Entry struct {
	Time            time.Time       `json:"time"`
	Route           string          `json:"route"`
	Outcome         compare.Outcome `json:"outcome"`
	RequestID       string          `json:"request_id,omitempty"`
	Method          string          `json:"method,omitempty"`
	URI             string          `json:"uri,omitempty"` // secret query values redacted
	PrimarySide     routes.Side     `json:"primary_side,omitempty"`
	PrimaryStatus   int             `json:"primary_status,omitempty"`
	CandidateStatus int             `json:"candidate_status,omitempty"`
	Diffs           []compare.Diff  `json:"diffs,omitempty"`
	Dropped         int             `json:"dropped_diffs,omitempty"`
	Error           string          `json:"error,omitempty"`
}

// DiffLogConfig configures the JSONL diff log.
type DiffLogConfig struct {
	// Path of the log file, appended to. Required by OpenDiffLog.
	Path string `mapstructure:"path"`
	// MaxBytes: past it the file is renamed to Path+".1" (replacing the
	// previous one) and a new file started, so the log takes at most
	// twice MaxBytes on disk. Zero: 64 MiB.
	MaxBytes int64 `mapstructure:"max_bytes"`
	// Queue is how many entries may wait for the writer; when it is full
	// entries are dropped and counted, never waited for. Zero: 1024.
	Queue int `mapstructure:"queue"`
}

// Defaults of DiffLogConfig.
const (
	DefaultDiffLogMaxBytes = 64 << 20
	DefaultDiffLogQueue    = 1024
)

// DiffLog writes Entries as JSON lines from its own goroutine, which
// Close stops after writing everything queued.
type DiffLog struct {
	q       *dropqueue.Queue[Entry]
	done    chan struct{}
	written atomic.Uint64
	log     *zap.Logger

	// Owned by the writer goroutine.
	path     string
	maxBytes int64 // 0: never rotate
	file     *os.File
	out      countingWriter
	w        *bufio.Writer // over out
	err      error         // first write error, returned by Close
}

// countingWriter counts the bytes that reach the file.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// OpenDiffLog opens (appending) or creates c.Path and starts the writer.
func OpenDiffLog(c DiffLogConfig, logger *zap.Logger) (*DiffLog, error) {
	if c.Path == "" {
		return nil, fmt.Errorf("diff log: path is required")
	}
	f, err := os.OpenFile(c.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open diff log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat diff log: %w", err)
	}
	d := newDiffLog(c.Queue, logger)
	d.path, d.maxBytes, d.file = c.Path, c.MaxBytes, f
	if d.maxBytes <= 0 {
		d.maxBytes = DefaultDiffLogMaxBytes
	}
	d.out = countingWriter{w: f, n: st.Size()}
	d.w = bufio.NewWriterSize(&d.out, 64<<10)
	go d.run()
	return d, nil
}

// NewDiffLogWriter writes to w without rotation (tests, stdout). w is not
// closed by Close.
func NewDiffLogWriter(w io.Writer, queue int, logger *zap.Logger) *DiffLog {
	d := newDiffLog(queue, logger)
	d.out = countingWriter{w: w}
	d.w = bufio.NewWriter(&d.out)
	go d.run()
	return d
}

func newDiffLog(queue int, logger *zap.Logger) *DiffLog {
	if queue <= 0 {
		queue = DefaultDiffLogQueue
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	return &DiffLog{q: dropqueue.New[Entry](queue), done: make(chan struct{}), log: logger.Named("difflog")}
}

// Write queues e and reports whether it was accepted: false when the queue
// is full or the log closed (the entry is counted as dropped). The caller
// must not modify e's slices afterwards.
func (d *DiffLog) Write(e Entry) bool { return d.q.Put(e) }

// Dropped returns how many entries were dropped.
func (d *DiffLog) Dropped() uint64 { return d.q.Dropped() }

// Written returns how many entries were written.
func (d *DiffLog) Written() uint64 { return d.written.Load() }

// Close writes what is queued, flushes, closes the file it opened and
// returns the first write error.
func (d *DiffLog) Close() error {
	d.q.Close()
	<-d.done
	return d.err
}

func (d *DiffLog) run() {
	defer close(d.done)
	enc := json.NewEncoder(d.w)
	enc.SetEscapeHTML(false)
	for {
		e, ok := <-d.q.C()
		if !ok {
			break
		}
		d.write(enc, e)
		// Flush once the queue is empty: a tail -f sees lines promptly
		// without a syscall per line under load.
		if d.q.Len() == 0 {
			d.setErr(d.w.Flush())
		}
	}
	d.setErr(d.w.Flush())
	if d.file != nil {
		d.setErr(d.file.Close())
	}
}

func (d *DiffLog) write(enc *json.Encoder, e Entry) {
	if err := enc.Encode(e); err != nil {
		d.setErr(err)
		return
	}
	d.written.Add(1)
	if d.maxBytes > 0 && d.out.n+int64(d.w.Buffered()) >= d.maxBytes {
		d.rotate()
	}
}

// rotate moves the full file aside and starts a new one.
func (d *DiffLog) rotate() {
	if err := d.w.Flush(); err != nil {
		d.setErr(err)
		return
	}
	if err := d.file.Close(); err != nil {
		d.setErr(err)
	}
	if err := os.Rename(d.path, d.path+".1"); err != nil {
		d.setErr(fmt.Errorf("rotate diff log: %w", err))
	}
	f, err := os.OpenFile(d.path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		d.setErr(fmt.Errorf("reopen diff log: %w", err))
		// Keep draining the queue rather than stop the goroutine.
		d.file, d.maxBytes, d.out = nil, 0, countingWriter{w: io.Discard}
		return
	}
	d.file, d.out = f, countingWriter{w: f}
}

func (d *DiffLog) setErr(err error) {
	if err == nil {
		return
	}
	if d.err == nil {
		d.err = err
		d.log.Error("diff log write", zap.Error(err))
	}
}
