package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// FuzzValidate checks that Validate never panics, that its parser accepts
// exactly what PHP's json_decode($s, false, 512) accepts — with jsontext
// (strict RFC 8259, UTF-8 and surrogate checks) plus PHP's two extra limits
// as the oracle — and that every accepted event forwards as valid JSON
// without the raw e-mail. Seeds: testdata/fuzz/FuzzValidate.
func FuzzValidate(f *testing.F) {
	set := fixtureCampaigns(f)
	f.Add(purchase().bytes())
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, vs, err := Validate(raw, fixedNow, set)
		parsed := err == nil || errors.Is(err, ErrNotObject)
		if want := phpAccepts(raw); parsed != want {
			t.Fatalf("parsed=%v (err %v), json_decode would accept=%v: %q", parsed, err, want, raw)
		}
		if !utf8.Valid(raw) != errors.Is(err, ErrInvalidUTF8) {
			t.Fatalf("UTF-8 valid=%v but err %v", utf8.Valid(raw), err)
		}
		if err != nil {
			return
		}
		for _, v := range vs {
			if v.Code == "" || v.Message == "" || !utf8.ValidString(v.Field) {
				t.Fatalf("bad violation %+v", v)
			}
		}
		if len(vs) > 0 {
			return
		}
		out := ev.AppendJSON(nil, "id", fixedNow)
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("forwarded event is not JSON: %v\n%s", err, out)
		}
		if _, ok := m["email"]; ok || ev.UserID == "" || ev.Country == "" || ev.Type == "" {
			t.Fatalf("forwarded event %s", out)
		}
	})
}

// phpAccepts is the oracle: RFC 8259 as jsontext checks it (duplicate names
// allowed), at most 511 nested arrays/objects, and no member name starting
// with U+0000 (which PHP cannot turn into a stdClass property).
func phpAccepts(raw []byte) bool {
	if !jsontext.Value(raw).IsValid(jsontext.AllowDuplicateNames(true)) {
		return false
	}
	dec := jsontext.NewDecoder(bytes.NewReader(raw), jsontext.AllowDuplicateNames(true))
	for {
		tok, err := dec.ReadToken()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
		depth := dec.StackDepth()
		if depth > maxNesting {
			return false
		}
		if kind, n := dec.StackIndex(depth); tok.Kind() == '"' && kind == '{' && n%2 == 1 && strings.HasPrefix(tok.String(), "\x00") {
			return false
		}
	}
}

func TestOracleAgreesOnParseCases(t *testing.T) {
	for _, c := range parseCases() {
		if got, want := phpAccepts([]byte(c.give)), c.want == nil || c.want == ErrNotObject; got != want {
			t.Errorf("%s: oracle %v, want %v", c.name, got, want)
		}
	}
}
