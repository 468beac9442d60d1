package session

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Errors of Decode, each wrapped in a *DecodeError that says where.
var (
	// ErrMalformed: the bytes are not what PHP's serializer writes.
	ErrMalformed = errors.New("malformed")
	// ErrObject: an object (O:, C:) or enum (E:). Unserializing one would
	// run PHP classes' code on the PHP side and has no meaning in Go, so
	// it is refused rather than skipped.
	ErrObject = errors.New("objects are refused")
	// ErrReference: a reference (r:, R:). References make a tree a graph
	// (and were the way into several unserialize CVEs); refused.
	ErrReference = errors.New("references are refused")
	// ErrTooDeep: arrays nested past Limits.MaxDepth.
	ErrTooDeep = errors.New("nested too deep")
	// ErrTooMany: more values than Limits.MaxElements in all.
	ErrTooMany = errors.New("too many elements")
	// ErrTooLarge: the data or one string is over Limits.MaxBytes or
	// Limits.MaxStringBytes.
	ErrTooLarge = errors.New("too large")
)

// DecodeError says why session data was refused and at which byte. It never
// holds the data itself.
type DecodeError struct {
	Handler Handler
	Offset  int
	Err     error // one of the Err* sentinels above
	Detail  string
}

func (e *DecodeError) Error() string {
	msg := fmt.Sprintf("session data (%s) at byte %d: %v", e.Handler, e.Offset, e.Err)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Limits bound what Decode accepts, so hostile data costs bounded time and
// memory. The zero value of each field means its default.
type Limits struct {
	// MaxBytes is the largest session data decoded. Default
	// DefaultMaxBytes.
	MaxBytes int
	// MaxDepth is how deep arrays may nest (the top level of the session is
	// depth 0). Default DefaultMaxDepth.
	MaxDepth int
	// MaxElements bounds the values in the whole session, every array
	// element counted once. Default DefaultMaxElements.
	MaxElements int
	// MaxStringBytes bounds one string. Default MaxBytes.
	MaxStringBytes int
}

// Defaults of Limits.
const (
	DefaultMaxBytes    = 256 << 10
	DefaultMaxDepth    = 32
	DefaultMaxElements = 10000
)

// WithDefaults fills the zero fields.
func (l Limits) WithDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxElements <= 0 {
		l.MaxElements = DefaultMaxElements
	}
	if l.MaxStringBytes <= 0 || l.MaxStringBytes > l.MaxBytes {
		l.MaxStringBytes = l.MaxBytes
	}
	return l
}

// parser reads PHP's serialize() format (ext/standard/var_unserializer.re)
// with objects and references refused.
type parser struct {
	h      Handler
	data   []byte
	pos    int
	lim    Limits
	values int // decoded so far, against lim.MaxElements
}

func (p *parser) fail(err error, detail string) error {
	return &DecodeError{Handler: p.h, Offset: p.pos, Err: err, Detail: detail}
}

func (p *parser) count() error {
	p.values++
	if p.values > p.lim.MaxElements {
		return p.fail(ErrTooMany, fmt.Sprintf("over %d values", p.lim.MaxElements))
	}
	return nil
}

// value parses one serialized value at depth (arrays inside it are at
// depth+1).
func (p *parser) value(depth int) (Value, error) {
	if err := p.count(); err != nil {
		return Value{}, err
	}
	if p.pos+1 >= len(p.data) {
		return Value{}, p.fail(ErrMalformed, "value expected")
	}
	tag := p.data[p.pos]
	switch tag {
	case 'O', 'C', 'E', 'o':
		return Value{}, p.fail(ErrObject, string(tag)+":")
	case 'r', 'R':
		return Value{}, p.fail(ErrReference, string(tag)+":")
	}
	if tag == 'N' {
		if p.data[p.pos+1] != ';' {
			return Value{}, p.fail(ErrMalformed, "N without ;")
		}
		p.pos += 2
		return Value{kind: KindNull}, nil
	}
	if p.data[p.pos+1] != ':' {
		return Value{}, p.fail(ErrMalformed, "type tag without :")
	}
	p.pos += 2
	switch tag {
	case 'b':
		if p.pos+1 < len(p.data) && (p.data[p.pos] == '0' || p.data[p.pos] == '1') && p.data[p.pos+1] == ';' {
			v := Value{kind: KindBool, b: p.data[p.pos] == '1'}
			p.pos += 2
			return v, nil
		}
		return Value{}, p.fail(ErrMalformed, "bool is not 0 or 1")
	case 'i':
		i, err := p.int(';')
		if err != nil {
			return Value{}, err
		}
		return Value{kind: KindInt, i: i}, nil
	case 'd':
		f, err := p.float()
		if err != nil {
			return Value{}, err
		}
		return Value{kind: KindFloat, f: f}, nil
	case 's', 'S':
		s, err := p.str(tag)
		if err != nil {
			return Value{}, err
		}
		if p.pos >= len(p.data) || p.data[p.pos] != ';' {
			return Value{}, p.fail(ErrMalformed, "string without ;")
		}
		p.pos++
		return Value{kind: KindString, s: s}, nil
	case 'a':
		a, err := p.array(depth + 1)
		if err != nil {
			return Value{}, err
		}
		return Value{kind: KindArray, a: a}, nil
	}
	p.pos -= 2
	return Value{}, p.fail(ErrMalformed, fmt.Sprintf("unknown type tag %q", tag))
}

