package legacy

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/internal/ascii"
)

// Header names the forwarder writes itself. Host must be spelled exactly so:
// in raw-header mode fasthttp's Request.Write looks it up case-sensitively.
const (
	hHost           = "Host"
	hXForwardedFor  = "X-Forwarded-For"
	hXForwardedProt = "X-Forwarded-Proto"
	hXForwardedHost = "X-Forwarded-Host"
)

// field is one header line of the request being served; it points into the
// RequestCtx and is only valid until the handler returns.
type field struct{ k, v []byte }

// scratch is one exchange's working memory, pooled by the Forwarder.
type scratch struct {
	parsed []field  // the served request's non-special fields as they stand now
	tokens [][]byte // field names listed in Connection headers
	xff    []byte   // the trusted X-Forwarded-For chain, joined
	id     []byte   // X-Request-Id, for a mid-body error log line
	host   []byte   // the Host sent upstream: see requestTarget

	sawHost, sawProto, sawFwdHost bool

	head  []byte // the response head, serialized for re-parsing
	extra []byte // fields the forwarder adds to the response head (the sticky cookie)
	rd    bytes.Reader
	br    *bufio.Reader

	body requestBody
}

func (s *scratch) reset() {
	clear(s.parsed) // drop the references into the finished request
	clear(s.tokens)
	s.parsed, s.tokens = s.parsed[:0], s.tokens[:0]
	s.xff, s.id, s.head, s.host, s.extra = s.xff[:0], nil, s.head[:0], nil, s.extra[:0]
	s.sawHost, s.sawProto, s.sawFwdHost = false, false, false
	s.rd.Reset(nil)
	s.body = requestBody{}
}

// peer is what the front door knows about the client connection.
type peer struct {
	addr    netip.Addr
	trusted bool // addr is in Config.TrustedProxies
	tls     bool
}

// copyRequestHeader fills out, a header in raw mode (no normalising, no
// special-header handling, so fields keep their case and order), from in,
// the header being served.
//
// The order, spelling and bytes come from in's raw head (AllInOrder): fasthttp
// keeps Host, Content-Type, User-Agent and Cookie apart from the other
// fields and would re-serialize cookies. The values come from in as it
// stands now, so that what the front door changed (it sets X-Request-Id)
// is what goes upstream: the non-special raw fields are walked alongside
// the parsed ones, which fasthttp keeps in arrival order, a field the front
// door dropped is skipped, one it replaced takes the new value, and ones it
// added follow the client's.
//
// Hop-by-hop fields and those a Connection header names are stripped (RFC
// 9110 §7.6.1); X-Forwarded-* and friends pass only from trusted proxies;
// then the forwarder adds its own X-Forwarded-For/-Proto/-Host, last, so no
// client Connection header can remove them. host is the Host to send (see
// requestTarget); nil keeps the client's.
func (s *scratch) copyRequestHeader(out, in *fasthttp.RequestHeader, p peer, chunked bool, host []byte, fallbackHost string) {
	s.host = host
	if s.host == nil {
		s.host = in.Host()
	}
	raw := len(in.RawHeaders()) > 0
	for k, v := range in.All() {
		if ascii.EqualFold(k, "Connection") {
			s.tokens = appendTokens(s.tokens, v)
		}
		if raw && !specialRequestField(k) && !hopByHop(k) {
			s.parsed = append(s.parsed, field{k, v})
		}
	}
	if raw {
		j := 0
		for k, v := range in.AllInOrder() {
			switch {
			case hopByHop(k):
			case specialRequestField(k):
				s.add(out, k, v, p, chunked)
			case j < len(s.parsed) && ascii.EqualFoldBytes(s.parsed[j].k, k):
				s.add(out, k, s.parsed[j].v, p, chunked)
				j++
			}
		}
		for ; j < len(s.parsed); j++ {
			s.add(out, s.parsed[j].k, s.parsed[j].v, p, chunked)
		}
	} else {
		// A request built in code (no raw head): its parsed fields are all
		// there is.
		for k, v := range in.All() {
			if !hopByHop(k) {
				s.add(out, k, v, p, chunked)
			}
		}
	}

	// X-Forwarded-For: the trusted chain, then the peer (the one hop this
	// proxy vouches for).
	if len(s.xff) > 0 {
		s.xff = append(s.xff, ", "...)
	}
	if p.addr.IsValid() {
		s.xff = p.addr.AppendTo(s.xff)
	} else {
		s.xff = append(s.xff, "unknown"...)
	}
	out.AddBytesV(hXForwardedFor, s.xff)
	if !s.sawProto {
		if p.tls {
			out.Add(hXForwardedProt, "https")
		} else {
			out.Add(hXForwardedProt, "http")
		}
	}
	if !s.sawFwdHost && len(s.host) > 0 {
		out.AddBytesV(hXForwardedHost, s.host)
	}
	if !s.sawHost {
		// HTTP/1.0 clients may omit Host; HTTP/1.1 to Nginx requires one.
		if len(s.host) > 0 {
			out.AddBytesV(hHost, s.host)
		} else {
			out.Add(hHost, fallbackHost)
		}
	}
}

