package shadow

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strangler-proxy/strangler/compare"
)

// LegacySource gives back what the legacy side published for one request,
// found by the request's key (the value at the route's key path in the
// legacy answer and in the message).
type LegacySource interface {
	// Take returns and forgets the message with this key, if it is here.
	Take(key string) ([]byte, bool)
	// Health is "" while the source can say what the legacy side
	// published, else why it cannot ("cannot read /x: permission
	// denied").
	Health() string
	// Found counts the messages Take has returned: a source that never
	// found one cannot tell a message that is missing from one it cannot
	// see.
	Found() uint64
	// Name says what the source is, for the report ("file /x", "Kafka
	// topic t").
	Name() string
}

// Awaiter is a LegacySource whose messages arrive some time after the
// answer (a topic a log shipper fills): Await calls fn once, from the
// source's goroutine (or at once), with the message when it arrives or
// with false at deadline. It never blocks; it returns false, and never
// calls fn, when too many comparisons wait already.
type Awaiter interface {
	LegacySource
	Await(key string, deadline time.Time, fn func(msg []byte, ok bool)) bool
	// Wait is how long a message is waited for.
	Wait() time.Duration
	// ReadySince is when the source began to see every message (zero: it
	// does not): a request answered before then may have published
	// before it looked.
	ReadySince() time.Time
}

// EventsFile follows the JSONL file the monolith appends every forwarded
// event to (its STRANGLER_EVENTS_FILE), and finds a line by its key (the
// value at the key path, event_id by default). The monolith writes the
// line before it answers, so by the time the proxy has the answer, the
// line is in the file. Only the recent past is kept: the last tailBytes of
// the file when it is first opened, then what is appended, at most max
// lines in memory.
type EventsFile struct {
	path    string
	keyPath string
	found   atomic.Uint64
	health  atomic.Pointer[string]

	mu      sync.Mutex
	f       *os.File
	off     int64
	partial []byte // an unterminated last line, completed by the next read
	lines   ring
	buf     []byte
}

// tailBytes is how far back a first open starts reading: far enough to
// hold the line of the request that made the proxy open the file.
const tailBytes = 1 << 20

// maxEventLine bounds one line; a longer one is skipped.
const maxEventLine = 1 << 20

// DefaultKeyPath is where the shipped intake's answers and messages hold
// the key that ties them to a request.
const DefaultKeyPath = "event_id"

// NewEventsFile follows path, indexing lines by the value at keyPath (""
// is DefaultKeyPath); nothing is opened until the first Take.
func NewEventsFile(path, keyPath string, max int) *EventsFile {
	if keyPath == "" {
		keyPath = DefaultKeyPath
	}
	return &EventsFile{path: path, keyPath: keyPath, lines: newRing(max)}
}

// Take returns and forgets the line whose key is key.
func (e *EventsFile) Take(key string) ([]byte, bool) {
	v, ok := e.lines.take(key)
	if !ok {
		e.mu.Lock()
		err := e.readNew()
		e.mu.Unlock()
		e.setHealth(err)
		if err != nil {
			return nil, false
		}
		v, ok = e.lines.take(key)
	}
	if ok {
		e.found.Add(1)
	}
	return v, ok
}

// Peek returns the line whose key is key and keeps it, for a capture that
// records it before the comparison takes it.
func (e *EventsFile) Peek(key string) ([]byte, bool) {
	if v, ok := e.lines.peek(key); ok {
		return v, true
	}
	e.mu.Lock()
	err := e.readNew()
	e.mu.Unlock()
	if err != nil {
		return nil, false
	}
	return e.lines.peek(key)
}

// Health says whether the file can be read.
func (e *EventsFile) Health() string {
	if h := e.health.Load(); h != nil {
		return *h
	}
	e.mu.Lock()
	err := e.open()
	e.mu.Unlock()
	e.setHealth(err)
	if err != nil {
		return err.Error()
	}
	return ""
}

func (e *EventsFile) setHealth(err error) {
	if err == nil {
		e.health.Store(nil)
		return
	}
	msg := err.Error()
	e.health.Store(&msg)
}

// Found counts the lines Take returned.
func (e *EventsFile) Found() uint64 { return e.found.Load() }

// Name names the file.
func (e *EventsFile) Name() string { return "the legacy events file " + e.path }

