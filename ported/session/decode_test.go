package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestDecodeValues(t *testing.T) {
	top, err := Decode(PHPSerialize, []byte(`a:9:{s:4:"user";s:5:"alice";s:2:"id";i:42;s:5:"admin";b:1;s:3:"bal";d:-1.5;s:4:"none";N;`+
		`s:4:"cart";a:2:{i:0;a:1:{s:3:"sku";s:2:"A1";}s:1:"7";s:5:"seven";}s:3:"big";d:1.0E+25;s:3:"esc";S:3:"\41\00b";s:1:"u";d:INF;}`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	s := &Session{Array: top}
	if v, ok := s.String("user"); !ok || v != "alice" {
		t.Errorf(`String("user") = %q, %v`, v, ok)
	}
	if v, ok := s.Int("id"); !ok || v != 42 {
		t.Errorf(`Int("id") = %d, %v`, v, ok)
	}
	if _, ok := s.String("id"); ok {
		t.Error(`String("id") of an int: ok, want no PHP-style coercion`)
	}
	if v, ok := s.Bool("admin"); !ok || !v {
		t.Errorf(`Bool("admin") = %v, %v`, v, ok)
	}
	if v, ok := s.Float("bal"); !ok || v != -1.5 {
		t.Errorf(`Float("bal") = %v, %v`, v, ok)
	}
	if v, ok := s.Get("none"); !ok || !v.IsNull() {
		t.Errorf(`Get("none") = %v kind %v, %v`, v, v.Kind(), ok)
	}
	if _, ok := s.Get("missing"); ok {
		t.Error(`Get("missing"): ok`)
	}
	if v, ok := s.Lookup("cart", "0", "sku"); !ok {
		t.Error(`Lookup("cart", "0", "sku"): not found`)
	} else if sku, _ := v.AsString(); sku != "A1" {
		t.Errorf(`Lookup("cart", "0", "sku") = %q`, sku)
	}
	cart, ok := s.Map("cart")
	if !ok || cart.Len() != 2 {
		t.Fatalf(`Map("cart") = %v, %v`, cart.Len(), ok)
	}
	// "7" was a string key in the data: PHP makes it the int 7.
	if v, ok := cart.Index(7); !ok {
		t.Error("cart[7]: not found")
	} else if str, _ := v.AsString(); str != "seven" {
		t.Errorf("cart[7] = %q", str)
	}
	var keys []string
	for k := range cart.All() {
		keys = append(keys, fmt.Sprintf("%s/%v", k, k.IsInt()))
	}
	if strings.Join(keys, ",") != "0/true,7/true" {
		t.Errorf("cart keys %v", keys)
	}
	if v, _ := s.Float("big"); v != 1e25 {
		t.Errorf("big = %v", v)
	}
	if v, _ := s.String("esc"); v != "A\x00b" {
		t.Errorf("S: escaped string = %q", v)
	}
	if v, _ := s.Float("u"); !math.IsInf(v, 1) {
		t.Errorf("INF = %v", v)
	}
}

// TestDecodeRefuses: hostile or broken data is an error saying what and
// where, never a panic, for every handler.
func TestDecodeRefuses(t *testing.T) {
	deep := strings.Repeat("a:1:{i:0;", 40) + "N;" + strings.Repeat("}", 40)
	tests := []struct {
		name string
		h    Handler
		give string
		lim  Limits
		want error
	}{
		{"object", PHPSerialize, `a:1:{s:1:"o";O:8:"stdClass":0:{}}`, Limits{}, ErrObject},
		{"top-level object", PHPSerialize, `O:8:"stdClass":0:{}`, Limits{}, ErrObject},
		{"custom object", PHP, `x|C:3:"Foo":0:{}`, Limits{}, ErrObject},
		{"enum", PHP, `x|E:7:"Foo:Bar";`, Limits{}, ErrObject},
		{"reference", PHPSerialize, `a:2:{i:0;s:1:"a";i:1;R:2;}`, Limits{}, ErrReference},
		{"object reference", PHP, `a|i:1;b|r:1;`, Limits{}, ErrReference},
		{"deep nesting", PHPSerialize, deep, Limits{}, ErrTooDeep},
		{"deep nesting php", PHP, "x|" + deep, Limits{}, ErrTooDeep},
		{"huge count", PHPSerialize, `a:99999999999:{}`, Limits{}, ErrTooLarge},
		{"count over the data", PHPSerialize, `a:5000:{i:0;N;}`, Limits{}, ErrMalformed},
		{"too many elements", PHPSerialize, `a:1:{i:0;a:3:{i:0;N;i:1;N;i:2;N;}}`, Limits{MaxElements: 3}, ErrTooMany},
		{"string over the limit", PHPSerialize, `a:1:{i:0;s:20:"` + strings.Repeat("x", 20) + `";}`, Limits{MaxStringBytes: 10}, ErrTooLarge},
		{"string length past the end", PHPSerialize, `a:1:{i:0;s:2000:"x";}`, Limits{}, ErrMalformed},
		{"huge string length", PHPSerialize, `a:1:{i:0;s:99999999999999999999:"x";}`, Limits{}, ErrTooLarge},
		{"data over the limit", PHPSerialize, `a:0:{}` + strings.Repeat(" ", 100), Limits{MaxBytes: 50}, ErrTooLarge},
		{"not an array", PHPSerialize, `i:5;`, Limits{}, ErrMalformed},
		{"truncated", PHPSerialize, `a:1:{s:4:"user";s:5:"ali`, Limits{}, ErrMalformed},
		{"missing close", PHPSerialize, `a:1:{i:0;N;`, Limits{}, ErrMalformed},
		{"bad bool", PHP, `x|b:2;`, Limits{}, ErrMalformed},
		{"int overflow", PHP, `x|i:9223372036854775808;`, Limits{}, ErrMalformed},
		{"bad float", PHP, `x|d:1e;`, Limits{}, ErrMalformed},
		{"hex float", PHP, `x|d:0x10;`, Limits{}, ErrMalformed},
		{"float key", PHPSerialize, `a:1:{d:1.5;N;}`, Limits{}, ErrMalformed},
		{"array key", PHPSerialize, `a:1:{a:0:{}N;}`, Limits{}, ErrMalformed},
		{"unknown tag", PHP, `x|z:1;`, Limits{}, ErrMalformed},
		{"bad escape", PHP, `x|S:1:"\zz";`, Limits{}, ErrMalformed},
		{"value missing after name", PHP, `x|`, Limits{}, ErrMalformed},
		{"binary name past the end", PHPBinary, "\x7fab", Limits{}, ErrMalformed},
		{"binary bad value", PHPBinary, "\x01xq:1;", Limits{}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.h, []byte(tt.give), tt.lim)
			var de *DecodeError
			if !errors.As(err, &de) || !errors.Is(err, tt.want) {
				t.Fatalf("Decode = %v, want a DecodeError wrapping %v", err, tt.want)
			}
			if de.Offset < 0 || de.Offset > len(tt.give) {
				t.Errorf("offset %d outside the data", de.Offset)
			}
		})
	}
}

