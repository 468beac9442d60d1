// Package ping is the Go twin of the monolith's GET /api/v1/ping: the
// smallest ported route, used to prove a flip end to end and to measure the
// proxy's own cost.
package ping

import "github.com/valyala/fasthttp"

// Name is the handler's name in the route table's `handler:` field.
const Name = "ping"

// body is exactly what PHP answers but for the implementation field, which
// tells the two sides apart.
const body = `{"status":"ok","implementation":"go"}`

// Handler answers 200 with body as application/json. It has no state.
type Handler struct{}

// Serve writes the answer; it never fails.
func (Handler) Serve(ctx *fasthttp.RequestCtx) error {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.Header.SetContentType("application/json")
	ctx.Response.SetBodyString(body)
	return nil
}
