// Package ascii holds the byte-level pieces of HTTP's grammar (RFC 9110)
// that the front door, the legacy forwarder, the capture file and the
// ported handlers all parse with. Case folding here is ASCII only, as HTTP
// field names, codings and media types require: strings.EqualFold would
// also fold "ſ" to "s" and the Kelvin sign to "k".
package ascii

import "unsafe"

// Lower folds A–Z to a–z and leaves every other byte alone.
func Lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// EqualFoldString reports whether a equals b, ASCII case-insensitively.
func EqualFoldString(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		if Lower(a[i]) != Lower(b[i]) {
			return false
		}
	}
	return true
}

// EqualFold is EqualFoldString for a byte slice, without a copy.
func EqualFold(b []byte, s string) bool { return EqualFoldString(view(b), s) }

// EqualFoldBytes is EqualFoldString for two byte slices, without a copy.
func EqualFoldBytes(a, b []byte) bool { return EqualFoldString(view(a), view(b)) }

// view is b as a string for the length of a comparison: never kept.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// IsTokenChar reports whether c is a tchar (RFC 9110 §5.6.2), the bytes of
// field names, methods and transfer codings.
func IsTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// IsHex reports whether c is a hex digit.
func IsHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// Unhex is the value of the hex digit c; c must satisfy IsHex.
func Unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
