package compare

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzDiff compares arbitrary bodies as JSON and as text. Nothing may
// panic; a body equals itself; equality is symmetric; the tape parser
// accepts exactly what encoding/json does; every reported path parses
// back as a rule path. Seeds live in testdata/fuzz/FuzzDiff.
func FuzzDiff(f *testing.F) {
	f.Add([]byte(campaignBody), []byte(strings.Replace(campaignBody, "12.35", "12.3500", 1)), false)
	f.Add([]byte(`[1,[2,[3,{"a":[]}]]]`), []byte(`[[[{"a":[]},3],2],1]`), true)
	f.Add([]byte(`{"a\u0000b":"\ud83d\ude00"}`), []byte(`{"a\u0000b":"😀"}`), false)
	ordered, unordered := MustCompile(Rules{}), MustCompile(Rules{IgnoreArrayOrder: true, NumericTolerance: 0.01})
	f.Fuzz(func(t *testing.T, a, b []byte, unorderedMode bool) {
		c := ordered
		if unorderedMode {
			c = unordered
		}
		tp := getTape()
		err := tp.parse(string(a))
		putTape(tp)
		if (err == nil) != json.Valid(a) {
			t.Fatalf("parse error %v but json.Valid %v for %q", err, json.Valid(a), a)
		}
		for _, ct := range []string{"application/json", "text/plain"} {
			pa := Response{Status: 200, Body: a, ContentType: ct}
			pb := Response{Status: 200, Body: b, ContentType: ct}
			if r := c.Diff(pa, pa); !r.Equal() {
				t.Fatalf("%s body differs from itself: %+v", ct, r.Diffs)
			}
			ab, ba := c.Diff(pa, pb), c.Diff(pb, pa)
			if ab.Equal() != ba.Equal() {
				t.Fatalf("%s: Diff(a,b) equal %v but Diff(b,a) equal %v: %+v / %+v", ct, ab.Equal(), ba.Equal(), ab.Diffs, ba.Diffs)
			}
			for _, d := range ab.Diffs {
				for _, p := range []string{d.Path, d.Template} {
					if _, err := parseRulePath(p); err != nil {
						t.Fatalf("reported path %q does not parse: %v", p, err)
					}
				}
			}
		}
	})
}
