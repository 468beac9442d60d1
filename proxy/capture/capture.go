// Package capture samples requests of a route into a JSONL file, redacted,
// for offline comparison runs (`strangler compare`), and reads them back.
//
// A record keeps what a replay needs: method, request target, header
// fields in order and the body; and, when the legacy side answered, its
// answer (status, headers, body, time window) and what it published for
// the request (the line of its events file, or its message on a topic,
// which arrives later: the record waits for it), so that an offline run
// can compare the Go side with it without asking the monolith again.
//
// Redaction, before anything is written: credential header values
// (Cookie, Authorization, API keys...) and secret-looking query values
// become "[redacted]", so a replay runs without the client's session; in
// the request body every e-mail address and the value of every
// credential-looking field is masked, keeping its length and kind of
// character (compare.MaskRequestBody), so the request stays replayable;
// the answer and the published message are redacted as compare.RedactAnswer
// does (secret-looking members "[redacted]", addresses masked alike), the
// same redaction an offline run applies to the Go side's answer before
// comparing. Keep capture files where that route's request logs may be
// kept.
package capture

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/internal/ascii"
	"github.com/strangler-proxy/strangler/internal/dropqueue"
	"github.com/strangler-proxy/strangler/routes"
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
	// Answer is the legacy side's answer, when it served the request; nil
	// otherwise (the Go side answered, or the legacy call failed).
	Answer *Answer `json:"answer,omitempty"`
	// Published is what the legacy side published for the request (the
	// line of its events file, or the message on the topic it reaches,
	// found by the route's shadow.key_path in the answer); absent when the
	// route names no source or nothing was published.
	Published json.RawMessage `json:"published,omitempty"`
	// PublishedUnknown: the answer names a message the source did not
	// yield in time (a topic's wait), so whether the legacy side published
	// is not known; an offline run skips the record.
	PublishedUnknown bool `json:"published_unknown,omitempty"`
}

// Answer is a recorded legacy answer, redacted.
type Answer struct {
	Status int         `json:"status"`
	Header [][2]string `json:"header"`
	// Body is the body when it is valid UTF-8; BodyBase64 otherwise.
	Body       string `json:"body,omitempty"`
	BodyBase64 []byte `json:"body_base64,omitempty"`
	// Start and End are the answer's time window: from the proxy calling
	// the legacy side to having its whole answer (clock values are judged
	// against it).
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// BodyBytes returns the answer's body.
func (a *Answer) BodyBytes() []byte {
	if a.BodyBase64 != nil {
		return a.BodyBase64
	}
	return []byte(a.Body)
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
		// The recorded Content-Length was left out above: the body's own
		// length frames it (a forwarder reads the header, not the buffer).
		req.Header.SetContentLength(len(b))
	}
}

// Pending is a request being captured: its head is copied, its body is
// copied as the handler reads it, and a legacy answer is copied as it
// streams to the client (Around).
type Pending struct {
	rec  Record
	tee  tee
	orig io.Reader
	ct   string // the request's Content-Type
	out  Output
	now  func() time.Time

	// The legacy answer.
	legacy    bool // the legacy side served; the record waits for its body
	streaming bool
	start     time.Time
	ans       Answer
	ansBody   []byte
	ansCT     string
	ansOver   bool
	max       int
	written   atomic.Bool

	// mu orders the request's end (finished) and the published message's
	// arrival (awaiting cleared), which may come from another goroutine;
	// whichever is last writes the record.
	mu       sync.Mutex
	finished bool
	awaiting bool
}