// add copies one client field to out, or drops it.
func (s *scratch) add(out *fasthttp.RequestHeader, k, v []byte, p peer, chunked bool) {
	if s.nominated(k) && !ascii.EqualFold(k, hHost) {
		// Host is never a connection option (RFC 9110 §7.6.1 forbids naming
		// end-to-end fields); dropping it would send the request to the
		// wrong virtual host.
		return
	}
	if kind, underscore := forwardingKind(k); kind != notForwarding {
		// With underscores_in_headers on, Nginx hands X_Forwarded_For to PHP
		// as HTTP_X_FORWARDED_FOR, the same variable as the real header: a
		// spoofing path whoever the peer is.
		if underscore || !p.trusted {
			return
		}
		switch kind {
		case fwdFor:
			if len(v) > 0 {
				if len(s.xff) > 0 {
					s.xff = append(s.xff, ", "...)
				}
				s.xff = append(s.xff, v...)
			}
			return // written once, joined, after every field is seen
		case fwdProto:
			s.sawProto = true
		case fwdHost:
			s.sawFwdHost = true
		}
		out.AddBytesKV(k, v)
		return
	}
	switch {
	case ascii.EqualFold(k, hHost):
		if s.sawHost {
			return // fasthttp's server refuses a second Host; be as strict
		}
		s.sawHost = true
		out.AddBytesV(hHost, s.host) // the client's, or an absolute target's authority
	case ascii.EqualFold(k, "Content-Length"):
		// A chunked body may arrive with a Content-Length too (fasthttp's
		// server lets Transfer-Encoding win, RFC 9112 §6.3); the upstream
		// request is framed by what the body really is.
		if !chunked {
			out.AddBytesKV(k, v)
		}
	default:
		if ascii.EqualFold(k, "X-Request-Id") {
			s.id = v
		}
		out.AddBytesKV(k, v)
	}
}

// nominated reports whether a Connection header named k.
func (s *scratch) nominated(k []byte) bool {
	for _, t := range s.tokens {
		if ascii.EqualFoldBytes(t, k) {
			return true
		}
	}
	return false
}

