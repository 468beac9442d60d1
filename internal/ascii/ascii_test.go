package ascii

import (
	"strings"
	"testing"
)

func TestEqualFoldFoldsASCIIOnly(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"Content-Length", "content-length", true},
		{"TRANSFER-ENCODING", "Transfer-Encoding", true},
		{"Host", "Hosts", false},
		{"Host", "Hort", false},
		{"", "", true},
		{"Ho\u017ft", "Host", false}, // ſ: strings.EqualFold says true
		{"\u212a", "k", false},       // Kelvin sign
		{"a[", "A{", false},          // '[' and '{' are not a case pair
		{"@", "`", false},
	} {
		if got := EqualFoldString(tt.a, tt.b); got != tt.want {
			t.Errorf("EqualFoldString(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := EqualFold([]byte(tt.a), tt.b); got != tt.want {
			t.Errorf("EqualFold(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := EqualFoldBytes([]byte(tt.a), []byte(tt.b)); got != tt.want {
			t.Errorf("EqualFoldBytes(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
	if !strings.EqualFold("Ho\u017ft", "Host") {
		t.Fatal("the case above no longer shows why this package folds by itself")
	}
}

func TestTokenCharsAndHex(t *testing.T) {
	const tchars = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for c := range 256 {
		b := byte(c)
		if got, want := IsTokenChar(b), strings.IndexByte(tchars, b) >= 0; got != want {
			t.Errorf("IsTokenChar(%q) = %v, want %v", b, got, want)
		}
		const hex = "0123456789abcdefABCDEF"
		i := strings.IndexByte(hex, b)
		if got := IsHex(b); got != (i >= 0) {
			t.Errorf("IsHex(%q) = %v", b, got)
		}
		if i >= 0 {
			want := byte(i)
			if i >= 16 {
				want = byte(i - 6)
			}
			if got := Unhex(b); got != want {
				t.Errorf("Unhex(%q) = %d, want %d", b, got, want)
			}
		}
		want := b
		if 'A' <= b && b <= 'Z' {
			want = b + 'a' - 'A'
		}
		if got := Lower(b); got != want {
			t.Errorf("Lower(%q) = %q, want %q", b, got, want)
		}
	}
}
