// Package capture samples requests of a route into a JSONL file, redacted,
// for offline comparison runs (`strangler compare`), and reads them back.
//
// A record keeps what a replay needs: method, request target, header
// fields in order and the body. Credential header values (Cookie,
// Authorization, API keys...) and secret-looking query values are replaced
// by "[redacted]" before anything is written, so a replay runs without the
// client's session. Bodies are kept as sent: a replay without them would
// test nothing. Keep capture files where that route's request logs may be
// kept.
package capture

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/internal/ascii"
	"github.com/strangler-proxy/strangler/internal/dropqueue"
)

// Record is one captured request: one line of a capture file.
type Record struct {
	Time   time.Time `json:"time"`
	Route  string    `json:"route"`
	Method string    `json:"method"`
	// URI is the request target as received, secret query values
	// redacted.
	URI string `json:"uri"`
	// Header holds the fields in the order received, credential values
	// redacted. Host is among them.
	Header [][2]string `json:"header"`
	// Body is the body when it is valid UTF-8; BodyBase64 otherwise.
	Body       string `json:"body,omitempty"`
	BodyBase64 []byte `json:"body_base64,omitempty"`
	// Remote is the client address, for a replay's X-Forwarded-For.
	Remote string `json:"remote,omitempty"`
}

// BodyBytes returns the record's body.
func (r *Record) BodyBytes() []byte {
	if r.BodyBase64 != nil {
		return r.BodyBase64
	}
	return []byte(r.Body)
}

// Request fills req with the recorded request.
func (r *Record) Request(req *fasthttp.Request) {
	req.Reset()
	req.Header.DisableNormalizing()
	req.Header.SetMethod(r.Method)
	req.Header.SetRequestURI(r.URI)
	for _, kv := range r.Header {
		if ascii.EqualFoldString(kv[0], "Host") {
			req.Header.SetHost(kv[1])
			continue
		}
		if ascii.EqualFoldString(kv[0], "Content-Length") || ascii.EqualFoldString(kv[0], "Transfer-Encoding") {
			continue // the body below frames itself
		}
		req.Header.Add(kv[0], kv[1])
	}
	if b := r.BodyBytes(); len(b) > 0 {
		req.SetBody(b)
	}
}

// Pending is a request being captured: its head is copied, its body is
// copied as the handler reads it.
type Pending struct {
	rec  Record
	tee  tee
	orig io.Reader
}

// tee keeps up to max bytes of what the handler reads.
type tee struct {
	r              io.Reader
	buf            []byte
	max            int
	eof, over, bad bool
}

func (t *tee) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 && !t.over {
		if len(t.buf)+n > t.max {
			t.over = true
		} else {
			t.buf = append(t.buf, p[:n]...)
		}
	}
	switch {
	case err == io.EOF:
		t.eof = true
	case err != nil:
		t.bad = true
	}
	return n, err
}

// Begin copies the head of the request in ctx and puts a tee in front of
// its body, keeping at most maxBody bytes. It returns nil when the
// declared body is over maxBody.
func Begin(ctx *fasthttp.RequestCtx, route string, maxBody int, now time.Time) *Pending {
	n := ctx.Request.Header.ContentLength()
	if n > maxBody {
		return nil
	}
	p := &Pending{rec: Record{
		Time:   now.UTC(),
		Route:  route,
		Method: string(ctx.Method()),
		URI:    compare.RedactURI(string(ctx.Request.Header.RequestURI())),
		Remote: ctx.RemoteIP().String(),
	}}
	var h [][2]string
	for k, v := range ctx.Request.Header.All() {
		h = append(h, [2]string{string(k), string(v)})
	}
	p.rec.Header = compare.RedactHeaders(h)
	switch {
	case ctx.Request.IsBodyStream() && (n > 0 || n == -1):
		p.orig = ctx.Request.BodyStream()
		p.tee = tee{r: p.orig, max: maxBody}
		ctx.Request.SetBodyStream(&p.tee, n)
	case !ctx.Request.IsBodyStream():
		if b := ctx.Request.Body(); len(b) > maxBody {
			return nil
		} else if len(b) > 0 {
			p.setBody(b)
		}
	}
	return p
}

