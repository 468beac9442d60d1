package proxy

import (
	"bytes"
	"net/http"
	"net/netip"

	"github.com/strangler-proxy/strangler/internal/ascii"
)

// Host policy. The route table matches on the request's host: for an
// absolute-form target ("GET http://a.example/p") the target's authority,
// which RFC 9112 §3.2.2 says a server must use instead of the Host field;
// otherwise the Host field. The legacy forwarder sends that same host to
// Nginx as Host (and the target in origin form), so the host routing used
// is the HTTP_HOST PHP sees. What is refused, 400:
//   - userinfo ("user:pw@host") in Host or in an absolute target: a client
//     library may turn it into an Authorization header, and PHP would see
//     credentials in HTTP_HOST;
//   - a Host field missing on HTTP/1.1, empty, or present twice (RFC 9112
//     §3.2; fasthttp refuses the last two itself);
//   - anything but a host name of letters, digits, '-', '.', '_', an IPv4
//     address or a bracketed IPv6 address (no zone), optionally followed by
//     ':' and a port 1..65535: no percent-encoding, no sub-delims, no
//     spaces, no path or query characters;
//   - an absolute target with a scheme other than http or https.

// checkHost applies the policy to the Host field value (hosts is how many
// Host lines the head had) and to target's authority if it is absolute.
func checkHost(host []byte, hosts int, target []byte, http10 bool) error {
	switch {
	case hosts > 1:
		return refuse(http.StatusBadRequest, "more than one Host")
	case hosts == 0 && !http10:
		return refuse(http.StatusBadRequest, "no Host on HTTP/1.1")
	case hosts == 1 && !validHostPort(host):
		if bytes.IndexByte(host, '@') >= 0 {
			return refuse(http.StatusBadRequest, "userinfo in Host")
		}
		return refuse(http.StatusBadRequest, "malformed Host")
	}
	if len(target) == 0 || target[0] == '/' {
		return nil
	}
	rest, ok := cutScheme(target)
	if !ok {
		return refuse(http.StatusBadRequest, "request target is neither origin- nor http(s) absolute-form")
	}
	authority := rest
	if i := bytes.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	if bytes.IndexByte(authority, '@') >= 0 {
		return refuse(http.StatusBadRequest, "userinfo in the request target")
	}
	if !validHostPort(authority) {
		return refuse(http.StatusBadRequest, "malformed authority in the request target")
	}
	return nil
}

// cutScheme returns target after "http://" or "https://" (any case), and
// whether it had one.
func cutScheme(target []byte) ([]byte, bool) {
	for _, scheme := range []string{"http://", "https://"} {
		if len(target) >= len(scheme) && ascii.EqualFold(target[:len(scheme)], scheme) {
			return target[len(scheme):], true
		}
	}
	return target, false
}

// validHostPort reports whether b is host [":" port] as the policy above
// allows.
func validHostPort(b []byte) bool {
	host, port := b, []byte(nil)
	if len(b) > 0 && b[0] == '[' {
		end := bytes.IndexByte(b, ']')
		if end < 0 {
			return false
		}
		a, err := netip.ParseAddr(string(b[1:end]))
		if err != nil || !a.Is6() || a.Zone() != "" {
			return false
		}
		host, port = nil, b[end+1:]
		if len(port) > 0 {
			if port[0] != ':' {
				return false
			}
			return validPort(port[1:])
		}
		return true
	}
	if i := bytes.IndexByte(b, ':'); i >= 0 {
		host, port = b[:i], b[i+1:]
		if !validPort(port) {
			return false
		}
	}
	if len(host) == 0 || len(host) > 255 {
		return false
	}
	for _, c := range host {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_':
		default:
			return false
		}
	}
	return true
}

// validPort: 1..65535 in at most five digits.
func validPort(p []byte) bool {
	if len(p) == 0 || len(p) > 5 {
		return false
	}
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n >= 1 && n <= 65535
}
