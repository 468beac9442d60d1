package compare

import (
	"errors"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/strangler-proxy/strangler/internal/ascii"
)

// A hand-written parser into a flat tape rather than encoding/json into
// map[string]any: decoding a 2 KiB document into `any` costs more than the
// whole comparison budget (20 µs per pair), and the tape keeps source
// offsets for rendering and never allocates per value. It accepts exactly
// what json.Valid accepts (FuzzDiff checks this), numbers are kept as
// their literal text and compared as decimals.

type jkind uint8

const (
	jNull jkind = iota
	jFalse
	jTrue
	jNumber
	jString
	jObject
	jArray
)

func (k jkind) String() string {
	switch k {
	case jNull:
		return "null"
	case jFalse, jTrue:
		return "boolean"
	case jNumber:
		return "number"
	case jString:
		return "string"
	case jObject:
		return "object"
	default:
		return "array"
	}
}

// jnode is one value. Children of a container follow it in pre-order; end
// is the index just past its subtree, so the next sibling is nodes[end].
// It holds no pointer (its key is offsets, see tape.key): appending nodes
// needs no write barrier and the collector never scans a tape's nodes.
type jnode struct {
	start int32 // offset of the value's first byte in src
	stop  int32 // offset just past the value's last byte
	end   int32
	n     int32 // members or elements of a container
	// gap is where the text before the value starts: just past the
	// parent's '{', '[' or ','. src[gap:start] is whitespace and, for a
	// member, its key as spelled and the ':'.
	gap int32
	// A member's key: src[koff:koff+klen], or when kesc (it holds an
	// escape) the decoded ekeys[koff]. Not a member: klen 0, as for "".
	koff, klen int32
	kind       jkind
	esc        bool // a string value holds an escape
	kesc       bool
}

// tape is a parsed document. Its strings alias src.
type tape struct {
	src   string
	nodes []jnode
	ekeys []string // decoded member keys that hold an escape
}

// key returns the decoded key of member i ("" when i is no member).
func (t *tape) key(i int32) string {
	nd := &t.nodes[i]
	if nd.kesc {
		return t.ekeys[nd.koff]
	}
	return t.src[nd.koff : nd.koff+nd.klen]
}

// maxDepth matches encoding/json's nesting limit.
const maxDepth = 10000

// maxTapeBytes keeps offsets in int32; larger bodies compare as text.
const maxTapeBytes = 1 << 30

var errSyntax = errors.New("invalid JSON")

var tapePool = sync.Pool{New: func() any { return &tape{nodes: make([]jnode, 0, 256)} }}

func getTape() *tape { return tapePool.Get().(*tape) }

func putTape(t *tape) {
	if cap(t.nodes) > 1<<16 { // do not pin huge documents in the pool
		return
	}
	clear(t.ekeys)
	t.src, t.nodes, t.ekeys = "", t.nodes[:0], t.ekeys[:0]
	tapePool.Put(t)
}

// parse fills t from s. On error t is unusable.
func (t *tape) parse(s string) error {
	if len(s) > maxTapeBytes {
		return errSyntax
	}
	t.src, t.nodes, t.ekeys = s, t.nodes[:0], t.ekeys[:0]
	p := parser{s: s, t: t, nodes: t.nodes}
	p.ws()
	err := p.value(jnode{}, 0)
	t.nodes = p.nodes
	if err != nil {
		return err
	}
	p.ws()
	if p.i != len(s) {
		return errSyntax
	}
	return nil
}

type parser struct {
	s string
	i int
	t *tape
	// nodes is t.nodes while parsing: appended to on the parser's stack
	// frame, not through t (a write barrier for every node while the
	// collector runs).
	nodes []jnode
}

func (p *parser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// value parses one value into a node that starts as head (its key and
// gap filled in by the caller).
func (p *parser) value(head jnode, depth int) error {
	if p.i >= len(p.s) {
		return errSyntax
	}
	if c := p.s[p.i]; c != '{' && c != '[' {
		return p.scalar(head)
	}
	idx := len(p.nodes)
	head.start = int32(p.i)
	p.nodes = append(p.nodes, head)
	var kind jkind
	var n int32
	switch p.s[p.i] {
	case '{':
		if depth >= maxDepth {
			return errSyntax
		}
		kind = jObject
		p.i++
		g := p.i
		p.ws()
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			break
		}
		for {
			if p.i >= len(p.s) || p.s[p.i] != '"' {
				return errSyntax
			}
			m := jnode{gap: int32(g), koff: int32(p.i + 1)}
			raw, kesc, err := p.str()
			if err != nil {
				return err
			}
			m.klen = int32(len(raw))
			if kesc {
				m.kesc, m.koff = true, int32(len(p.t.ekeys))
				p.t.ekeys = append(p.t.ekeys, unescape(raw))
			}
			p.ws()
			if p.i >= len(p.s) || p.s[p.i] != ':' {
				return errSyntax
			}
			p.i++
			p.ws()
			if p.i < len(p.s) && (p.s[p.i] == '{' || p.s[p.i] == '[') {
				err = p.value(m, depth+1)
			} else {
				err = p.scalar(m) // most values: without value's frame
			}
			if err != nil {
				return err
			}
			n++
			more, after, err := p.next('}')
			if err != nil {
				return err
			}
			if !more {
				break
			}
			g = after
		}
	case '[':
		if depth >= maxDepth {
			return errSyntax
		}
		kind = jArray
		p.i++
		g := p.i
		p.ws()
		if p.i < len(p.s) && p.s[p.i] == ']' {
			p.i++
			break
		}
		for {
			var err error
			if p.i < len(p.s) && (p.s[p.i] == '{' || p.s[p.i] == '[') {
				err = p.value(jnode{gap: int32(g)}, depth+1)
			} else {
				err = p.scalar(jnode{gap: int32(g)})
			}
			if err != nil {
				return err
			}
			n++
			more, after, err := p.next(']')
			if err != nil {
				return err
			}
			if !more {
				break
			}
			g = after
		}
	}
	nd := &p.nodes[idx]
	nd.kind, nd.n = kind, n
	nd.stop, nd.end = int32(p.i), int32(len(p.nodes))
	return nil
}

