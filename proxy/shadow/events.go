package shadow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
)

// EventsFile follows the JSONL file the monolith appends every forwarded
// event to (its STRANGLER_EVENTS_FILE), and finds a line by its event_id.
// The monolith writes the line before it answers, so by the time the
// proxy has the answer, the line is in the file. Only the recent past is
// kept: the last tailBytes of the file when it is first opened, then what
// is appended, at most max lines in memory.
type EventsFile struct {
	path string

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

// NewEventsFile follows path; nothing is opened until the first Take.
func NewEventsFile(path string, max int) *EventsFile {
	return &EventsFile{path: path, lines: newRing(max)}
}

// Take returns and forgets the line whose event_id is id.
func (e *EventsFile) Take(id string) ([]byte, bool) {
	if v, ok := e.lines.take(id); ok {
		return v, true
	}
	e.mu.Lock()
	err := e.readNew()
	e.mu.Unlock()
	if err != nil {
		return nil, false
	}
	return e.lines.take(id)
}

// Observable reports whether the file can be read (it may not exist until
// the monolith forwards its first event).
func (e *EventsFile) Observable() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.open() == nil
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
	var v struct {
		EventID string `json:"event_id"`
	}
	if json.Unmarshal(line, &v) != nil || v.EventID == "" {
		return
	}
	e.lines.put(v.EventID, bytes.Clone(line))
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
