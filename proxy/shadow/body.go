package shadow

import (
	"io"

	"github.com/valyala/fasthttp"
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

// responseTee is the client's response body stream when the primary is a
// sampled legacy answer: it reads the forwarder's stream (held by the
// job's scratch RequestCtx), keeps up to max bytes, and when fasthttp
// closes it — the client has everything, or the write failed — closes the
// forwarder's stream and hands the job to the pool.
type responseTee struct {
	j    *Job
	r    io.Reader
	over bool
	eof  bool
	err  error // first read error other than io.EOF
}

// Interface guard: fasthttp closes the stream with the client's error.
var _ fasthttp.ReadCloserWithError = (*responseTee)(nil)

func (t *responseTee) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 && !t.over {
		b := &t.j.primaryBody
		if len(*b)+n > t.j.route.MaxBody {
			t.over = true
		} else {
			*b = append(*b, p[:n]...)
		}
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
	reason := j.dead
	switch {
	case reason != "":
	case err != nil || t.err != nil || !t.eof:
		reason = "primary_body_incomplete"
	case t.over:
		reason = "response_too_large"
	}
	// The forwarder learns nothing of the client's error this way (its
	// CloseWithError gets nil); it only logs that at Debug. Whether its
	// upstream connection is reused depends on the body having been read
	// to its end, which it tracks itself.
	closeErr := j.scratch.Response.CloseBodyStream()
	j.scratch.Response.Header.CopyTo(&j.primaryResp.Header)
	j.releaseScratch()
	t.j, t.r = nil, nil
	if reason != "" {
		j.skip(reason)
		return closeErr
	}
	j.engine.submit(j)
	return closeErr
}
