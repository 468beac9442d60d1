package events

import (
	"errors"
	"strconv"
	"unicode/utf8"
)

// This file is a strict JSON parser whose accept/reject decisions and value
// types are those of PHP's json_decode($body, false, 512) — what the monolith
// runs — rather than encoding/json's, which differs exactly where parity
// matters: it replaces lone surrogate escapes and invalid UTF-8 with U+FFFD
// (PHP rejects both), nests 10000 deep (PHP 511), cannot tell an integer
// literal from a float one, and keeps no text of a number. The parser builds
// a flat node slice over the input so the hot path allocates nothing.

// Parse failures, mapped to the 400 bodies of CONTRACT.md.
var (
	// ErrInvalidUTF8 says the body is not valid UTF-8.
	ErrInvalidUTF8 = errors.New("body is not valid UTF-8")
	// ErrMalformedJSON says the body is not one JSON value PHP would accept.
	ErrMalformedJSON = errors.New("body is not valid JSON")
	// ErrNotObject says the body is valid JSON but not an object.
	ErrNotObject = errors.New("body is not a JSON object")
)

// maxNesting is PHP's json_decode depth 512: a value at depth 512 is refused,
// so at most 511 arrays/objects may nest.
const maxNesting = 511

// kind is a parsed value's PHP type under json_decode($s, false).
type kind uint8

const (
	kindNull   kind = iota
	kindBool        // PHP bool
	kindInt         // an integer literal that fits int64: PHP int
	kindFloat       // any other number, including huge integer literals: PHP float
	kindString      // PHP string
	kindArray       // PHP list
	kindObject      // PHP stdClass
)

// node is one parsed value. Strings and numbers keep offsets into the
// source; containers link their children through next.
type node struct {
	kind  kind
	truth bool  // kindBool
	esc   bool  // kindString: the text holds escapes and must be decoded
	start int32 // string contents (between the quotes) or number text
	end   int32
	first int32 // arrays: first element; objects: first key; keys: their value
	next  int32 // next element or key of the parent; -1 at the end
	count int32 // arrays: elements; objects: members, duplicates included
	i     int64 // kindInt
}

const none = -1

type parser struct {
	src   []byte
	pos   int
	nodes []node
}

// parse parses p.src into p.nodes and returns the root's index.
func (p *parser) parse(src []byte) (int32, error) {
	if !utf8.Valid(src) {
		return none, ErrInvalidUTF8
	}
	if len(src) > 1<<30 {
		return none, ErrMalformedJSON // offsets are int32
	}
	p.src, p.pos, p.nodes = src, 0, p.nodes[:0]
	p.skipSpace()
	root, ok := p.value(0)
	if !ok {
		return none, ErrMalformedJSON
	}
	p.skipSpace()
	if p.pos != len(p.src) {
		return none, ErrMalformedJSON
	}
	return root, nil
}

func (p *parser) skipSpace() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) add(n node) int32 {
	n.next = none
	p.nodes = append(p.nodes, n)
	return int32(len(p.nodes) - 1)
}

func (p *parser) value(depth int) (int32, bool) {
	if p.pos >= len(p.src) {
		return none, false
	}
	switch c := p.src[p.pos]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		return p.str()
	case c == 't':
		return p.literal("true", node{kind: kindBool, truth: true})
	case c == 'f':
		return p.literal("false", node{kind: kindBool})
	case c == 'n':
		return p.literal("null", node{kind: kindNull})
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	return none, false
}

func (p *parser) literal(word string, n node) (int32, bool) {
	if len(p.src)-p.pos < len(word) || string(p.src[p.pos:p.pos+len(word)]) != word {
		return none, false
	}
	p.pos += len(word)
	return p.add(n), true
}

func (p *parser) object(depth int) (int32, bool) {
	if depth > maxNesting {
		return none, false
	}
	p.pos++ // '{'
	obj := p.add(node{kind: kindObject, first: none})
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == '}' {
		p.pos++
		return obj, true
	}
	last := int32(none)
	for {
		p.skipSpace()
		if p.pos >= len(p.src) || p.src[p.pos] != '"' {
			return none, false
		}
		key, ok := p.str()
		if !ok {
			return none, false
		}
		// PHP cannot name a stdClass property "\0…" and fails the whole
		// decode with JSON_ERROR_INVALID_PROPERTY_NAME. A raw NUL byte is
		// already refused as a control character, so only the escape is left.
		if k := p.nodes[key]; k.end-k.start >= 6 && string(p.src[k.start:k.start+6]) == `\u0000` {
			return none, false
		}
		p.skipSpace()
		if p.pos >= len(p.src) || p.src[p.pos] != ':' {
			return none, false
		}
		p.pos++
		p.skipSpace()
		val, ok := p.value(depth)
		if !ok {
			return none, false
		}
		p.nodes[key].first = val
		last = p.link(obj, last, key)
		more, ok := p.next('}')
		if !ok {
			return none, false
		}
		if !more {
			return obj, true
		}
	}
}

func (p *parser) array(depth int) (int32, bool) {
	if depth > maxNesting {
		return none, false
	}
	p.pos++ // '['
	arr := p.add(node{kind: kindArray, first: none})
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == ']' {
		p.pos++
		return arr, true
	}
	last := int32(none)
	for {
		p.skipSpace()
		el, ok := p.value(depth)
		if !ok {
			return none, false
		}
		last = p.link(arr, last, el)
		more, ok := p.next(']')
		if !ok {
			return none, false
		}
		if !more {
			return arr, true
		}
	}
}