// int reads [+-]?[0-9]+ followed by end. PHP clamps an out-of-range int
// with a warning; PHP never writes one, so here it is refused.
func (p *parser) int(end byte) (int64, error) {
	start := p.pos
	if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
		p.pos++
	}
	digits := p.pos
	for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
		p.pos++
	}
	if p.pos == digits || p.pos >= len(p.data) || p.data[p.pos] != end {
		return 0, p.fail(ErrMalformed, "bad integer")
	}
	s := p.data[start:p.pos]
	if s[0] == '+' {
		s = s[1:]
	}
	i, err := strconv.ParseInt(string(s), 10, 64)
	if err != nil {
		return 0, p.fail(ErrMalformed, "integer out of range")
	}
	p.pos++
	return i, nil
}

// uint reads [0-9]+ followed by end, bounded by max.
func (p *parser) uint(end byte, max int, what string) (int, error) {
	start := p.pos
	n := 0
	for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
		if n > max {
			return 0, p.fail(ErrTooLarge, what+" over the limit")
		}
		n = n*10 + int(p.data[p.pos]-'0')
		p.pos++
	}
	if p.pos == start || p.pos >= len(p.data) || p.data[p.pos] != end {
		return 0, p.fail(ErrMalformed, "bad "+what)
	}
	if n > max {
		return 0, p.fail(ErrTooLarge, what+" over the limit")
	}
	p.pos++
	return n, nil
}

// float reads PHP's float grammar: NAN, INF, -INF, or
// [+-]?(digits | digits.digits? | .digits)([eE][+-]?digits)?, then ';'.
func (p *parser) float() (float64, error) {
	rest := p.data[p.pos:]
	for _, sp := range []struct {
		lit string
		v   float64
	}{{"NAN;", math.NaN()}, {"INF;", math.Inf(1)}, {"-INF;", math.Inf(-1)}} {
		if len(rest) >= len(sp.lit) && string(rest[:len(sp.lit)]) == sp.lit {
			p.pos += len(sp.lit)
			return sp.v, nil
		}
	}
	i := 0
	if i < len(rest) && (rest[i] == '+' || rest[i] == '-') {
		i++
	}
	intDigits := digitsAt(rest, i)
	i += intDigits
	fracDigits := 0
	if i < len(rest) && rest[i] == '.' {
		i++
		fracDigits = digitsAt(rest, i)
		i += fracDigits
	}
	if intDigits == 0 && fracDigits == 0 {
		return 0, p.fail(ErrMalformed, "bad float")
	}
	if i < len(rest) && (rest[i] == 'e' || rest[i] == 'E') {
		i++
		if i < len(rest) && (rest[i] == '+' || rest[i] == '-') {
			i++
		}
		n := digitsAt(rest, i)
		if n == 0 {
			return 0, p.fail(ErrMalformed, "bad float exponent")
		}
		i += n
	}
	if i >= len(rest) || rest[i] != ';' {
		return 0, p.fail(ErrMalformed, "bad float")
	}
	f, err := strconv.ParseFloat(string(rest[:i]), 64)
	var ne *strconv.NumError
	if err != nil && !(errors.As(err, &ne) && ne.Err == strconv.ErrRange) {
		return 0, p.fail(ErrMalformed, "bad float")
	}
	// Out of range: ParseFloat gives ±Inf or 0 as PHP's zend_strtod does.
	p.pos += i + 1
	return f, nil
}