// scalar parses a string, number, true, false or null into a node that
// starts as head. Most values are scalars: the containers' loops call
// this directly rather than through value, whose frame is larger.
func (p *parser) scalar(head jnode) error {
	if p.i >= len(p.s) {
		return errSyntax
	}
	head.start = int32(p.i)
	switch p.s[p.i] {
	case '"':
		_, esc, err := p.str()
		if err != nil {
			return err
		}
		head.kind, head.esc = jString, esc
	case 't':
		head.kind = jTrue
		if !p.lit("true") {
			return errSyntax
		}
	case 'f':
		head.kind = jFalse
		if !p.lit("false") {
			return errSyntax
		}
	case 'n':
		head.kind = jNull
		if !p.lit("null") {
			return errSyntax
		}
	default:
		head.kind = jNumber
		if !p.number() {
			return errSyntax
		}
	}
	head.stop, head.end = int32(p.i), int32(len(p.nodes))+1
	p.nodes = append(p.nodes, head)
	return nil
}

// next reads what follows a member or an element: ',' (more is true, and
// after is the offset just past it) or the container's closing byte.
func (p *parser) next(closing byte) (more bool, after int, err error) {
	p.ws()
	if p.i >= len(p.s) {
		return false, 0, errSyntax
	}
	switch p.s[p.i] {
	case ',':
		p.i++
		after = p.i
		p.ws()
		return true, after, nil
	case closing:
		p.i++
		return false, 0, nil
	}
	return false, 0, errSyntax
}

func (p *parser) lit(want string) bool {
	if strings.HasPrefix(p.s[p.i:], want) {
		p.i += len(want)
		return true
	}
	return false
}

// plainByte marks bytes that need no attention inside a string: not the
// closing quote, not an escape, not a control character.
var plainByte = func() (t [256]bool) {
	for i := range t {
		t[i] = i >= 0x20 && i != '"' && i != '\\'
	}
	return t
}()

// plainRun returns the index of the first byte at or after i that is not
// plain (plainByte), or len(s): eight bytes at a time while they last. A
// word's lowest flagged byte is always a true one (a borrow only flags the
// bytes above it), so the first is found exactly.
func plainRun(s string, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8]
		x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
		q, b := x^(ones*'"'), x^(ones*'\\')
		// A byte below 0x20, or one that is '"' or '\\' (zero after the xor).
		if m := ((x - ones*0x20) | (q - ones) | (b - ones)) &^ x & highs; m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for i < len(s) && plainByte[s[i]] {
		i++
	}
	return i
}

// str scans a string starting at the opening quote and returns its raw
// (still escaped) contents.
func (p *parser) str() (raw string, esc bool, err error) {
	s := p.s
	start := p.i + 1
	i := start
	for {
		i = plainRun(s, i)
		if i >= len(s) {
			return "", false, errSyntax
		}
		switch s[i] {
		case '"':
			p.i = i + 1
			return s[start:i], esc, nil
		case '\\':
			esc = true
			if i+1 >= len(s) {
				return "", false, errSyntax
			}
			i++
			switch s[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if i+4 >= len(s) {
					return "", false, errSyntax
				}
				for j := i + 1; j <= i+4; j++ {
					if !ascii.IsHex(s[j]) {
						return "", false, errSyntax
					}
				}
				i += 5
			default:
				return "", false, errSyntax
			}
		default: // a control character
			return "", false, errSyntax
		}
	}
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *parser) number() bool {
	s, i := p.s, p.i
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	p.i = i
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// unescape decodes the contents of a valid JSON string the way
// encoding/json does (lone surrogates become U+FFFD).
func unescape(raw string) string {
	b := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			b = append(b, c)
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r := hex4(raw[i+1 : i+5])
			i += 4
			if utf16.IsSurrogate(r) {
				if i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
					if r2 := hex4(raw[i+3 : i+7]); utf16.DecodeRune(r, r2) != utf8.RuneError {
						r = utf16.DecodeRune(r, r2)
						i += 6
						b = utf8.AppendRune(b, r)
						continue
					}
				}
				r = utf8.RuneError
			}
			b = utf8.AppendRune(b, r)
		default: // " \ /
			b = append(b, raw[i])
		}
	}
	return string(b)
}

func hex4(s string) rune {
	v, _ := strconv.ParseUint(s, 16, 32)
	return rune(v)
}

// tail is where container i's closing text starts: past its last child,
// or past its opening byte when it has none.
func (t *tape) tail(i int32) int32 {
	nd := &t.nodes[i]
	last := int32(-1)
	for c := i + 1; c < nd.end; c = t.nodes[c].end {
		last = c
	}
	if last < 0 {
		return nd.start + 1
	}
	return t.nodes[last].stop
}

// str returns the decoded value of string node i.
func (t *tape) str(i int32) string {
	nd := &t.nodes[i]
	raw := t.src[nd.start+1 : nd.stop-1]
	if nd.esc {
		return unescape(raw)
	}
	return raw
}

// lit returns the source text of node i.
func (t *tape) lit(i int32) string {
	nd := &t.nodes[i]
	return t.src[nd.start:nd.stop]
}
