package compare

import (
	"bytes"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Redacted replaces a secret wherever this package shows a value.
const Redacted = "[redacted]"

// secretKeyParts mark a JSON key, query parameter or header name as
// holding a secret or personal data when it contains one of them,
// case-insensitively. Substrings on purpose: access_token, user_email,
// card_number all match; the cost of a false positive is a hidden value in
// a report, the cost of a false negative is a leak.
var secretKeyParts = [...]string{
	"password", "passwd", "secret", "token", "email", "card", "cvv", "cvc",
	"iban", "ssn", "authorization", "apikey", "api_key", "api-key",
	"session", "cookie", "credential", "private", "signature",
}

func secretKey(k string) bool { return secretParts.in(k) }

// secretParts and credentialParts' indexes: every difference, rendered
// value and redacted member asks, so the scan looks at each byte once.
var (
	secretParts     = newPartIndex(secretKeyParts[:])
	credentialIndex = newPartIndex(credentialParts[:])
)

// partIndex finds lower-case parts in a string, case-insensitively,
// trying at each byte only the parts that start with it: most bytes of a
// key start none.
type partIndex [256][]string

func newPartIndex(parts []string) *partIndex {
	var x partIndex
	for _, p := range parts {
		x[p[0]] = append(x[p[0]], p)
		if c := p[0]; c >= 'a' && c <= 'z' {
			x[c-'a'+'A'] = append(x[c-'a'+'A'], p)
		}
	}
	return &x
}

// in reports whether s contains one of x's parts, ASCII case folded.
func (x *partIndex) in(s string) bool {
	for i := 0; i < len(s); i++ {
		for _, p := range x[s[i]] {
			if len(s)-i >= len(p) && hasPrefixFold(s[i+1:], p[1:]) {
				return true
			}
		}
	}
	return false
}

// hasPrefixFold is strings.HasPrefix with ASCII case folding; prefix is
// lower-case.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for j := 0; j < len(prefix); j++ {
		c := s[j]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[j] {
			return false
		}
	}
	return true
}

// secretHeader reports headers whose values are credentials.
func secretHeader(lowerName string) bool {
	switch lowerName {
	case "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key":
		return true
	}
	return secretKey(lowerName) || containsFold(lowerName, "auth")
}

// secretPath reports a body path naming a secret key anywhere along it.
func secretPath(p string) bool {
	if !strings.HasPrefix(p, rootBody) && !strings.HasPrefix(p, RootPublished) {
		return false
	}
	// Most paths name no secret at all: only parse those that might.
	if !secretKey(p) {
		return false
	}
	return pathKeys(p, secretKey)
}

// containsFold is strings.Contains with ASCII case folding; sub is
// lower-case.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if hasPrefixFold(s[i:], sub) {
			return true
		}
	}
	return false
}

// RedactHeaders returns a copy of h with secret values replaced. A
// Set-Cookie keeps its cookie name and attributes.
func RedactHeaders(h [][2]string) [][2]string {
	out := make([][2]string, len(h))
	for i, kv := range h {
		out[i] = kv
		lower := strings.ToLower(kv[0])
		switch {
		case lower == "set-cookie":
			name, rest, _ := strings.Cut(kv[1], "=")
			_, attrs, hasAttrs := strings.Cut(rest, ";")
			v := strings.TrimSpace(name) + "=" + Redacted
			if hasAttrs {
				v += ";" + attrs
			}
			out[i][1] = v
		case lower == "location":
			out[i][1] = RedactURI(kv[1])
		case secretHeader(lower):
			out[i][1] = Redacted
		}
	}
	return out
}

