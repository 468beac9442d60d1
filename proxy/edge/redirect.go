package edge

import (
	"net"
	"strconv"

	"github.com/valyala/fasthttp"
)

// Redirect is the handler of tls.redirect_listen: every request is told to
// come back over HTTPS, to the same host and request target, on port (443
// and 0 leave the port out of the URL). GET and HEAD get 301, which every
// client follows; other methods 308, so a POST is resent as a POST with its
// body rather than turned into a GET. Nothing is forwarded: a client that
// ignores the redirect reaches no backend over plain HTTP. A request with
// no valid Host gets 400 naming the request's X-Request-Id, which the
// caller settles first (the front door's rules: one sane id).
func Redirect(port int) fasthttp.RequestHandler {
	suffix := ""
	if port != 0 && port != 443 {
		suffix = ":" + strconv.Itoa(port)
	}
	return func(ctx *fasthttp.RequestCtx) {
		host := string(ctx.Request.Header.Host())
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
			if len(h) > 0 && h[0] != '[' && containsColon(h) {
				host = "[" + h + "]" // an IPv6 literal loses its brackets in SplitHostPort
			}
		}
		if host == "" || !validHost(host) {
			ctx.Error("Bad Request: no valid Host to redirect to (request id "+
				string(ctx.Request.Header.Peek("X-Request-Id"))+")\n", fasthttp.StatusBadRequest)
			ctx.SetConnectionClose()
			return
		}
		target := ctx.Request.Header.RequestURI()
		if len(target) == 0 || target[0] != '/' {
			target = ctx.URI().RequestURI() // absolute-form: its path and query
		}
		code := fasthttp.StatusPermanentRedirect
		if ctx.IsGet() || ctx.IsHead() {
			code = fasthttp.StatusMovedPermanently
		}
		ctx.Response.Header.Set("Location", "https://"+host+suffix+string(target))
		ctx.Response.Header.Set("Connection", "close")
		ctx.SetStatusCode(code)
		ctx.SetConnectionClose()
	}
}

func containsColon(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return true
		}
	}
	return false
}

// validHost: letters, digits, '-', '.', and the brackets and colons of an
// IPv6 literal; nothing that could turn the Location into another URL.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '[', c == ']', c == ':':
		default:
			return false
		}
	}
	return true
}
