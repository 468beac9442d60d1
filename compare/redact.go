package compare

import (
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

func secretKey(k string) bool {
	for _, part := range secretKeyParts {
		if containsFold(k, part) {
			return true
		}
	}
	return false
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
	n := len(sub)
outer:
	for i := 0; i+n <= len(s); i++ {
		for j := 0; j < n; j++ {
			c := s[i+j]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[j] {
				continue outer
			}
		}
		return true
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
				b = strconv.AppendQuote(b, t.nodes[c].key)
				b = append(b, ": "...)
				if secretKey(t.nodes[c].key) {
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
