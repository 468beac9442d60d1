package routes

import (
	"io"
	"testing"
)

// FuzzDecodeValidate feeds arbitrary file contents through what the
// watcher does with them: parse into a fresh viper, Decode, Validate,
// Compile, and use the table. None of it may panic, and Validate and
// Compile must agree. Seeds live in testdata/fuzz/FuzzDecodeValidate.
func FuzzDecodeValidate(f *testing.F) {
	f.Add([]byte(matchYAML))
	f.Add([]byte("routes:\n  - {name: a, path: \"/a/{id}\"}\n  - {name: b, path: \"/a/{x}/\"}\n"))
	f.Add([]byte("all_legacy: yes\nroutes: [1, {name: [x]}, {canary: {percent: .nan}}]\n"))
	reg := testRegistry()
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		c, err := Decode(v)
		if err != nil {
			if len(Problems(err)) == 0 {
				t.Fatalf("Decode error without problems: %v", err)
			}
			return
		}
		verr := c.Validate(reg)
		tb, cerr := Compile(c, reg)
		if (verr == nil) != (cerr == nil) || (cerr == nil) == (tb == nil) {
			t.Fatalf("Validate = %v but Compile = %v, %v", verr, tb, cerr)
		}
		if cerr != nil {
			if len(Problems(cerr)) == 0 {
				t.Fatal("Compile error without problems")
			}
			return
		}
		_ = tb.Describe()
		if err := tb.Fprint(io.Discard); err != nil {
			t.Fatal(err)
		}
		for _, r := range tb.Routes() {
			for _, m := range []string{"GET", "POST", "PROPFIND"} {
				ctx := newCtx(m, "example.com", r.Path)
				if got := tb.Match(ctx); got.Mode == "" {
					t.Fatalf("Match(%s %s) has no mode", m, r.Path)
				}
			}
		}
	})
}