// Output is where a captured record goes.
type Output struct {
	// Writer appends the record. Required.
	Writer *Writer
	// Published finds what the legacy side published for an answer with
	// this body and calls done once with it: at once, or later (a topic's
	// message arrives after the answer); with nil when nothing was
	// published, and unknown when the source could not say in time. done
	// must not keep msg. Nil: never looked for.
	Published func(answerBody []byte, done func(msg []byte, unknown bool))
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
func Begin(ctx *fasthttp.RequestCtx, route string, maxBody int, now func() time.Time, out Output) *Pending {
	n := ctx.Request.Header.ContentLength()
	if n > maxBody {
		return nil
	}
	start := now()
	p := &Pending{rec: Record{
		Time:   start.UTC(),
		Route:  route,
		Method: string(ctx.Method()),
		URI:    compare.RedactURI(string(ctx.Request.Header.RequestURI())),
		Remote: ctx.RemoteIP().String(),
	}, out: out, now: now, start: start, max: maxBody, ct: string(ctx.Request.Header.ContentType())}
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

// Finish runs after the handler: it restores the request's own body
// stream and writes the record, unless the legacy side is still streaming
// its answer (the record is written when the stream closes).
func (p *Pending) Finish(ctx *fasthttp.RequestCtx) {
	p.requestDone()
	if p.orig != nil {
		ctx.Request.SetBodyStream(p.orig, ctx.Request.Header.ContentLength())
		p.orig = nil
	}
	if !p.legacy || !p.streaming {
		p.write()
	}
}

// requestDone takes the request body from the tee once the handler has
// read it; a body not read to its end within the cap spoils the record.
func (p *Pending) requestDone() {
	if p.orig == nil || p.rec.Body != "" || p.rec.BodyBase64 != nil {
		return
	}
	if !p.tee.eof || p.tee.over || p.tee.bad {
		p.written.Store(true) // not recorded: a replay would send half a body
		return
	}
	p.setBody(p.tee.buf)
}

func (p *Pending) setBody(b []byte) {
	b = compare.MaskRequestBody(b, p.ct)
	if utf8.Valid(b) {
		p.rec.Body = string(b)
	} else {
		p.rec.BodyBase64 = append([]byte(nil), b...)
	}
}

// Around returns the legacy handler h, recording the answer it gives into
// p: its head when h returns, its body as it streams to the client. An
// observer h is given (the shadow job's) still sees every piece, after p.
func (p *Pending) Around(h routes.Handler) routes.Handler { return around{h: h, p: p} }

// observedServer is the legacy forwarder's ServeObserved.
type observedServer interface {
	ServeObserved(ctx *fasthttp.RequestCtx, obs routes.BodyObserver) (bool, error)
}

type around struct {
	h routes.Handler
	p *Pending
}

func (a around) Serve(ctx *fasthttp.RequestCtx) error {
	_, err := a.ServeObserved(ctx, nil)
	return err
}

func (a around) ServeObserved(ctx *fasthttp.RequestCtx, obs routes.BodyObserver) (bool, error) {
	p := a.p
	ob, ok := a.h.(observedServer)
	if !ok {
		err := a.h.Serve(ctx)
		p.served(ctx, false, err)
		return false, err
	}
	streaming, err := ob.ServeObserved(ctx, tee2{p, obs})
	p.served(ctx, streaming, err)
	return streaming, err
}

// served takes the answer's head when the legacy handler returns, and the
// body too when it is in memory: the record is complete, written before
// the shadow engine can take the legacy side's published message.
func (p *Pending) served(ctx *fasthttp.RequestCtx, streaming bool, err error) {
	if err != nil {
		return // the front door answers the error; nothing to record of legacy
	}
	p.legacy, p.streaming = true, streaming
	h := &ctx.Response.Header
	p.ans.Status = h.StatusCode()
	p.ans.Header = p.ans.Header[:0]
	for k, v := range h.All() {
		p.ans.Header = append(p.ans.Header, [2]string{string(k), string(v)})
	}
	p.ansCT = string(h.ContentType())
	if !streaming {
		p.ansBody = append(p.ansBody[:0], ctx.Response.Body()...)
		p.ansOver = len(p.ansBody) > p.max
		p.answerDone(true)
	}
}

// tee2 reports a streamed legacy body to p, then to the other observer.
type tee2 struct {
	p   *Pending
	obs routes.BodyObserver
}

func (t tee2) ObserveBody(b []byte) {
	p := t.p
	if !p.ansOver {
		if len(p.ansBody)+len(b) > p.max {
			p.ansOver = true
		} else {
			p.ansBody = append(p.ansBody, b...)
		}
	}
	if t.obs != nil {
		t.obs.ObserveBody(b)
	}
}

func (t tee2) BodyDone(complete bool) {
	t.p.answerDone(complete)
	t.p.write()
	if t.obs != nil {
		t.obs.BodyDone(complete)
	}
}

// answerDone closes the answer: its window, its redacted body, what the
// legacy side published for it.
func (p *Pending) answerDone(complete bool) {
	if !complete || p.ansOver {
		p.legacy = false // half an answer compares as garbage: record the request alone
		return
	}
	p.ans.Start, p.ans.End = p.start.UTC(), p.now().UTC()
	body := compare.RedactAnswerBody(p.ansBody, p.ansCT)
	if utf8.Valid(body) {
		p.ans.Body = string(body)
	} else {
		p.ans.BodyBase64 = bytes.Clone(body)
	}
	p.ans.Header = compare.RedactHeaders(p.ans.Header)
	a := p.ans
	p.rec.Answer = &a
	if p.out.Published != nil {
		p.mu.Lock()
		p.awaiting = true
		p.mu.Unlock()
		p.out.Published(p.ansBody, p.published)
	}
}

// published takes what the legacy side published for the answer.
func (p *Pending) published(msg []byte, unknown bool) {
	p.mu.Lock()
	if msg != nil && json.Valid(msg) {
		p.rec.Published = compare.RedactAnswerBody(msg, "application/json")
	}
	p.rec.PublishedUnknown = unknown
	p.awaiting = false
	ready := p.finished
	p.mu.Unlock()
	if ready {
		p.emit()
	}
}

// write ends the request's part of the record; the record goes to the
// writer once the published message is in too.
func (p *Pending) write() {
	p.mu.Lock()
	p.requestDone()
	p.finished = true
	ready := !p.awaiting
	p.mu.Unlock()
	if ready {
		p.emit()
	}
}

// emit hands the record to the writer, once.
func (p *Pending) emit() {
	if p.written.Swap(true) {
		return
	}
	p.out.Writer.Write(p.rec)
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
