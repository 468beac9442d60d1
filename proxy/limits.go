package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/proxy/wirecheck"
)

// limits enforces the request-head and body limits that fasthttp does not.
// fasthttp bounds the whole head by its read buffer (ErrSmallBuffer, answered
// 431 by errorHandler) but has no per-line limit, and with StreamRequestBody
// it enforces no body limit at all: v1.78 hands the handler a stream for a
// Content-Length over MaxRequestBodySize and never counts a chunked body.
type limits struct {
	maxLine int   // request line and each header field line, without CRLF
	maxBody int64 // request body bytes
}

var (
	errRequestLineTooLong = errors.New("request line over server.max_header_line_bytes")
	errHeaderLineTooLong  = errors.New("header field line over server.max_header_line_bytes")
)

// check returns the error for a request whose head or declared body is over
// a limit, or nil. It reads only the parsed head, so it can run before any
// body byte is read (from the Expect path) or as the handler's first step.
func (l limits) check(h *fasthttp.RequestHeader) error {
	// Nginx answers 414 for a request line over one large_client_header_buffers
	// buffer and a 4xx for a longer header line; RFC 9110 §15.5.15 names 414
	// for the URI and RFC 6585 §5 names 431 for header fields.
	if len(h.Method())+1+len(h.RequestURI())+1+len(h.Protocol()) > l.maxLine {
		return &StatusError{Code: http.StatusRequestURITooLong, Err: errRequestLineTooLong}
	}
	// No line can be longer than the whole block, so most requests skip the scan.
	if raw := h.RawHeaders(); len(raw) > l.maxLine && longestLine(raw) > l.maxLine {
		return &StatusError{Code: http.StatusRequestHeaderFieldsTooLarge, Err: errHeaderLineTooLong}
	}
	if int64(h.ContentLength()) > l.maxBody {
		return errBodyTooLarge
	}
	return nil
}

// longestLine is the length of the longest CRLF- or LF-terminated line in b,
// without its terminator.
func longestLine(b []byte) int {
	longest := 0
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		longest = max(longest, len(line))
	}
	return longest
}

// clientBody sits between the client's streamed request body and whatever
// handler reads it. It enforces the body limit on a chunked body (failing
// the read that crosses it) and remembers the first error reading from the
// client. Handlers wrap body errors as they like; with these two facts the
// front door still answers 413 for an oversized body and blames a client
// that went silent or away (408, 499) rather than the upstream.
type clientBody struct {
	r       io.Reader
	left    int64
	read    int64
	tripped bool
	err     error // first read error other than io.EOF, tripping excluded
}

func (b *clientBody) Read(p []byte) (int, error) {
	if b.tripped {
		return 0, errBodyTooLarge
	}
	if b.err != nil {
		// Sticky: fasthttp's chunked reader reads on after an error, and
		// its client writes the bytes that came with an error and carries
		// on, so a body that broke mid-way would reach Nginx re-framed
		// ("2\r\nxx\n0\r\n\r\n" as "2\r\nxx\r\n0\r\n\r\n").
		return 0, b.err
	}
	// Ask for one byte more than allowed, so a body of exactly the limit ends
	// with io.EOF and one byte over trips.
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.r.Read(p)
	if int64(n) > b.left {
		n = int(b.left)
		b.tripped = true
		err = errBodyTooLarge
	} else if err != nil && err != io.EOF {
		b.err = err
		if n > 0 {
			err = nil // the bytes now, the error on the next read
		}
	}
	b.left -= int64(n)
	b.read += int64(n)
	return n, err
}

// status is the answer a failed request gets because of its body, or 0 when
// the body is not to blame.
func (b *clientBody) status() int {
	var te timeouter
	switch {
	case b.tripped:
		return http.StatusRequestEntityTooLarge
	case b.err == nil:
		return 0
	case errors.As(b.err, &te) && te.Timeout(), errors.Is(b.err, os.ErrDeadlineExceeded):
		// server.read_timeout ran out while the client was still sending
		// (Nginx's client_body_timeout answers 408 too).
		return http.StatusRequestTimeout
	case clientGone(b.err):
		return StatusClientClosedRequest
	default:
		// A body fasthttp or wirecheck could not read as HTTP/1.1 framing
		// (a broken chunk, a malformed or undeclared trailer).
		return http.StatusBadRequest
	}
}

// clientGone reports whether a body read failed because the client closed
// or reset its connection before the body ended.
func clientGone(err error) bool {
	var syntax *wirecheck.Error
	var broken fasthttp.ErrBrokenChunk
	if errors.As(err, &syntax) || errors.As(err, &broken) {
		// ErrBrokenChunk does not say whether the bytes were wrong or ended
		// early (fasthttp wraps an EOF in it too, with no Unwrap); it is
		// answered 400, which a client that left never reads.
		return false
	}
	var op *net.OpError
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.As(err, &op)
}

// watchBody puts a clientBody in front of the request's streamed body and
// returns it, or nil when there is no body. A declared length was checked
// against max up front; the limit here is what stops a chunked body.
func watchBody(req *fasthttp.Request, max int64) *clientBody {
	n := req.Header.ContentLength()
	if n == 0 || n < -1 || !req.IsBodyStream() {
		return nil
	}
	b := &clientBody{r: req.BodyStream(), left: max}
	// SetBodyStream drops the request's reference to the original stream but
	// the server keeps its own and drains it after the handler, so the
	// connection stays in sync whatever the handler reads. The size is kept:
	// -1 stays chunked.
	req.SetBodyStream(b, n)
	return b
}
