package shadow

import (
	"io"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/routes"
)

// requestTee sits in front of the client's request body while the primary
// reads it, and keeps a copy of up to max bytes. The primary sees exactly
// the bytes and errors it would see without it.
type requestTee struct {
	r        io.Reader
	buf      []byte
	max      int
	eof      bool // the primary read the body to its end
	over     bool // the body is longer than max
	failed   bool // a read failed (client gone, timeout, limit)
	attached bool
}

func (t *requestTee) Read(p []byte) (int, error) {
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
		t.failed = true
	}
	return n, err
}

// complete reports whether buf holds the whole body.
func (t *requestTee) complete() bool { return t.eof && !t.over && !t.failed }

// ObservedServer is a legacy primary that reports the body it streams to
// the client (legacy.Forwarder). A legacy primary without it is served
// through a scratch RequestCtx and a responseTee instead.
type ObservedServer interface {
	ServeObserved(ctx *fasthttp.RequestCtx, obs routes.BodyObserver) (observed bool, err error)
}

// bodyObserver keeps the job's copy of a legacy primary's body as the
// forwarder streams it to the client, and queues the job when the stream
// closes.
type bodyObserver struct{ j *Job }

// Interface guard: the forwarder reports to it.
var _ routes.BodyObserver = (*bodyObserver)(nil)

func (o *bodyObserver) ObserveBody(p []byte) { o.j.keepPrimary(p) }

func (o *bodyObserver) BodyDone(complete bool) {
	j := o.j
	j.streaming = false
	j.bodyDone(complete)
}

// keepPrimary appends p to the primary's body copy, up to the cap.
func (j *Job) keepPrimary(p []byte) {
	if j.primaryOver {
		return
	}
	if len(j.primaryBody)+len(p) > j.route.MaxBody {
		j.primaryOver = true
		return
	}
	j.primaryBody = append(j.primaryBody, p...)
}

// bodyDone queues the job once the primary's body has reached the client,
// or drops it with the reason it cannot be compared.
func (j *Job) bodyDone(complete bool) {
	reason := j.dead
	switch {
	case reason != "":
	case !complete:
		reason = SkipPrimaryBody
	case j.primaryOver:
		reason = SkipResponseTooBig
	}
	if reason != "" {
		j.skip(reason)
		return
	}
	if j.pEnd.IsZero() {
		j.pEnd = j.engine.now()
	}
	j.engine.submit(j)
}

// responseTee is the client's response body stream when the primary is a
// sampled legacy answer from a handler that is not an ObservedServer: it
// reads the handler's stream (held by the job's scratch RequestCtx), keeps
// up to the cap, and when fasthttp closes it — the client has everything,
// or the write failed — closes the handler's stream and ends the job.
type responseTee struct {
	j   *Job
	r   io.Reader
	eof bool
	err error // first read error other than io.EOF
}

// Interface guard: fasthttp closes the stream with the client's error.
var _ fasthttp.ReadCloserWithError = (*responseTee)(nil)

func (t *responseTee) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.j.keepPrimary(p[:n])
	}
	switch {
	case err == io.EOF:
		t.eof = true
	case err != nil && t.err == nil:
		t.err = err
	}
	return n, err
}

// CloseWithError ends the stream: err is fasthttp's error writing to the
// client, nil when the client got everything.
func (t *responseTee) CloseWithError(err error) error {
	j := t.j
	complete := err == nil && t.err == nil && t.eof
	// The forwarder learns nothing of the client's error this way (its
	// CloseWithError gets nil); it only logs that at Debug. Whether its
	// upstream connection is reused depends on the body having been read
	// to its end, which it tracks itself.
	closeErr := j.scratch.Response.CloseBodyStream()
	j.scratch.Response.Header.CopyTo(&j.primaryResp.Header)
	j.releaseScratch()
	t.j, t.r = nil, nil
	j.streaming = false
	j.bodyDone(complete)
	return closeErr
}
