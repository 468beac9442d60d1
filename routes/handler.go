package routes

import "github.com/valyala/fasthttp"

// Handler is the one handler shape shared by ported Go handlers, the legacy
// forwarder and shadow execution. A handler writes its response into ctx and
// returns nil, or returns an error and leaves the response to the caller: the
// front door turns the error into a status, a short body and one log line
// (proxy.StatusOf), so an error is handled exactly once.
type Handler interface {
	Serve(ctx *fasthttp.RequestCtx) error
}

// BodyObserver sees a response body on its way to the client: the shadow
// engine keeps its copy of a sampled legacy answer this way, without a
// second stream or a second request context in the client's path. The
// legacy forwarder reports to it (ServeObserved).
type BodyObserver interface {
	// ObserveBody gets each piece of the body as it is read for the
	// client. p is only valid during the call.
	ObserveBody(p []byte)
	// BodyDone is called once, when the front door closes the stream;
	// complete says the client got the whole body.
	BodyDone(complete bool)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx *fasthttp.RequestCtx) error

// Serve calls f(ctx).
func (f HandlerFunc) Serve(ctx *fasthttp.RequestCtx) error { return f(ctx) }

// Registry names the ported handlers a route may refer to through its
// `handler` field. main builds it explicitly (no init() registration), once
// with live dependencies and once with shadow dependencies.
type Registry map[string]Handler
