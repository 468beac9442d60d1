package wsframe

import (
	"bytes"
	"strings"
	"testing"
)

func TestRoundTripEveryLengthForm(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		for _, masked := range []bool{false, true} {
			payload := bytes.Repeat([]byte{0xa5}, n)
			frame := Encode(Binary, payload, masked)
			if got := frame[1]&0x80 != 0; got != masked {
				t.Fatalf("n=%d: mask bit %v, want %v", n, got, masked)
			}
			op, got, err := Decode(bytes.NewReader(frame))
			if err != nil || op != Binary || !bytes.Equal(got, payload) {
				t.Fatalf("n=%d masked=%v: op %x, %d bytes, %v", n, masked, op, len(got), err)
			}
		}
	}
}

func TestDecodeRefusesAHugeLength(t *testing.T) {
	frame := []byte{0x82, 127, 0, 0, 0, 0, 0x10, 0, 0, 1} // 256 MiB + 1
	if _, _, err := Decode(bytes.NewReader(frame)); err == nil || !strings.Contains(err.Error(), "frame of") {
		t.Fatalf("err %v, want the length refused", err)
	}
}

func TestAcceptIsTheRFCExample(t *testing.T) {
	// RFC 6455 §1.3.
	if got := Accept("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("Accept = %q", got)
	}
}