// copyResponseHeader puts src's status line and end-to-end fields into dst,
// the header the front door will write. Hop-by-hop fields and those src's
// Connection headers name are left out (RFC 9110 §7.6.1); Content-Length
// only when keepLength (a bodiless answer: HEAD, 204, 304), since a streamed
// body is framed by the front door.
//
// The copy goes through fasthttp's response parser on purpose: it is the
// only way into a ResponseHeader that keeps a Date field (Add and Set drop
// Date, "managed automatically"), and it keeps Set-Cookie values byte for
// byte and other names in their case. fasthttp still writes Content-Type,
// Content-Encoding, Server and Set-Cookie with canonical names, first.
func (s *scratch) copyResponseHeader(dst, src *fasthttp.ResponseHeader, keepLength bool, bufSize int) error {
	// The request's Connection options say nothing about the response.
	clear(s.tokens)
	s.tokens = s.tokens[:0]
	for k, v := range src.All() {
		if ascii.EqualFold(k, "Connection") {
			s.tokens = appendTokens(s.tokens, v)
		}
	}
	b := append(s.head[:0], "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(src.StatusCode()), 10)
	if m := src.StatusMessage(); len(m) > 0 {
		b = append(b, ' ')
		b = append(b, m...)
	}
	b = append(b, "\r\n"...)
	for k, v := range src.All() {
		if hopByHop(k) || s.nominated(k) || (!keepLength && ascii.EqualFold(k, "Content-Length")) {
			continue
		}
		b = append(b, k...)
		b = append(b, ": "...)
		b = append(b, v...)
		b = append(b, "\r\n"...)
	}
	b = append(b, s.extra...)
	b = append(b, "\r\n"...)
	s.head = b

	s.rd.Reset(b)
	br := s.br
	if br == nil || br.Size() < len(b) {
		// Only a head longer than the pooled reader's buffer gets here.
		br = bufio.NewReaderSize(&s.rd, max(len(b), bufSize))
		s.br = br
	} else {
		br.Reset(&s.rd)
	}
	if err := dst.Read(br); err != nil {
		return fmt.Errorf("copy response head: %w", err)
	}
	// A head without Content-Length (the body's length is set after this)
	// parses as "read until close", which marks the connection for closing.
	// Whether the client connection stays open is the front door's call.
	dst.ResetConnectionClose()
	return nil
}

// specialRequestField: the fields fasthttp's request header keeps apart from
// the others (Cookie once collected).
func specialRequestField(k []byte) bool {
	return ascii.EqualFold(k, hHost) || ascii.EqualFold(k, "Content-Length") || ascii.EqualFold(k, "Content-Type") ||
		ascii.EqualFold(k, "User-Agent") || ascii.EqualFold(k, "Cookie")
}

// hopByHop: RFC 9110 §7.6.1's fields, Proxy-Connection and Keep-Alive which
// old clients still send, Proxy-Authorization and Proxy-Authenticate which
// are meant for the proxy, and Upgrade (a websocket handshake puts it
// back, see tunnel.go). Transfer-Encoding is re-done on each hop.
func hopByHop(k []byte) bool {
	switch len(k) {
	case 2:
		return ascii.EqualFold(k, "TE")
	case 7:
		return ascii.EqualFold(k, "Trailer") || ascii.EqualFold(k, "Upgrade")
	case 10:
		return ascii.EqualFold(k, "Connection") || ascii.EqualFold(k, "Keep-Alive")
	case 16:
		return ascii.EqualFold(k, "Proxy-Connection")
	case 17:
		return ascii.EqualFold(k, "Transfer-Encoding")
	case 18:
		return ascii.EqualFold(k, "Proxy-Authenticate")
	case 19:
		return ascii.EqualFold(k, "Proxy-Authorization")
	}
	return false
}

type fwdKind uint8

const (
	notForwarding fwdKind = iota
	fwdFor
	fwdProto
	fwdHost
	fwdOther // Forwarded, X-Real-IP, Client-IP...: see forwardingKind
)

// forwardingKind classifies the fields that describe the client as some
// proxy saw it: PHP frameworks believe them once they trust the peer, and
// the monolith's peer is this proxy. underscore reports a spelling with '_'
// for '-'.
func forwardingKind(k []byte) (kind fwdKind, underscore bool) {
	if len(k) < len("Client-IP") {
		return notForwarding, false
	}
	underscore = bytes.IndexByte(k, '_') >= 0
	switch {
	case equalFoldDash(k, hXForwardedFor):
		return fwdFor, underscore
	case equalFoldDash(k, hXForwardedProt):
		return fwdProto, underscore
	case equalFoldDash(k, hXForwardedHost):
		return fwdHost, underscore
	// The other fields that describe the client or the original request as
	// some proxy saw it. PHP code believes them once it trusts its peer:
	// "real IP" helpers try HTTP_CLIENT_IP, HTTP_X_REAL_IP,
	// HTTP_TRUE_CLIENT_IP...; frameworks take the scheme from X-Forwarded-Ssl
	// or Front-End-Https and the path from X-Original-URL or X-Rewrite-URL
	// (Symfony's CVE-2018-14773). From an untrusted peer each is a spoof.
	case equalFoldDash(k, "Forwarded"),
		equalFoldDash(k, "X-Forwarded-Port"),
		equalFoldDash(k, "X-Forwarded-Prefix"),
		equalFoldDash(k, "X-Forwarded-Server"),
		equalFoldDash(k, "X-Forwarded-Ssl"),
		equalFoldDash(k, "X-Forwarded-Scheme"),
		equalFoldDash(k, "X-Url-Scheme"),
		equalFoldDash(k, "Front-End-Https"),
		equalFoldDash(k, "X-Real-IP"),
		equalFoldDash(k, "X-Client-IP"),
		equalFoldDash(k, "Client-IP"),
		equalFoldDash(k, "True-Client-IP"),
		equalFoldDash(k, "X-Cluster-Client-IP"),
		// CDNs' own client-address fields (Cloudflare, Fastly).
		equalFoldDash(k, "CF-Connecting-IP"),
		equalFoldDash(k, "Fastly-Client-IP"),
		equalFoldDash(k, "X-Original-URL"),
		equalFoldDash(k, "X-Rewrite-URL"),
		equalFoldDash(k, "X-Original-Host"):
		return fwdOther, underscore
	}
	return notForwarding, false
}

// appendTokens appends the comma-separated tokens of a Connection value.
func appendTokens(dst [][]byte, v []byte) [][]byte {
	for len(v) > 0 {
		var t []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			t, v = v[:i], v[i+1:]
		} else {
			t, v = v, nil
		}
		if t = bytes.Trim(t, " \t"); len(t) > 0 {
			dst = append(dst, t)
		}
	}
	return dst
}

// equalFoldDash is equalFold with '_' in b read as '-'.
func equalFoldDash(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if c == '_' {
			c = '-'
		}
		if ascii.Lower(c) != ascii.Lower(s[i]) {
			return false
		}
	}
	return true
}
