package session

import (
	"fmt"
	"iter"
	"strconv"
)

// Kind is the PHP type of a decoded value. Objects and references are never
// decoded, so they have no kind.
type Kind uint8

// The kinds of value a PHP session can hold once objects and references are
// refused.
const (
	KindNull Kind = iota
	KindBool
	KindInt
	KindFloat
	KindString
	KindArray
)

var kindNames = [...]string{"null", "bool", "int", "float", "string", "array"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is one decoded PHP value. It is immutable: the getters return
// copies or read-only views, so a handler cannot change what another
// handler of the same request reads.
//
// A Value never prints or marshals its content: fmt shows "[redacted]" and
// encoding/json (and so zap.Any) writes "[redacted]". Session data holds
// what the monolith considered private; it must not reach logs by accident.
type Value struct {
	kind Kind
	b    bool
	i    int64
	f    float64
	s    string
	a    *Array
}

// Kind says which getter answers.
func (v Value) Kind() Kind { return v.kind }

// IsNull reports a PHP null (also the zero Value).
func (v Value) IsNull() bool { return v.kind == KindNull }

// AsBool returns the value if it is a bool. There is no PHP-style
// coercion: a handler that wants "truthy" must say so itself.
func (v Value) AsBool() (bool, bool) { return v.b, v.kind == KindBool }

// AsInt returns the value if it is an int.
func (v Value) AsInt() (int64, bool) { return v.i, v.kind == KindInt }

// AsFloat returns the value if it is a float.
func (v Value) AsFloat() (float64, bool) { return v.f, v.kind == KindFloat }

// AsString returns the value if it is a string. PHP strings are bytes; the
// result is not guaranteed to be valid UTF-8.
func (v Value) AsString() (string, bool) { return v.s, v.kind == KindString }

// AsArray returns the value if it is an array.
func (v Value) AsArray() (*Array, bool) { return v.a, v.kind == KindArray }

// Format redacts: see Value.
func (v Value) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON redacts: see Value.
func (v Value) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

const redacted = "[redacted]"

// Key is an array key: an int or a string, as in PHP. A numeric string such
// as "5" is stored as the int 5 (PHP does the same when it unserializes),
// so every key has one spelling.
type Key struct {
	s     string // the key as PHP would print it ("5" for the int 5)
	i     int64
	isInt bool
}

// IsInt reports an int key.
func (k Key) IsInt() bool { return k.isInt }

// Int is the key's value when IsInt.
func (k Key) Int() int64 { return k.i }

// String is the key as PHP prints it. Keys are names, not data, so they are
// not redacted.
func (k Key) String() string { return k.s }

func intKey(i int64) Key { return Key{s: strconv.FormatInt(i, 10), i: i, isInt: true} }

// symtableKey is PHP's ZEND_HANDLE_NUMERIC_STR: a string holding a
// canonical decimal int ("5", "-3", not "05", "-0" or "+1") becomes an
// int key.
func symtableKey(s string) Key {
	if i, ok := canonicalInt(s); ok {
		return Key{s: s, i: i, isInt: true}
	}
	return Key{s: s}
}

func canonicalInt(s string) (int64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	d := s
	if d[0] == '-' {
		d = d[1:]
	}
	if d == "" || (d[0] == '0' && (len(d) > 1 || len(s) > 1)) {
		return 0, false // "", "05", "-0"
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return 0, false
		}
	}
	i, err := strconv.ParseInt(s, 10, 64)
	return i, err == nil
}

// Array is a PHP array: ordered, keyed by ints and strings. It is
// read-only once decoded.
type Array struct {
	keys  []Key
	vals  []Value
	index map[string]int // built for arrays past linearMax entries
}

// linearMax is the size up to which a lookup scans instead of hashing: a
// session's top level usually holds a handful of names.
const linearMax = 8

// Len is the number of elements.
func (a *Array) Len() int {
	if a == nil {
		return 0
	}
	return len(a.keys)
}

// Get returns the element under key, looked up as PHP's $arr['key'] would:
// "5" finds the int key 5.
func (a *Array) Get(key string) (Value, bool) {
	if a == nil {
		return Value{}, false
	}
	if a.index != nil {
		i, ok := a.index[key]
		if !ok {
			return Value{}, false
		}
		return a.vals[i], true
	}
	for i := range a.keys {
		if a.keys[i].s == key {
			return a.vals[i], true
		}
	}
	return Value{}, false
}

// Index returns the element under the int key i.
func (a *Array) Index(i int64) (Value, bool) { return a.Get(strconv.FormatInt(i, 10)) }

// Lookup follows a path of keys through nested arrays:
// Lookup("cart", "items", "0") is $arr['cart']['items'][0].
func (a *Array) Lookup(path ...string) (Value, bool) {
	cur := a
	var v Value
	for n, k := range path {
		var ok bool
		if v, ok = cur.Get(k); !ok {
			return Value{}, false
		}
		if n < len(path)-1 {
			if cur, ok = v.AsArray(); !ok {
				return Value{}, false
			}
		}
	}
	return v, len(path) > 0
}

// String returns the string under key; false when missing or not a string.
func (a *Array) String(key string) (string, bool) {
	v, _ := a.Get(key)
	return v.AsString()
}

// Int returns the int under key; false when missing or not an int.
func (a *Array) Int(key string) (int64, bool) {
	v, _ := a.Get(key)
	return v.AsInt()
}

// Bool returns the bool under key; false when missing or not a bool.
func (a *Array) Bool(key string) (bool, bool) {
	v, _ := a.Get(key)
	return v.AsBool()
}

// Float returns the float under key; false when missing or not a float.
func (a *Array) Float(key string) (float64, bool) {
	v, _ := a.Get(key)
	return v.AsFloat()
}

// Map returns the nested array under key; false when missing or not an
// array.
func (a *Array) Map(key string) (*Array, bool) {
	v, _ := a.Get(key)
	return v.AsArray()
}

// All yields the elements in PHP's order.
func (a *Array) All() iter.Seq2[Key, Value] {
	return func(yield func(Key, Value) bool) {
		if a == nil {
			return
		}
		for i := range a.keys {
			if !yield(a.keys[i], a.vals[i]) {
				return
			}
		}
	}
}

// Format redacts: see Value.
func (Array) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON redacts: see Value.
func (Array) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// set adds or replaces key, as PHP's unserialize does for a repeated key:
// the later value wins, in the earlier one's place.
func (a *Array) set(k Key, v Value) {
	if a.index != nil {
		if i, ok := a.index[k.s]; ok {
			a.vals[i] = v
			return
		}
	} else {
		for i := range a.keys {
			if a.keys[i].s == k.s {
				a.vals[i] = v
				return
			}
		}
	}
	a.keys = append(a.keys, k)
	a.vals = append(a.vals, v)
	if a.index != nil {
		a.index[k.s] = len(a.keys) - 1
	} else if len(a.keys) > linearMax {
		a.index = make(map[string]int, len(a.keys)*2)
		for i, k := range a.keys {
			a.index[k.s] = i
		}
	}
}
