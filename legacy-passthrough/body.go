package legacy

import (
	"io"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/routes"
)

// requestBody is the client's request body on its way upstream. It keeps the
// first error reading it, so a failure on the client's side (gone mid-upload,
// or over the front door's body limit) is not blamed on the upstream.
type requestBody struct {
	r   io.Reader
	err error
}

func (b *requestBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// responseBody streams the upstream response body to the client after Serve
// has returned. The front door's server reads it, then calls CloseWithError
// whether the copy finished or failed; that hands the upstream connection
// back to the pool if the body was read to its end, or closes it otherwise,
// and releases the upstream response.
type responseBody struct {
	f    *Forwarder
	b    *backend
	resp *fasthttp.Response
	r    io.Reader
	n    int64
	want int64 // Content-Length, -1 when chunked or until close
	eof  bool
	err  error
	id   []byte // X-Request-Id, copied: the request is gone when this logs
	obs  routes.BodyObserver
}

// Interface guard: the front door's server reports the client-side error to
// CloseWithError.
var _ fasthttp.ReadCloserWithError = (*responseBody)(nil)

func (b *responseBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if n > 0 && b.obs != nil {
		b.obs.ObserveBody(p[:n])
	}
	if err == io.EOF {
		b.eof = true
	}
	if err != nil && err != io.EOF && b.err == nil {
		// The head is out, so no status can tell the client any more. The
		// error makes fasthttp's server stop and close the connection, and
		// the client sees a body shorter than announced (or no last chunk).
		b.err = err
	}
	return n, err
}

// CloseWithError ends the stream. err is the front door's error writing to
// the client, nil when the client got everything.
func (b *responseBody) CloseWithError(err error) error {
	f := b.f
	_ = b.resp.CloseBodyStream()
	fasthttp.ReleaseResponse(b.resp)
	if b.err != nil {
		// The head was counted a success; the backend failed after all.
		f.pool.observe(b.b, true)
	}
	b.b.outstanding.Add(-1)
	switch {
	case b.err != nil:
		f.metrics.body.Inc()
		f.log.Warn("upstream response body cut short",
			zap.ByteString("request_id", b.id), zap.Int64("bytes_sent", b.n), zap.Error(b.err))
	case err != nil:
		if ce := f.log.Check(zap.DebugLevel, "client left mid-body"); ce != nil {
			ce.Write(zap.ByteString("request_id", b.id), zap.Int64("bytes_sent", b.n), zap.Error(err))
		}
	}
	if obs := b.obs; obs != nil {
		// A sized body is copied with a limit, so its end may be reached
		// without reading EOF.
		obs.BodyDone(err == nil && b.err == nil && (b.eof || (b.want >= 0 && b.n == b.want)))
	}
	*b = responseBody{id: b.id[:0]}
	f.bodies.Put(b)
	return nil
}
