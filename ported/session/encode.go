package session

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Constructors of values for writing a session back.

// NullValue is PHP's null.
func NullValue() Value { return Value{} }

// BoolValue is a PHP bool.
func BoolValue(b bool) Value { return Value{kind: KindBool, b: b} }

// IntValue is a PHP int.
func IntValue(i int64) Value { return Value{kind: KindInt, i: i} }

// FloatValue is a PHP float.
func FloatValue(f float64) Value { return Value{kind: KindFloat, f: f} }

// StringValue is a PHP string.
func StringValue(s string) Value { return Value{kind: KindString, s: s} }

// ArrayValue is a PHP array; a nil a is an empty one.
func ArrayValue(a *Array) Value {
	if a == nil {
		a = &Array{}
	}
	return Value{kind: KindArray, a: a}
}

// With returns a copy of a with key set to v (a numeric key such as "5" is
// the int 5, as in PHP); a itself is unchanged.
func (a *Array) With(key string, v Value) *Array {
	out := a.clone()
	out.set(symtableKey(key), v)
	return out
}

// Without returns a copy of a without key.
func (a *Array) Without(key string) *Array {
	out := &Array{}
	for k, v := range a.All() {
		if k.s != key {
			out.set(k, v)
		}
	}
	return out
}

func (a *Array) clone() *Array {
	out := &Array{}
	if a == nil {
		return out
	}
	out.keys = append(make([]Key, 0, len(a.keys)+1), a.keys...)
	out.vals = append(make([]Value, 0, len(a.vals)+1), a.vals...)
	if a.index != nil {
		out.index = make(map[string]int, len(a.index)+1)
		for k, i := range a.index {
			out.index[k] = i
		}
	}
	return out
}

// Encode writes top as PHP's serialize handler h would
// (PS_SERIALIZER_ENCODE_FUNC), byte for byte. It refuses what PHP would
// skip with a warning (a name holding '|' for php, a name over 127 bytes
// for php_binary), so a write never loses a variable silently.
func Encode(h Handler, top *Array) ([]byte, error) {
	var b []byte
	switch h {
	case PHPSerialize:
		b = appendValue(b, ArrayValue(top))
	case PHP:
		for k, v := range top.All() {
			if k.isInt {
				return nil, fmt.Errorf("session: numeric name %s, which PHP's php and php_binary handlers skip", k.s)
			}
			if strings.ContainsAny(k.s, "|") {
				return nil, fmt.Errorf("session: name %q holds '|', which the php serialize handler cannot store", k.s)
			}
			b = append(b, k.s...)
			b = append(b, '|')
			b = appendValue(b, v)
		}
	case PHPBinary:
		for k, v := range top.All() {
			if k.isInt {
				return nil, fmt.Errorf("session: numeric name %s, which PHP's php and php_binary handlers skip", k.s)
			}
			if len(k.s) > 127 {
				return nil, fmt.Errorf("session: a name of %d bytes is over php_binary's 127", len(k.s))
			}
			b = append(b, byte(len(k.s)))
			b = append(b, k.s...)
			b = appendValue(b, v)
		}
	default:
		return nil, fmt.Errorf("session: unknown serialize handler %q", h)
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// appendValue is php_var_serialize for the kinds a session can hold.
func appendValue(b []byte, v Value) []byte {
	switch v.kind {
	case KindNull:
		return append(b, "N;"...)
	case KindBool:
		if v.b {
			return append(b, "b:1;"...)
		}
		return append(b, "b:0;"...)
	case KindInt:
		b = append(b, "i:"...)
		b = strconv.AppendInt(b, v.i, 10)
		return append(b, ';')
	case KindFloat:
		b = append(b, "d:"...)
		b = appendPHPFloat(b, v.f)
		return append(b, ';')
	case KindString:
		b = appendString(b, v.s)
		return append(b, ';')
	case KindArray:
		b = append(b, "a:"...)
		b = strconv.AppendInt(b, int64(v.a.Len()), 10)
		b = append(b, ":{"...)
		for k, e := range v.a.All() {
			if k.isInt {
				b = append(b, "i:"...)
				b = strconv.AppendInt(b, k.i, 10)
				b = append(b, ';')
			} else {
				b = appendString(b, k.s)
				b = append(b, ';')
			}
			b = appendValue(b, e)
		}
		return append(b, '}')
	}
	return append(b, "N;"...)
}

func appendString(b []byte, s string) []byte {
	b = append(b, "s:"...)
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ":\""...)
	b = append(b, s...)
	return append(b, '"')
}

// appendPHPFloat writes f as serialize() does with serialize_precision =
// -1 (zend_gcvt over the shortest round-trip digits, precision 17):
// exponent form when the decimal exponent is below -4 or above 17, with at
// least one fractional digit ("1.0E+25"); plain digits otherwise, without
// a trailing ".0" ("100", "0.0001").
func appendPHPFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NAN"...)
	case math.IsInf(f, 1):
		return append(b, "INF"...)
	case math.IsInf(f, -1):
		return append(b, "-INF"...)
	}
	if f == 0 {
		if math.Signbit(f) {
			return append(b, "-0"...)
		}
		return append(b, '0')
	}
	e := strconv.AppendFloat(nil, f, 'e', -1, 64) // "-1.2345e+17"
	neg := e[0] == '-'
	if neg {
		e = e[1:]
	}
	mant, exp, _ := strings.Cut(string(e), "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	decpt := x + 1 // f = 0.digits × 10^decpt
	if neg {
		b = append(b, '-')
	}
	if decpt < -3 || decpt > 17 {
		b = append(b, digits[0], '.')
		if len(digits) > 1 {
			b = append(b, digits[1:]...)
		} else {
			b = append(b, '0')
		}
		b = append(b, 'E')
		if x >= 0 {
			b = append(b, '+')
		}
		return strconv.AppendInt(b, int64(x), 10)
	}
	switch {
	case decpt <= 0:
		b = append(b, "0."...)
		for range -decpt {
			b = append(b, '0')
		}
		return append(b, digits...)
	case decpt >= len(digits):
		b = append(b, digits...)
		for range decpt - len(digits) {
			b = append(b, '0')
		}
		return b
	}
	b = append(b, digits[:decpt]...)
	b = append(b, '.')
	return append(b, digits[decpt:]...)
}
