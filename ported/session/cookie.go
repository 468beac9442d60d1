package session

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// maxInputVars is PHP's default max_input_vars: past that many cookies PHP
// stops reading the header.
const maxInputVars = 1000

// cookieValue returns the session cookie as PHP's $_COOKIE[name] has it,
// and whether PHP would see it as a string at all. It follows what PHP-FPM
// behind the monolith's Nginx does (pinned by the legacy /headers tests):
//   - of several Cookie header lines PHP sees only the last;
//   - in it, the first cookie of a name wins (php_register_variable_ex);
//   - names lose leading white space, and ' ' and '.' become '_';
//     "name[...]" makes $_COOKIE[name] an array, which is no session id;
//   - values are raw-URL-decoded (%XX only; '+' stays).
func cookieValue(h *fasthttp.RequestHeader, name string) ([]byte, bool) {
	// The raw head keeps each Cookie line apart; the parsed header has
	// them merged into one (a request built in code has only that).
	all := h.All
	if len(h.RawHeaders()) > 0 {
		all = h.AllInOrder
	}
	var line []byte
	found := false
	for k, v := range all() {
		if len(k) == len("Cookie") && bytes.EqualFold(k, []byte("Cookie")) {
			// The iterator's bytes are only valid inside the loop.
			line, found = append(line[:0], v...), true
		}
	}
	if !found {
		return nil, false
	}
	count := 0
	for part := range bytes.SplitSeq(line, []byte{';'}) {
		part = bytes.TrimLeft(part, " \t\n\v\f\r")
		eq := bytes.IndexByte(part, '=')
		if len(part) == 0 || eq == 0 {
			continue
		}
		if count++; count > maxInputVars {
			return nil, false
		}
		rawName, val := part, []byte(nil)
		if eq > 0 {
			rawName, val = part[:eq], part[eq+1:]
		}
		base, isArray := phpVarName(rawName)
		if base != name {
			continue
		}
		if isArray {
			return nil, false // $_COOKIE[name] is an array: PHP reads no id from it
		}
		return rawURLDecode(val), true
	}
	return nil, false
}

// phpVarName is the name PHP registers a variable under
// (php_register_variable_ex), and whether it is an array element.
func phpVarName(raw []byte) (string, bool) {
	raw = bytes.TrimLeft(raw, " ")
	b := make([]byte, 0, len(raw))
	for i, c := range raw {
		switch c {
		case ' ', '.':
			b = append(b, '_')
		case '[':
			if bytes.IndexByte(raw[i+1:], ']') >= 0 {
				return string(b), true
			}
			// No closing bracket: PHP turns this '[' and every later
			// ' ', '.', '[' into '_'.
			for _, c := range raw[i:] {
				if c == ' ' || c == '.' || c == '[' {
					c = '_'
				}
				b = append(b, c)
			}
			return string(b), false
		default:
			b = append(b, c)
		}
	}
	return string(b), false
}

// rawURLDecode is php_raw_url_decode: %XX with two hex digits becomes the
// byte; anything else, '+' included, stays.
func rawURLDecode(s []byte) []byte {
	if bytes.IndexByte(s, '%') < 0 {
		return s
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				out = append(out, hi<<4|lo)
				i += 2
				continue
			}
		}
		out = append(out, s[i])
	}
	return out
}