func digitsAt(b []byte, i int) int {
	n := 0
	for i+n < len(b) && b[i+n] >= '0' && b[i+n] <= '9' {
		n++
	}
	return n
}

// str reads len:"bytes" (tag s) or len:"escaped" (tag S, where \xx is a hex
// byte and len counts decoded bytes). The ; after it is the caller's.
func (p *parser) str(tag byte) (string, error) {
	n, err := p.uint(':', p.lim.MaxStringBytes, "string length")
	if err != nil {
		return "", err
	}
	if p.pos >= len(p.data) || p.data[p.pos] != '"' {
		return "", p.fail(ErrMalformed, "string without opening quote")
	}
	p.pos++
	var s string
	if tag == 's' {
		if n > len(p.data)-p.pos {
			return "", p.fail(ErrMalformed, "string runs past the end")
		}
		s = string(p.data[p.pos : p.pos+n])
		p.pos += n
	} else {
		if n > len(p.data)-p.pos {
			return "", p.fail(ErrMalformed, "string runs past the end")
		}
		b := make([]byte, 0, n)
		for len(b) < n {
			if p.pos >= len(p.data) {
				return "", p.fail(ErrMalformed, "string runs past the end")
			}
			c := p.data[p.pos]
			if c != '\\' {
				b = append(b, c)
				p.pos++
				continue
			}
			if p.pos+2 >= len(p.data) {
				return "", p.fail(ErrMalformed, "bad escape")
			}
			hi, ok1 := unhex(p.data[p.pos+1])
			lo, ok2 := unhex(p.data[p.pos+2])
			if !ok1 || !ok2 {
				return "", p.fail(ErrMalformed, "bad escape")
			}
			b = append(b, hi<<4|lo)
			p.pos += 3
		}
		s = string(b)
	}
	if p.pos >= len(p.data) || p.data[p.pos] != '"' {
		return "", p.fail(ErrMalformed, "string without closing quote")
	}
	p.pos++
	return s, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// array reads count:{key value ...} where each key is an int or a string.
func (p *parser) array(depth int) (*Array, error) {
	if depth > p.lim.MaxDepth {
		return nil, p.fail(ErrTooDeep, fmt.Sprintf("over %d levels", p.lim.MaxDepth))
	}
	// Each element takes at least 6 bytes ("i:0;N;"), so a
	// count the rest of the data cannot hold is refused before anything is
	// allocated for it.
	n, err := p.uint(':', p.lim.MaxElements, "array count")
	if err != nil {
		return nil, err
	}
	if n > (len(p.data)-p.pos)/6 {
		return nil, p.fail(ErrMalformed, "array count larger than the data")
	}
	if p.pos >= len(p.data) || p.data[p.pos] != '{' {
		return nil, p.fail(ErrMalformed, "array without {")
	}
	p.pos++
	a := &Array{keys: make([]Key, 0, n), vals: make([]Value, 0, n)}
	for range n {
		k, err := p.key()
		if err != nil {
			return nil, err
		}
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		a.set(k, v)
	}
	if p.pos >= len(p.data) || p.data[p.pos] != '}' {
		return nil, p.fail(ErrMalformed, "array without }")
	}
	p.pos++
	return a, nil
}

// key reads an array key: i:N; or s:N:"...";. A numeric string key becomes
// an int key, as PHP's unserialize makes it.
func (p *parser) key() (Key, error) {
	if p.pos+1 >= len(p.data) || p.data[p.pos+1] != ':' {
		return Key{}, p.fail(ErrMalformed, "array key expected")
	}
	switch tag := p.data[p.pos]; tag {
	case 'i':
		p.pos += 2
		i, err := p.int(';')
		if err != nil {
			return Key{}, err
		}
		return intKey(i), nil
	case 's', 'S':
		p.pos += 2
		s, err := p.str(tag)
		if err != nil {
			return Key{}, err
		}
		if p.pos >= len(p.data) || p.data[p.pos] != ';' {
			return Key{}, p.fail(ErrMalformed, "string without ;")
		}
		p.pos++
		return symtableKey(s), nil
	}
	return Key{}, p.fail(ErrMalformed, "array key is not an int or a string")
}
