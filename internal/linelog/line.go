package linelog

import (
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Line builds one JSON log line in the shape of zap's production JSON
// encoder ({"level":…,"ts":<epoch seconds>,"logger":…,"msg":…, fields…}),
// by appending to a buffer the caller keeps: for the lines written once per
// request, where zap's general encoder (reflection-free but field-generic)
// costs more than the rest of the line's path. Strings are escaped as zap
// escapes them: `"`, `\` and control characters, and invalid UTF-8 as
// U+FFFD. Durations are seconds, as zap's SecondsDurationEncoder writes them.
//
// The zero value is ready; Reset reuses the buffer.
type Line struct {
	b      []byte
	fields bool // a field was written: the next one needs a comma
}

// Begin starts a line with zap's leading keys.
func (l *Line) Begin(level, logger, msg string, ts time.Time) {
	l.b = append(l.b[:0], `{"level":"`...)
	l.b = append(l.b, level...)
	l.b = append(l.b, `","ts":`...)
	l.b = appendFixed(l.b, ts.Unix(), int64(ts.Nanosecond()/1000), 6)
	l.b = append(l.b, `,"logger":`...)
	l.b = appendQuoted(l.b, logger)
	l.b = append(l.b, `,"msg":`...)
	l.b = appendQuoted(l.b, msg)
	l.fields = true
}

func (l *Line) key(k string) {
	if l.fields {
		l.b = append(l.b, ',')
	}
	l.fields = true
	l.b = append(l.b, '"')
	l.b = append(l.b, k...) // keys are the caller's constants: plain ASCII
	l.b = append(l.b, '"', ':')
}

// String adds a string field.
func (l *Line) String(k, v string) {
	l.key(k)
	l.b = appendQuoted(l.b, v)
}

// Bytes adds a string field from bytes (not copied beyond the line).
func (l *Line) Bytes(k string, v []byte) {
	l.key(k)
	// A view, not a copy: appendQuoted only reads it.
	l.b = appendQuoted(l.b, unsafe.String(unsafe.SliceData(v), len(v)))
}

// Int adds an integer field.
func (l *Line) Int(k string, v int64) {
	l.key(k)
	l.b = strconv.AppendInt(l.b, v, 10)
}

// Seconds adds a duration field as seconds with nanosecond digits, trailing
// zeros trimmed (0.0012345 for 1.2345ms).
func (l *Line) Seconds(k string, d time.Duration) {
	l.key(k)
	if d < 0 {
		l.b = append(l.b, '-')
		d = -d
	}
	l.b = appendFixed(l.b, int64(d/time.Second), int64(d%time.Second), 9)
	for l.b[len(l.b)-1] == '0' && l.b[len(l.b)-2] != '.' {
		l.b = l.b[:len(l.b)-1]
	}
}

// End closes the line and returns it, newline included. It is valid until
// the next Begin.
func (l *Line) End() []byte {
	l.b = append(l.b, '}', '\n')
	l.fields = false
	return l.b
}

// appendFixed appends whole "." frac, frac zero-padded to digits.
func appendFixed(b []byte, whole, frac int64, digits int) []byte {
	b = strconv.AppendInt(b, whole, 10)
	b = append(b, '.')
	var tmp [9]byte
	for i := digits - 1; i >= 0; i-- {
		tmp[i] = byte('0' + frac%10)
		frac /= 10
	}
	return append(b, tmp[:digits]...)
}

const hexDigits = "0123456789abcdef"

// plain marks the bytes a JSON string holds as they are: printable ASCII
// but '"' and '\\'. A table lookup per byte is the loop's whole cost.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendQuoted appends s as a JSON string, escaped as zap's JSON encoder
// escapes it.
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if plain[c] {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
