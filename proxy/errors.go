package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/legacy-passthrough"
)

// StatusClientClosedRequest is Nginx's 499: the client went away before the
// answer. It is only logged and counted; nobody is left to read it.
const StatusClientClosedRequest = 499

// StatusError asks the front door for a specific status. A handler that
// wants, say, a 404 with the standard short body returns one instead of
// writing the response itself.
type StatusError struct {
	Code int
	Err  error // the cause, for the log; may be nil
}

func (e *StatusError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("status %d", e.Code)
	}
	return fmt.Sprintf("status %d: %v", e.Code, e.Err)
}

func (e *StatusError) Unwrap() error { return e.Err }

// answered reports whether err says its handler wrote the response itself
// (an Answered() bool method, as ported/campaigns.ErrNoData has: the
// contract's JSON 503 with Retry-After). The front door keeps that answer
// instead of its standard error text, and still logs the error; a route
// with fallback still lets legacy answer instead (serveGo clears it).
func answered(err error) bool {
	var a interface{ Answered() bool }
	return errors.As(err, &a) && a.Answered()
}

// errBodyTooLarge is what the front door's own body limit returns; fasthttp's
// ErrBodyTooLarge stays in the chain so either check finds it.
var errBodyTooLarge = fmt.Errorf("request body over server.max_body_bytes: %w", fasthttp.ErrBodyTooLarge)

// timeouter is what a timeout error offers; not every one is a full
// net.Error (fasthttputil's pipe timeout lacks Temporary).
type timeouter interface{ Timeout() bool }

// StatusOf maps a handler's error to the status the client gets. It is the
// only place that does (as Traefik's ComputeStatusCode and oxy's error
// handler): a timeout is 504, a network failure on the way to the upstream
// 502, a client that left 499, anything else 500. A nil error is 200.
//
// The order matters: a StatusError is the handler's explicit choice; an
// upstream timeout is also a net.Error, so timeouts are checked before the
// generic network case.
func StatusOf(err error) int {
	var se *StatusError
	var ne net.Error
	var te timeouter
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &se) && se.Code >= 100 && se.Code <= 599:
		return se.Code
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, legacy.ErrUpstreamTimeout),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, fasthttp.ErrTimeout),
		errors.Is(err, fasthttp.ErrDialTimeout),
		errors.Is(err, fasthttp.ErrTLSHandshakeTimeout),
		errors.As(err, &te) && te.Timeout():
		return http.StatusGatewayTimeout
	case errors.Is(err, legacy.ErrUpstreamUnreachable),
		errors.Is(err, legacy.ErrBadUpstreamResponse):
		return http.StatusBadGateway
	case errors.Is(err, context.Canceled):
		// fasthttp cancels a RequestCtx only when the server shuts down;
		// handlers that watch their own client report it as Canceled too.
		return StatusClientClosedRequest
	case errors.As(err, &ne),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, fasthttp.ErrConnectionClosed),
		errors.Is(err, fasthttp.ErrNoFreeConns):
		return http.StatusBadGateway
	default:
		return http.StatusInternalServerError
	}
}
