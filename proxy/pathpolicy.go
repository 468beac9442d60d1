package proxy

import (
	"net/http"

	"github.com/strangler-proxy/strangler/internal/ascii"
)

// Path policy: reject, never normalise.
//
// Two parties read a request's path. The route table matches fasthttp's
// ctx.Path(): percent-decoded, dot segments removed, slashes merged. The
// monolith routes on REQUEST_URI, which the forwarder sends byte for byte
// and index.php reads with rawurldecode() only: no dot-segment removal, no
// slash merging (Nginx normalises its own $uri, but PHP never sees it). So
// "/api/v1/./ping" matches a Go route while PHP would see another path, and
// "/api/v1/ping%0A" matches no route while PHP's "#^/api/v1/ping$#" takes it
// ('$' matches before a final newline), handing a Go-owned route to PHP.
//
// Normalising the target before forwarding would change what legacy pages
// receive (the forwarder promises the raw target), so the front door
// instead refuses, with 400, every request whose path the two sides could
// read differently:
//   - dot segments, plain or encoded: "/.", "/..", "/%2e", "/.%2E"...;
//   - empty segments: "//", also when made of "%2F";
//   - a backslash, raw or as %5C (some stacks read it as '/');
//   - control characters, raw or encoded: %00 (NUL) to %1F and %7F, which
//     includes the "%0A" above;
//   - '#' anywhere in the target (a fragment is never sent; fasthttp would
//     cut it off, PHP would not);
//   - and, as the rule the others serve, any path whose rawurldecode() is
//     not byte for byte the path the route table matched.
//
// What passes is read the same way by both: percent-encoded bytes are
// decoded once on both sides ("/api/v1/%70ing" and "/api%2Fv1/ping" are
// /api/v1/ping to Go and to PHP, so both would route them to the same
// handler); ';' is an ordinary character ("/api/v1/ping;x" is not
// /api/v1/ping on either side: there are no path parameters); matching is
// case-sensitive on both ("/API/v1/ping" is legacy's 404). The query string
// is not looked at beyond '#': it reaches PHP exactly as sent.

// checkPath applies the policy to the request target as received and the
// path the route table matches (ctx.Path()).
func checkPath(target, routed []byte) error {
	raw := pathOf(target)
	if len(raw) == 0 {
		raw = []byte{'/'} // "http://host" or "http://host?q": path "/" (RFC 9112 §3.2.1)
	}
	for _, c := range target {
		if c == '#' {
			return refuse(http.StatusBadRequest, "fragment in the request target")
		}
	}
	var (
		j        int  // bytes of routed matched so far
		segLen   int  // decoded bytes in the current segment
		dots     int  // how many of them are '.'
		afterSep bool // the previous decoded byte was '/'
	)
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '\\' {
			return refuse(http.StatusBadRequest, "backslash in the path")
		}
		// PHP's rawurldecode: "%" and two hex digits is one byte; any other
		// '%' stays as it is. fasthttp decodes the path the same way.
		if c == '%' && i+2 < len(raw) && ascii.IsHex(raw[i+1]) && ascii.IsHex(raw[i+2]) {
			c = ascii.Unhex(raw[i+1])<<4 | ascii.Unhex(raw[i+2])
			i += 2
			if c == '\\' {
				return refuse(http.StatusBadRequest, "encoded backslash in the path")
			}
		}
		if c < ' ' || c == 0x7f {
			return refuse(http.StatusBadRequest, "control character in the path")
		}
		if c == '/' {
			if afterSep {
				return refuse(http.StatusBadRequest, "empty path segment")
			}
			if segLen > 0 && segLen == dots && dots <= 2 {
				return refuse(http.StatusBadRequest, "dot segment in the path")
			}
			segLen, dots, afterSep = 0, 0, true
		} else {
			segLen++
			if c == '.' {
				dots++
			}
			afterSep = false
		}
		if j >= len(routed) || routed[j] != c {
			return refuse(http.StatusBadRequest, "path reads differently to the route table and to PHP")
		}
		j++
	}
	if segLen > 0 && segLen == dots && dots <= 2 {
		return refuse(http.StatusBadRequest, "dot segment in the path")
	}
	if j != len(routed) {
		return refuse(http.StatusBadRequest, "path reads differently to the route table and to PHP")
	}
	return nil
}

// pathOf is the path of a request target: origin-form up to '?', or what
// follows an absolute-form target's authority.
func pathOf(target []byte) []byte {
	if rest, ok := cutScheme(target); ok {
		target = rest
		for i, c := range rest {
			if c == '/' || c == '?' || c == '#' {
				target = rest[i:]
				break
			}
			if i == len(rest)-1 {
				target = nil
			}
		}
	}
	for i, c := range target {
		if c == '?' || c == '#' {
			return target[:i]
		}
	}
	return target
}