var (
	emailRE  = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)
	bearerRE = regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]+`)
	// key=value, key: value and "key": "value" forms for secret-looking keys.
	secretKVRE = regexp.MustCompile(`(?i)([A-Za-z0-9_\-]*(?:password|passwd|secret|token|api[_-]?key|authorization|session|card|cvv|iban)[A-Za-z0-9_\-]*)("?\s*[:=]\s*"?)([^"&\s,;<>]+)`)
)

// RedactText replaces e-mail addresses, bearer/basic credentials and the
// values of secret-looking key=value or key: value pairs in free text.
func RedactText(s string) string {
	s = emailRE.ReplaceAllString(s, Redacted)
	s = bearerRE.ReplaceAllString(s, "$1 "+Redacted)
	return secretKVRE.ReplaceAllString(s, "${1}${2}"+Redacted)
}

// RedactURI replaces the values of secret-looking query parameters.
func RedactURI(uri string) string {
	path, query, ok := strings.Cut(uri, "?")
	if !ok {
		return uri
	}
	parts := strings.Split(query, "&")
	for i, p := range parts {
		k, _, hasValue := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if hasValue && secretKey(name) {
			parts[i] = k + "=" + url.QueryEscape(Redacted)
		}
	}
	return path + "?" + strings.Join(parts, "&")
}

// RedactBody renders body for display: JSON indented with the values of
// secret keys replaced, anything else through RedactText; cut to about
// limit bytes (limit <= 0: no limit) with a note saying so.
func RedactBody(body []byte, contentType string, limit int) string {
	var out string
	r := Response{Body: body, ContentType: contentType}
	t := getTape()
	if isJSON(r) && t.parse(bytesView(body)) == nil {
		out = string(appendPretty(nil, t, 0, 0, limit))
	} else {
		out = RedactText(string(body))
	}
	putTape(t)
	if limit > 0 && len(out) > limit {
		cut := limit
		for cut > 0 && out[cut]&0xC0 == 0x80 {
			cut--
		}
		out = out[:cut] + "\n… (" + strconv.Itoa(len(body)) + " bytes in all)"
	}
	return out
}

func appendPretty(b []byte, t *tape, i int32, depth, limit int) []byte {
	if limit > 0 && len(b) > limit {
		return b
	}
	nd := &t.nodes[i]
	indent := func(b []byte, d int) []byte {
		b = append(b, '\n')
		for range d {
			b = append(b, "  "...)
		}
		return b
	}
	switch nd.kind {
	case jObject, jArray:
		open, closing := byte('{'), byte('}')
		if nd.kind == jArray {
			open, closing = '[', ']'
		}
		b = append(b, open)
		if nd.n == 0 {
			return append(b, closing)
		}
		for c := i + 1; c < nd.end; c = t.nodes[c].end {
			if c > i+1 {
				b = append(b, ',')
			}
			b = indent(b, depth+1)
			if nd.kind == jObject {
				b = strconv.AppendQuote(b, t.key(c))
				b = append(b, ": "...)
				if secretKey(t.key(c)) {
					b = strconv.AppendQuote(b, Redacted)
					continue
				}
			}
			b = appendPretty(b, t, c, depth+1, limit)
			if limit > 0 && len(b) > limit {
				return b
			}
		}
		b = indent(b, depth)
		return append(b, closing)
	default:
		return append(b, t.src[nd.start:nd.stop]...)
	}
}

// credentialParts mark a field whose value is a credential, for the
// masking of request bodies (MaskRequestBody). Narrower than
// secretKeyParts: a request is replayed, so a field such as session_id or
// email (which is masked as an address instead) must keep its form.
var credentialParts = [...]string{
	"password", "passwd", "secret", "token", "apikey", "api_key", "api-key", "authorization",
	"card", "cvv", "cvc", "iban", "ssn", "credential", "private", "signature",
}

func credentialKey(k string) bool { return credentialIndex.in(k) }

// mask keeps s's length and kind of character: letters become x or X,
// digits 0; anything else stays. What a validation rule checks of a form
// (length, alphabet, separators, case) mostly survives; the value does
// not.
func mask(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = 'x'
		case c >= 'A' && c <= 'Z':
			b[i] = 'X'
		case c >= '0' && c <= '9':
			b[i] = '0'
		}
	}
	return string(b)
}

