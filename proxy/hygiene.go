package proxy

import (
	"bytes"
	"errors"
	"net/http"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/internal/ascii"
)

// Request hygiene: the front door is the monolith's security boundary, and
// whatever it lets through reaches PHP's $_SERVER as PHP will trust it. So a
// request whose message framing, header syntax, Host or path can be read
// more than one way is refused here, before routing, rather than forwarded
// for Nginx (or a proxy in front of this one) to read differently.
//
// fasthttp v1.78's own parser already refuses duplicate or non-numeric
// Content-Length, two Transfer-Encoding fields, Transfer-Encoding on
// HTTP/1.0, unknown codings, two Host fields, a missing Host on HTTP/1.1,
// control characters in names and values, whitespace before the colon and
// a bare LF in a chunk-size line (400, from parseError or the body reader).
// It accepts, and screen refuses:
//   - Content-Length together with Transfer-Encoding (it lets TE win);
//   - "Transfer-Encoding: identity" (removed from HTTP/1.1);
//   - obs-fold continuation lines (it folds them);
//   - field lines ended by a bare LF;
//   - field names that are not tokens ("X Forwarded For: ...");
//   - protocol versions other than HTTP/1.0 and HTTP/1.1;
//   - Transfer_Encoding and Content_Length: Nginx drops names with an
//     underscore, but a hop that folds "_" into "-" (Nginx with
//     underscores_in_headers, several CGI bridges) would read them as
//     framing, so a request carrying one can be read two ways (400);
//   - an Expect other than 100-continue (417, RFC 9110 §10.1.1): fasthttp
//     ignores it, and forwarding it would let the monolith answer a
//     request the client meant to be conditional on it;
//   - Host and absolute-target problems (host.go) and ambiguous paths
//     (pathpolicy.go).
//
// What it cannot see in the parsed head (bare-LF heads fasthttp waits on,
// chunk and trailer syntax) is refused as it is read, by proxy/wirecheck.
//
// Every refusal closes the connection: once the head is in doubt, so is
// where the next request starts.

// hygieneError is a request screen refused; reason is for the log.
type hygieneError struct{ reason string }

func (e *hygieneError) Error() string { return "request refused: " + e.reason }

// errHygiene is what every screen refusal wraps.
var errHygiene = errors.New("request refused")

func (e *hygieneError) Unwrap() error { return errHygiene }

func refuse(code int, reason string) error {
	return &StatusError{Code: code, Err: &hygieneError{reason: reason}}
}

// screen checks the request head in ctx and returns nil, or a *StatusError
// (400, 501 or 505) after marking the connection for closing. It reads only
// the parsed head and fasthttp's copy of the raw field lines, so it runs
// before any body byte is read.
func screen(ctx *fasthttp.RequestCtx) error {
	err := screenHead(ctx)
	if err != nil {
		ctx.SetConnectionClose()
	}
	return err
}

func screenHead(ctx *fasthttp.RequestCtx) error {
	h := &ctx.Request.Header
	http10 := false
	switch string(h.Protocol()) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		http10 = true
	default:
		// RFC 9110 §15.6.6; the front door speaks HTTP/1.x only.
		return refuse(http.StatusHTTPVersionNotSupported, "protocol version")
	}
	for _, c := range h.Method() {
		if !ascii.IsTokenChar(c) {
			return refuse(http.StatusBadRequest, "method is not a token")
		}
	}
	f, err := scanFields(h.RawHeaders())
	if err != nil {
		return err
	}
	if err := checkFraming(f, http10); err != nil {
		return err
	}
	target := h.RequestURI()
	if err := checkHost(h.Host(), f.hosts, target, http10); err != nil {
		return err
	}
	if err := checkPath(target, ctx.Path()); err != nil {
		return err
	}
	if f.unknownExpect {
		return refuse(http.StatusExpectationFailed, "expectation other than 100-continue")
	}
	return nil
}

// fieldSummary is what scanFields learns about the framing fields.
type fieldSummary struct {
	lengths, codings, hosts int
	coding                  []byte // the Transfer-Encoding value
	unknownExpect           bool   // an Expect field other than 100-continue
}

