package campaigns

import (
	"encoding/base64"

	"github.com/strangler-proxy/strangler/internal/ascii"
)

// The list query is parsed by hand, identically to the PHP side, rather than
// with fasthttp.Args: PHP's $_GET keeps the last of repeated parameters and
// mangles names, fasthttp keeps the first. The rules (CONTRACT.md):
//   - the raw query is split on '&'; empty pieces are skipped; a piece
//     without '=' has an empty value; names and values are form-decoded
//     ('+' is a space, %XX a byte, a stray '%' stays as is);
//   - pieces are checked left to right and the first problem is reported;
//   - an unknown name, a repeated name or an invalid value is a 400.

type activeFilter uint8

const (
	activeAny activeFilter = iota
	activeTrue
	activeFalse
)

type query struct {
	country string // "" = any
	active  activeFilter
	limit   int
	after   string // decoded cursor; "" = from the start
}

// paramNames are the known parameters; the index is the slot in parseQuery.
var paramNames = [...]string{"country", "active", "limit", "cursor"}

type badParam struct {
	field, message string
}

const (
	msgUnknown   = "unknown parameter"
	msgDuplicate = "parameter given more than once"
	msgCountry   = "country must be an ISO 3166-1 alpha-2 code"
	msgActive    = "active must be true or false"
	msgLimit     = "limit must be an integer between 1 and 100"
	msgCursor    = "cursor is not valid"
)

// Preallocated so that the common error paths do not allocate.
var (
	errCountry = &badParam{"country", msgCountry}
	errActive  = &badParam{"active", msgActive}
	errLimit   = &badParam{"limit", msgLimit}
	errCursor  = &badParam{"cursor", msgCursor}
)

func parseQuery(raw []byte) (query, *badParam) {
	q := query{limit: DefaultLimit}
	var seen [len(paramNames)]bool
	var scratch [128]byte
	for len(raw) > 0 {
		var piece []byte
		if i := indexByte(raw, '&'); i >= 0 {
			piece, raw = raw[:i], raw[i+1:]
		} else {
			piece, raw = raw, nil
		}
		if len(piece) == 0 {
			continue
		}
		rawName, rawValue := piece, []byte(nil)
		if i := indexByte(piece, '='); i >= 0 {
			rawName, rawValue = piece[:i], piece[i+1:]
		}
		name := formDecode(scratch[:0], rawName)
		slot := -1
		for i, known := range paramNames {
			if string(name) == known {
				slot = i
				break
			}
		}
		if slot < 0 {
			return q, &badParam{unknownField(name), msgUnknown}
		}
		if seen[slot] {
			return q, &badParam{paramNames[slot], msgDuplicate}
		}
		seen[slot] = true
		// Decode the value after the name in the same scratch space.
		value := formDecode(name[len(name):], rawValue)
		var bad *badParam
		switch slot {
		case 0:
			q.country, bad = parseCountry(value)
		case 1:
			q.active, bad = parseActive(value)
		case 2:
			q.limit, bad = parseLimit(value)
		case 3:
			q.after, bad = parseCursor(value)
		}
		if bad != nil {
			return q, bad
		}
	}
	return q, nil
}

// unknownField echoes a parameter name only when it needs no escaping rules
// beyond the trivial ones, so both sides render it identically.
func unknownField(name []byte) string {
	if len(name) == 0 || len(name) > 64 {
		return "query"
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return "query"
		}
	}
	return string(name)
}

// parseCountry accepts two ASCII letters in either case and upper-cases them.
func parseCountry(v []byte) (string, *badParam) {
	if len(v) != 2 {
		return "", errCountry
	}
	var cc [2]byte
	for i, c := range v {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c < 'A' || c > 'Z' {
			return "", errCountry
		}
		cc[i] = c
	}
	return string(cc[:]), nil
}

func parseActive(v []byte) (activeFilter, *badParam) {
	switch string(v) {
	case "true":
		return activeTrue, nil
	case "false":
		return activeFalse, nil
	}
	return activeAny, errActive
}

// parseLimit accepts 1..100 written as plain decimal digits without a sign
// or leading zero.
func parseLimit(v []byte) (int, *badParam) {
	if len(v) == 0 || len(v) > 3 || v[0] == '0' {
		return 0, errLimit
	}
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, errLimit
		}
		n = n*10 + int(c-'0')
	}
	if n > MaxLimit {
		return 0, errLimit
	}
	return n, nil
}

// parseCursor decodes an unpadded base64url cursor that must re-encode to
// itself (no alternative spellings) and hold a plausible id.
func parseCursor(v []byte) (string, *badParam) {
	if len(v) == 0 || len(v) > 88 {
		return "", errCursor
	}
	for _, c := range v {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return "", errCursor
		}
	}
	var dec [66]byte
	n, err := base64.RawURLEncoding.Decode(dec[:], v)
	if err != nil || n == 0 || n > 64 {
		return "", errCursor
	}
	var enc [88]byte
	if base64.RawURLEncoding.EncodedLen(n) != len(v) {
		return "", errCursor
	}
	base64.RawURLEncoding.Encode(enc[:], dec[:n])
	if string(enc[:len(v)]) != string(v) {
		return "", errCursor
	}
	for _, c := range dec[:n] {
		if c <= ' ' || c >= 0x7f || c == '/' {
			return "", errCursor
		}
	}
	return string(dec[:n]), nil
}

// formDecode appends the application/x-www-form-urlencoded decoding of s to
// dst, like PHP's urldecode: '+' is a space, %XX a byte, and a '%' not
// followed by two hex digits is kept literally.
func formDecode(dst, s []byte) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			dst = append(dst, ' ')
		case c == '%' && i+2 < len(s) && ascii.IsHex(s[i+1]) && ascii.IsHex(s[i+2]):
			dst = append(dst, ascii.Unhex(s[i+1])<<4|ascii.Unhex(s[i+2]))
			i += 2
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