// MaskRequestBody masks what a capture must not keep of a request body
// and keeps it replayable: every e-mail address, and the values of
// credential-looking fields (password, secret, token, API key, card, CVV,
// IBAN, SSN, authorization, private key, signature: JSON members or
// key=value pairs), keep their length and kind of character (see mask),
// so that most validation rules judge the masked request as they judged
// the real one. Everything else is kept byte for byte.
func MaskRequestBody(body []byte, contentType string) []byte {
	if len(body) == 0 {
		return body
	}
	out := body
	if r := (Response{Body: body, ContentType: contentType}); isJSON(r) {
		out = rewriteJSONStrings(body, func(key string) (string, bool) {
			return "", credentialKey(key)
		}, mask)
	} else {
		out = []byte(secretKVRE.ReplaceAllStringFunc(string(out), func(m string) string {
			sm := secretKVRE.FindStringSubmatch(m)
			if !credentialKey(sm[1]) {
				return m
			}
			return sm[1] + sm[2] + mask(sm[3])
		}))
	}
	out = emailRE.ReplaceAllFunc(out, func(m []byte) []byte { return []byte(mask(string(m))) })
	// A form body spells the @ %40.
	return formEmailRE.ReplaceAllFunc(out, func(m []byte) []byte {
		at := bytes.Index(m, []byte("%40"))
		return []byte(mask(string(m[:at])) + "%40" + mask(string(m[at+3:])))
	})
}

var formEmailRE = regexp.MustCompile(`[A-Za-z0-9._+\-]+%40[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)

// RedactAnswer is what the comparison of a captured answer sees of it, and
// what it sees of the Go side's answer to the captured request: header
// values as RedactHeaders leaves them, and a body whose secret-looking
// members (secretKeyParts) read "[redacted]" and whose e-mail addresses
// are masked as MaskRequestBody masks them (so an address echoed from the
// masked request compares equal). Everything else is kept byte for byte:
// spelling differences are still seen.
func RedactAnswer(r Response) Response {
	r.Header = RedactHeaders(r.Header)
	r.Body = RedactAnswerBody(r.Body, r.ContentType)
	return r
}

// RedactAnswerBody is RedactAnswer's body part, for a published message
// too.
func RedactAnswerBody(body []byte, contentType string) []byte {
	if len(body) == 0 {
		return body
	}
	masked := emailRE.ReplaceAllFunc(body, func(m []byte) []byte { return []byte(mask(string(m))) })
	if r := (Response{Body: masked, ContentType: contentType}); isJSON(r) {
		return rewriteJSONStrings(masked, func(key string) (string, bool) {
			if secretKey(key) {
				return Redacted, true
			}
			return "", false
		}, nil)
	}
	return []byte(RedactText(string(masked)))
}

// rewriteJSONStrings returns body with the string values of the members
// pick names replaced: by pick's replacement, or, when with is set, by
// with applied to the decoded value. Anything else stays as it is; a body
// that does not parse is returned unchanged.
func rewriteJSONStrings(body []byte, pick func(key string) (string, bool), with func(string) string) []byte {
	t := getTape()
	defer putTape(t)
	if t.parse(bytesView(body)) != nil {
		return body
	}
	var out []byte
	last := int32(0)
	for i := int32(1); i < int32(len(t.nodes)); i++ {
		nd := &t.nodes[i]
		if nd.kind != jString || t.key(i) == "" {
			continue
		}
		repl, ok := pick(t.key(i))
		if !ok {
			continue
		}
		if with != nil {
			repl = with(t.str(i))
		}
		if out == nil {
			out = make([]byte, 0, len(body))
		}
		out = append(out, body[last:nd.start]...)
		out = appendJSONString(out, repl)
		last = nd.stop
	}
	if out == nil {
		return body
	}
	return append(out, body[last:]...)
}

// appendJSONString appends s as a JSON string, escaping only what JSON
// requires.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