// TestDecodeLikePHP pins behaviours of PHP's decoders that the PHP
// cross-check cannot reach (PHP never writes them).
func TestDecodeLikePHP(t *testing.T) {
	tests := []struct {
		name string
		h    Handler
		give string
		want string // re-encoded with php_serialize
	}{
		{"php: trailing bytes without | are ignored", PHP, `a|i:1;garbage`, `a:1:{s:1:"a";i:1;}`},
		{"php: a repeated name keeps its place, later value", PHP, `a|i:1;b|i:2;a|i:3;`, `a:2:{s:1:"a";i:3;s:1:"b";i:2;}`},
		{"php: empty name", PHP, `|i:1;`, `a:1:{s:0:"";i:1;}`},
		{"php_serialize: bytes after the array are ignored", PHPSerialize, `a:1:{i:0;N;}xyz`, `a:1:{i:0;N;}`},
		{"repeated key", PHPSerialize, `a:2:{s:1:"k";i:1;s:1:"k";i:2;}`, `a:1:{s:1:"k";i:2;}`},
		{"numeric string key", PHPSerialize, `a:3:{s:1:"5";i:1;s:2:"05";i:2;s:2:"-0";i:3;}`, `a:3:{i:5;i:1;s:2:"05";i:2;s:2:"-0";i:3;}`},
		{"php_binary: undefined bit ignored", PHPBinary, "\x81xi:1;", `a:1:{s:1:"x";i:1;}`},
		{"plus sign int", PHP, `a|i:+5;`, `a:1:{s:1:"a";i:5;}`},
		{"float forms", PHPSerialize, `a:4:{i:0;d:1.;i:1;d:.5;i:2;d:-1E3;i:3;d:1e999;}`, `a:4:{i:0;d:1;i:1;d:0.5;i:2;d:-1000;i:3;d:INF;}`},
		{"empty data", PHP, ``, `a:0:{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top, err := Decode(tt.h, []byte(tt.give), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := Encode(PHPSerialize, top)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestRedacted: session values never print or marshal, through fmt,
// encoding/json or zap.
func TestRedacted(t *testing.T) {
	top, err := Decode(PHP, []byte(`user|s:12:"secret-alice";`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	s := &Session{Array: top, id: "abcdefghijklmnopqrstuvwxyz"}
	v, _ := s.Get("user")
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(core)
	log.Info("x", zap.Any("session", s), zap.Any("array", top), zap.Any("value", v), zap.Reflect("r", s))
	js, _ := json.Marshal(map[string]any{"s": s, "v": v, "a": top})
	var sb strings.Builder
	for _, e := range logs.All() {
		for k, f := range e.ContextMap() {
			fmt.Fprintf(&sb, "%s=%v ", k, f)
		}
	}
	for _, out := range []string{
		fmt.Sprintf("%v %+v %#v %s %q %x", s, s, s, s, s, s),
		fmt.Sprintf("%v %+v %#v %s %d", v, v, v, v, v),
		fmt.Sprint(top, *top, []any{v}),
		string(js),
		sb.String(),
	} {
		if strings.Contains(out, "secret") || strings.Contains(out, "abcdefghij") {
			t.Errorf("session data leaked: %s", out)
		}
		if !strings.Contains(out, redacted) {
			t.Errorf("no redaction marker in %s", out)
		}
	}
}
