// Package phpjson writes JSON strings byte-for-byte as PHP's json_encode
// does with JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE, the flags the
// monolith uses, so that a ported handler and its PHP twin answer with
// identical bytes. It is shared by the intake, the campaign lookups and the
// campaign data generator.
package phpjson

// AppendString appends s as a JSON string escaped exactly as PHP's
// json_encode(..., JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE) does, so
// both twins write byte-identical bodies and events: only '"', '\\' and
// control characters are escaped (\b \f \n \r \t, else \u00xx in lower-case
// hex), plus U+2028 and U+2029, which PHP escapes unless
// JSON_UNESCAPED_LINE_TERMINATORS. encoding/json would also escape <, > and
// & and write invalid UTF-8 as \ufffd. s must be valid UTF-8.
func AppendString[S ~string | ~[]byte](dst []byte, s S) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c != 0xE2 {
			i++
			continue
		}
		if c == 0xE2 {
			// U+2028 and U+2029 are E2 80 A8 and E2 80 A9.
			if i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0xA8 || s[i+2] == 0xA9) {
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\u202`...)
				dst = append(dst, "89"[s[i+2]-0xA8])
				i += 3
				start = i
				continue
			}
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