// scanFields checks every field line of the raw head (RFC 9112 §5): CRLF
// line ends, no obs-fold, a token name right before the colon, no control
// character but HTAB in the value. fasthttp keeps these bytes as they came
// (RawHeaders), ending with the empty line.
func scanFields(raw []byte) (fieldSummary, error) {
	var f fieldSummary
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		if i < 0 {
			return f, refuse(http.StatusBadRequest, "unterminated field line")
		}
		if i == 0 || raw[i-1] != '\r' {
			// RFC 9112 §2.2 lets a recipient take a bare LF as a line end;
			// a proxy that does, in front of one that does not, is how
			// requests get smuggled.
			return f, refuse(http.StatusBadRequest, "field line ended by a bare LF")
		}
		line := raw[:i-1]
		raw = raw[i+1:]
		if len(line) == 0 {
			break // the empty line that ends the head
		}
		if line[0] == ' ' || line[0] == '\t' {
			// §5.2: a server must reject obs-fold with 400 (or replace it,
			// which would change what the field means to the monolith).
			return f, refuse(http.StatusBadRequest, "obs-fold")
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return f, refuse(http.StatusBadRequest, "field line without a name")
		}
		name := line[:colon]
		for _, c := range name {
			if !ascii.IsTokenChar(c) {
				return f, refuse(http.StatusBadRequest, "field name is not a token")
			}
		}
		value := bytes.Trim(line[colon+1:], " \t")
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return f, refuse(http.StatusBadRequest, "control character in a field value")
			}
		}
		switch {
		case ascii.EqualFold(name, "Content-Length"):
			f.lengths++
		case ascii.EqualFold(name, "Transfer-Encoding"):
			f.codings++
			f.coding = value
		case ascii.EqualFold(name, "Host"):
			f.hosts++
		case ascii.EqualFold(name, "Transfer_Encoding"), ascii.EqualFold(name, "Content_Length"):
			return f, refuse(http.StatusBadRequest, "framing field spelt with an underscore")
		case ascii.EqualFold(name, "Expect"):
			f.unknownExpect = f.unknownExpect || !ascii.EqualFold(value, "100-continue")
		}
	}
	return f, nil
}

// checkFraming applies RFC 9112 §6 to the framing fields. A request that
// carries both Content-Length and Transfer-Encoding is refused rather than
// re-framed: §6.3 allows either, and a refusal leaves no doubt about what
// reached the monolith.
func checkFraming(f fieldSummary, http10 bool) error {
	switch {
	case f.lengths > 1:
		return refuse(http.StatusBadRequest, "more than one Content-Length")
	case f.codings > 1:
		return refuse(http.StatusBadRequest, "more than one Transfer-Encoding")
	case f.codings == 0:
		return nil
	case f.lengths > 0:
		return refuse(http.StatusBadRequest, "both Content-Length and Transfer-Encoding")
	case http10:
		// §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
		return refuse(http.StatusBadRequest, "Transfer-Encoding on HTTP/1.0")
	}
	// transfer-coding names are case-insensitive (§7), so "Chunked" is
	// chunked; the list is read as RFC 9110 §5.6.1 says (empty elements
	// and OWS around commas ignored).
	var last []byte
	others := false
	for v := f.coding; len(v) > 0; {
		var c []byte
		c, v, _ = bytes.Cut(v, []byte{','})
		c = bytes.Trim(c, " \t")
		if len(c) == 0 {
			continue
		}
		if last != nil {
			if ascii.EqualFold(last, "chunked") {
				// §6.3: chunked must be the final coding, applied once.
				return refuse(http.StatusBadRequest, "chunked is not the final transfer coding")
			}
			others = true
		}
		last = c
	}
	switch {
	case !ascii.EqualFold(last, "chunked"):
		// §6.3: without chunked last, the length cannot be determined
		// ("identity", "xchunked", "chunked, identity" land here).
		return refuse(http.StatusBadRequest, "chunked is not the final transfer coding")
	case others:
		// §6.1: a coding the server does not understand (gzip, chunked).
		return refuse(http.StatusNotImplemented, "transfer coding other than chunked")
	}
	return nil
}
