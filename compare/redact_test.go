package compare

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// The indexed scan finds exactly what a scan for every part finds.
func TestPartIndexAgreesWithScan(t *testing.T) {
	naive := func(parts []string, s string) bool {
		for _, p := range parts {
			if containsFold(s, p) {
				return true
			}
		}
		return false
	}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := "aAeEkKnNoOsStTpPcCrRdDwW_-.[]\"é"
	for _, parts := range [][]string{secretKeyParts[:], credentialParts[:]} {
		x := newPartIndex(parts)
		var cases []string
		for _, p := range parts {
			cases = append(cases, p, strings.ToUpper(p), "x_"+p, p[:len(p)-1], "body.user."+strings.ToUpper(p[:1])+p[1:]+"_id")
		}
		for range 20000 {
			b := make([]byte, r.IntN(16))
			for i := range b {
				b[i] = alphabet[r.IntN(len(alphabet))]
			}
			cases = append(cases, string(b))
		}
		for _, s := range cases {
			if got, want := x.in(s), naive(parts, s); got != want {
				t.Fatalf("%q: indexed %v, scan %v", s, got, want)
			}
		}
	}
}