// CheckReadable opens path for reading, as a source will: `strangler
// check` refuses a shadow route whose events file it cannot read.
func CheckReadable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	_, err = f.Read(make([]byte, 1))
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return err
}

// open opens the file if it is not open yet. Caller holds mu.
func (e *EventsFile) open() error {
	if e.f != nil {
		return nil
	}
	f, err := os.Open(e.path)
	if err != nil {
		return fmt.Errorf("legacy events file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("legacy events file: %w", err)
	}
	e.f = f
	e.off = max(0, st.Size()-tailBytes)
	e.partial = e.partial[:0]
	if e.off > 0 {
		// Starting mid-file: the first line read is a fragment.
		e.partial = append(e.partial, 0)
	}
	return nil
}

// readNew reads what was appended since the last read. Caller holds mu.
func (e *EventsFile) readNew() error {
	if err := e.open(); err != nil {
		return err
	}
	st, err := e.f.Stat()
	if err != nil {
		return fmt.Errorf("legacy events file: %w", err)
	}
	if st.Size() < e.off {
		// Truncated or replaced in place: start over.
		e.off, e.partial = 0, e.partial[:0]
	}
	if cap(e.buf) == 0 {
		e.buf = make([]byte, 64<<10)
	}
	for {
		n, err := e.f.ReadAt(e.buf[:cap(e.buf)], e.off)
		e.off += int64(n)
		e.split(e.buf[:n])
		if errors.Is(err, io.EOF) || n == 0 {
			return nil
		}
		if err != nil {
			return fmt.Errorf("legacy events file: %w", err)
		}
	}
}

// split indexes every complete line of b, keeping a trailing fragment.
func (e *EventsFile) split(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if len(e.partial)+len(b) <= maxEventLine {
				e.partial = append(e.partial, b...)
			} else {
				e.partial = append(e.partial[:0], 0) // too long: skip the rest of it
			}
			return
		}
		line := b[:i]
		b = b[i+1:]
		if len(e.partial) > 0 {
			if e.partial[0] == 0 { // a fragment or an over-long line: drop
				e.partial = e.partial[:0]
				continue
			}
			line = append(e.partial, line...)
			e.partial = nil
		}
		e.index(line)
	}
}

func (e *EventsFile) index(line []byte) {
	key, ok := compare.Lookup(line, e.keyPath)
	if !ok || key == "" {
		return
	}
	e.lines.put(key, bytes.Clone(line))
}

// Close closes the file.
func (e *EventsFile) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.f == nil {
		return nil
	}
	err := e.f.Close()
	e.f = nil
	if err != nil && !errors.Is(err, fs.ErrClosed) {
		return fmt.Errorf("close legacy events file: %w", err)
	}
	return nil
}

// Unavailable is a source that cannot say anything, and says why: a topic
// this process cannot consume.
func Unavailable(name, why string) interface {
	LegacySource
	Close() error
} {
	return unavailable{name: name, why: why}
}

type unavailable struct{ name, why string }

func (u unavailable) Take(string) ([]byte, bool) { return nil, false }
func (u unavailable) Health() string             { return u.why }
func (u unavailable) Found() uint64              { return 0 }
func (u unavailable) Name() string               { return u.name }
func (u unavailable) Close() error               { return nil }

// Memory is a LegacySource of messages known in advance: what a capture
// recorded the legacy side published, for an offline run.
type Memory struct {
	name  string
	r     ring
	puts  atomic.Uint64
	found atomic.Uint64
}

// NewMemory is an empty Memory named name (for the report), keeping at
// most max messages (0: DefaultRecorded).
func NewMemory(name string, max int) *Memory { return &Memory{name: name, r: newRing(max)} }

// Put records msg under key.
func (m *Memory) Put(key string, msg []byte) {
	m.puts.Add(1)
	m.r.put(key, msg)
}

// Take returns and forgets the message of key.
func (m *Memory) Take(key string) ([]byte, bool) {
	v, ok := m.r.take(key)
	if ok {
		m.found.Add(1)
	}
	return v, ok
}

// Health is "" once a message was put.
func (m *Memory) Health() string {
	if m.puts.Load() == 0 {
		return "it holds none of the legacy side's published messages"
	}
	return ""
}

// Found counts the messages Take returned.
func (m *Memory) Found() uint64 { return m.found.Load() }

// Name names it.
func (m *Memory) Name() string { return m.name }

// Close does nothing.
func (m *Memory) Close() error { return nil }
