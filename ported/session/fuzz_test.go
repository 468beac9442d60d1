package session

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecode: no input panics or escapes the limits, and whatever decodes
// encodes to bytes that decode to the same tree (checked through
// php_serialize, and through the handler itself when it can hold the names).
// Seeds: testdata/fuzz/FuzzDecode (PHP-written sessions and hostile ones).
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`user|s:5:"alice";`), uint8(1))
	f.Add([]byte(`a:1:{s:4:"user";s:5:"alice";}`), uint8(0))
	f.Add([]byte("\x04useri:1;"), uint8(2))
	lim := Limits{MaxBytes: 1 << 16, MaxDepth: 16, MaxElements: 2000}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		h := handlers[int(which)%len(handlers)]
		top, err := Decode(h, data, lim)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DecodeError", err)
			}
			return
		}
		canon, err := Encode(PHPSerialize, top)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(PHPSerialize, canon, Limits{MaxBytes: len(canon) + 1, MaxDepth: 17, MaxElements: 2000})
		if err != nil {
			t.Fatalf("re-decoding %q: %v", canon, err)
		}
		// One trip may turn a top-level name "0" of the php handlers into
		// the int key 0 (PHP's unserialize does the same); after that the
		// bytes are a fixed point.
		first, _ := Encode(PHPSerialize, back)
		again, err := Decode(PHPSerialize, first, Limits{MaxBytes: len(first) + 1, MaxDepth: 17, MaxElements: 2000})
		if err != nil {
			t.Fatalf("re-decoding %q: %v", first, err)
		}
		if second, _ := Encode(PHPSerialize, again); !bytes.Equal(second, first) {
			t.Fatalf("round trip changed %q into %q", first, second)
		}
		if own, err := Encode(h, top); err == nil {
			back, err := Decode(h, own, Limits{MaxBytes: len(own) + 1, MaxDepth: 17, MaxElements: 2000})
			if err != nil {
				t.Fatalf("re-decoding %q with %s: %v", own, h, err)
			}
			if again, _ := Encode(PHPSerialize, back); !bytes.Equal(again, canon) {
				t.Fatalf("%s round trip changed %q into %q", h, canon, again)
			}
		}
	})
}