// Finish restores the request's own body stream and returns the record,
// or false when the body was not read to its end within the cap.
func (p *Pending) Finish(ctx *fasthttp.RequestCtx) (Record, bool) {
	if p.orig == nil {
		return p.rec, true
	}
	ctx.Request.SetBodyStream(p.orig, ctx.Request.Header.ContentLength())
	p.orig = nil
	if !p.tee.eof || p.tee.over || p.tee.bad {
		return Record{}, false
	}
	p.setBody(p.tee.buf)
	return p.rec, true
}

func (p *Pending) setBody(b []byte) {
	if utf8.Valid(b) {
		p.rec.Body = string(b)
	} else {
		p.rec.BodyBase64 = append([]byte(nil), b...)
	}
}

// Writer appends Records to a file from its own goroutine, which Close
// stops after writing what is queued. It stops writing (and counts the
// records it drops) once the file reaches its size cap.
type Writer struct {
	q       *dropqueue.Queue[Record]
	done    chan struct{}
	written atomic.Uint64
	log     *zap.Logger

	// Owned by the writer goroutine.
	f        *os.File
	w        *bufio.Writer
	size     int64
	maxBytes int64
	err      error
}

// DefaultQueue is how many records may wait for the writer.
const DefaultQueue = 256

// Open appends to path (creating it) and starts the writer.
func Open(path string, maxBytes int64, log *zap.Logger) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open capture file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open capture file: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	w := &Writer{
		q: dropqueue.New[Record](DefaultQueue), done: make(chan struct{}), log: log.Named("capture"),
		f: f, w: bufio.NewWriterSize(f, 64<<10), size: st.Size(), maxBytes: maxBytes,
	}
	go w.run()
	return w, nil
}

// Write queues r; false (and counted) when the queue is full, the file is
// at its cap, or the writer closed. It never waits.
func (w *Writer) Write(r Record) bool { return w.q.Put(r) }

// Written and Dropped count records.
func (w *Writer) Written() uint64 { return w.written.Load() }

// Dropped counts records not written.
func (w *Writer) Dropped() uint64 { return w.q.Dropped() }

// Close writes what is queued, closes the file and returns the first
// write error.
func (w *Writer) Close() error {
	w.q.Close()
	<-w.done
	return w.err
}

func (w *Writer) run() {
	defer close(w.done)
	var line []byte
	for r := range w.q.C() {
		b, err := json.Marshal(r)
		if err != nil {
			w.setErr(err)
			continue
		}
		line = append(append(line[:0], b...), '\n')
		if w.maxBytes > 0 && w.size+int64(len(line)) > w.maxBytes {
			w.q.Drop(1)
			continue
		}
		if _, err := w.w.Write(line); err != nil {
			w.setErr(err)
			continue
		}
		w.size += int64(len(line))
		w.written.Add(1)
		if w.q.Len() == 0 {
			w.setErr(w.w.Flush())
		}
	}
	w.setErr(w.w.Flush())
	w.setErr(w.f.Close())
}

func (w *Writer) setErr(err error) {
	if err != nil && w.err == nil {
		w.err = err
		w.log.Error("capture write", zap.Error(err))
	}
}

// maxLine bounds one line a Reader accepts.
const maxLine = 64 << 20

// Read calls fn for each record of r, in order. A line that is not a
// record is an error naming its line number.
func Read(r io.Reader, fn func(Record) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return fmt.Errorf("capture line %d: %w", n, err)
		}
		if rec.Method == "" || rec.URI == "" {
			return fmt.Errorf("capture line %d: %w", n, errors.New("not a capture record (no method or uri)"))
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read capture: %w", err)
	}
	return nil
}