// link appends child to parent's children after last and returns it.
func (p *parser) link(parent, last, child int32) int32 {
	if last == none {
		p.nodes[parent].first = child
	} else {
		p.nodes[last].next = child
	}
	p.nodes[parent].count++
	return child
}

// next reads what follows a member or an element: ',' (more is true) or
// the container's closing byte.
func (p *parser) next(closing byte) (more, ok bool) {
	p.skipSpace()
	if p.pos >= len(p.src) {
		return false, false
	}
	switch p.src[p.pos] {
	case ',':
		p.pos++
		return true, true
	case closing:
		p.pos++
		return false, true
	}
	return false, false
}

// str scans a string. The source is valid UTF-8 (parse checked it), so only
// control characters, escapes and surrogates are left to check.
func (p *parser) str() (int32, bool) {
	start := p.pos + 1
	esc := false
	for i := start; i < len(p.src); {
		c := p.src[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return p.add(node{kind: kindString, esc: esc, start: int32(start), end: int32(i)}), true
		case c < 0x20:
			return none, false
		case c != '\\':
			i++
			continue
		}
		esc = true
		if i+1 >= len(p.src) {
			return none, false
		}
		switch p.src[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			r, ok := hex4(p.src, i+2)
			if !ok {
				return none, false
			}
			i += 6
			switch {
			case r >= 0xDC00 && r <= 0xDFFF:
				return none, false // a low surrogate alone (JSON_ERROR_UTF16)
			case r >= 0xD800 && r <= 0xDBFF:
				// A high surrogate must be followed at once by a low one.
				if i+1 >= len(p.src) || p.src[i] != '\\' || p.src[i+1] != 'u' {
					return none, false
				}
				lo, ok := hex4(p.src, i+2)
				if !ok || lo < 0xDC00 || lo > 0xDFFF {
					return none, false
				}
				i += 6
			}
		default:
			return none, false
		}
	}
	return none, false
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number scans an RFC 8259 number (PHP's scanner has the same grammar) and
// types it like PHP: an integer literal is an int when it fits int64, and a
// float otherwise; anything with a fraction or exponent is a float.
func (p *parser) number() (int32, bool) {
	start := p.pos
	i := p.pos
	if p.src[i] == '-' {
		i++
	}
	digits := i
	switch {
	case i < len(p.src) && p.src[i] == '0':
		i++
	case i < len(p.src) && p.src[i] >= '1' && p.src[i] <= '9':
		for i < len(p.src) && p.src[i] >= '0' && p.src[i] <= '9' {
			i++
		}
	default:
		return none, false
	}
	intEnd := i
	isFloat := false
	if i < len(p.src) && p.src[i] == '.' {
		i++
		if i >= len(p.src) || p.src[i] < '0' || p.src[i] > '9' {
			return none, false
		}
		for i < len(p.src) && p.src[i] >= '0' && p.src[i] <= '9' {
			i++
		}
		isFloat = true
	}
	if i < len(p.src) && (p.src[i] == 'e' || p.src[i] == 'E') {
		i++
		if i < len(p.src) && (p.src[i] == '+' || p.src[i] == '-') {
			i++
		}
		if i >= len(p.src) || p.src[i] < '0' || p.src[i] > '9' {
			return none, false
		}
		for i < len(p.src) && p.src[i] >= '0' && p.src[i] <= '9' {
			i++
		}
		isFloat = true
	}
	p.pos = i
	n := node{kind: kindFloat, start: int32(start), end: int32(i)}
	if !isFloat {
		if v, ok := parseInt64(p.src[digits:intEnd], digits > start); ok {
			n.kind, n.i = kindInt, v
		}
	}
	return p.add(n), true
}

// parseInt64 converts decimal digits (no sign, no leading zero but "0")
// and reports false when the value does not fit int64, where PHP's scanner
// falls back to a float: more than 19 digits, or 19 digits at or above
// 9223372036854775808 unless negative and equal to it.
func parseInt64(d []byte, neg bool) (int64, bool) {
	if len(d) > 19 {
		return 0, false
	}
	var u uint64
	for _, c := range d {
		u = u*10 + uint64(c-'0') // 19 digits never overflow uint64
	}
	switch {
	case neg && u <= 1<<63:
		return int64(-u), true // -u wraps to MinInt64 for 1<<63
	case !neg && u < 1<<63:
		return int64(u), true
	}
	return 0, false
}

// float returns a number node's value as PHP's zend_strtod computes it:
// correctly rounded, ±Inf beyond the float64 range, 0 below it.
func (p *parser) float(n *node) float64 {
	if n.kind == kindInt {
		return float64(n.i)
	}
	f, _ := strconv.ParseFloat(string(p.src[n.start:n.end]), 64) // ErrRange still yields ±Inf or 0
	return f
}

// raw returns a string node's undecoded contents.
func (p *parser) raw(n *node) []byte { return p.src[n.start:n.end] }

// appendString appends a string node's decoded value to dst. The parser has
// validated the escapes, so this cannot fail.
func (p *parser) appendString(dst []byte, n *node) []byte {
	s := p.src[n.start:n.end]
	if !n.esc {
		return append(dst, s...)
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch s[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, _ := hex4(s, i+2)
			if r >= 0xD800 && r <= 0xDBFF {
				lo, _ := hex4(s, i+8)
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
				i += 6
			}
			dst = utf8.AppendRune(dst, r)
			i += 6
			continue
		default: // '"', '\\', '/'
			dst = append(dst, s[i+1])
		}
		i += 2
	}
	return dst
}
