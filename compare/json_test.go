package compare

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
)

// TestTapeMatchesTokenStream: for valid documents the tape says what
// encoding/json's token stream says, in the same order (kinds, member
// keys decoded, strings, number literals), every container's member count
// and subtree end are right, and the offsets cut the text where they say:
// a container's gap and closing text hold only whitespace, separators and
// the member's key as spelled.
func TestTapeMatchesTokenStream(t *testing.T) {
	docs := []string{
		campaignBody, `{}`, `[]`, `""`, `-0.5e-3`, ` true `, `null`,
		`[[],{},[{}],{"a":[]},[[[1]]],{"a":{"b":{"c":null}}}]`,
		` { "a" : [ 1 , 2 ,{ "b" :"x"} ] ,"c":{ } , "d" : [ ] } `,
		"\t[\n1\r\n,\n\"\\u00e9\\\"\\\\\\/\"\n]\n",
		`{"k\u00e9y":1,"a\"b":{"\ud83d\ude00":[true,false]},"":""}`,
		`{"a":1,"a":2}`,
		strings.Repeat(`[{"x":`, 300) + `0` + strings.Repeat(`}]`, 300),
	}
	var list bytes.Buffer
	for i := range 50 {
		fmt.Fprintf(&list, `%s{"i":%d,"v":[%d.5,"s%d",{"n":null}]}`, map[bool]string{true: "[", false: ","}[i == 0], i, i, i)
	}
	docs = append(docs, list.String()+"]")
	for _, doc := range docs {
		tp := getTape()
		if err := tp.parse(doc); err != nil {
			t.Fatalf("parse(%.40q): %v", doc, err)
		}
		var got []string
		if end := tapeTokens(t, tp, 0, &got); end != int32(len(tp.nodes)) {
			t.Errorf("%.40q: the root's subtree ends at %d of %d nodes", doc, end, len(tp.nodes))
		}
		if want := decoderTokens(t, doc); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%.40q:\ntape    %v\ndecoder %v", doc, got, want)
		}
		putTape(tp)
	}
}

// tapeTokens appends node i's tokens as decoderTokens spells them, checks
// its counts and offsets, and returns the index just past its subtree.
func tapeTokens(t *testing.T, tp *tape, i int32, out *[]string) int32 {
	t.Helper()
	nd := tp.nodes[i]
	text := tp.src[nd.start:nd.stop]
	switch nd.kind {
	case jObject, jArray:
		open, closing := "{", "}"
		if nd.kind == jArray {
			open, closing = "[", "]"
		}
		if text[:1] != open || text[len(text)-1:] != closing {
			t.Errorf("container text %.40q", text)
		}
		*out = append(*out, open)
		c, n, prev := i+1, int32(0), nd.start+1
		for c < nd.end {
			cn := tp.nodes[c]
			// Between the previous entry (or the opening byte) and this
			// entry's gap: whitespace and one ',' (none before the first).
			sep := strings.Trim(tp.src[prev:cn.gap], " \t\r\n")
			if n == 0 && (cn.gap != nd.start+1) || n > 0 && sep != "," {
				t.Errorf("entry %d of %.40q: gap at %d after %q", n, text, cn.gap, tp.src[prev:cn.gap])
			}
			before := strings.Trim(tp.src[cn.gap:cn.start], " \t\r\n")
			if nd.kind == jObject {
				// The key as spelled, then ':'; it decodes to the key.
				spelled := strings.TrimRight(strings.TrimSuffix(before, ":"), " \t\r\n")
				var key string
				if err := json.Unmarshal([]byte(spelled), &key); err != nil || !strings.HasSuffix(before, ":") || key != tp.key(c) ||
					!cn.kesc && tp.src[cn.koff-1:cn.koff+cn.klen+1] != spelled {
					t.Errorf("member %d of %.40q: text before the value %q, key %q (%v)", n, text, before, tp.key(c), err)
				}
				*out = append(*out, "key:"+tp.key(c))
			} else if before != "" {
				t.Errorf("element %d of %.40q: text before it %q", n, text, before)
			}
			c = tapeTokens(t, tp, c, out)
			prev, n = cn.stop, n+1
		}
		if c != nd.end || n != nd.n {
			t.Errorf("%.40q: %d entries ending at %d, node says %d ending at %d", text, n, c, nd.n, nd.end)
		}
		if tail := strings.Trim(tp.src[prev:nd.stop-1], " \t\r\n"); tail != "" || tp.tail(i) != prev {
			t.Errorf("%.40q: closing text %q, tail %d want %d", text, tail, tp.tail(i), prev)
		}
		*out = append(*out, closing)
	case jString:
		*out = append(*out, "string:"+tp.str(i))
	case jNumber:
		*out = append(*out, "number:"+text)
	default:
		*out = append(*out, text)
	}
	if nd.end <= i {
		t.Errorf("node %d ends at %d", i, nd.end)
	}
	return nd.end
}

func decoderTokens(t *testing.T, doc string) []string {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(doc))
	d.UseNumber()
	type level struct{ object, wantKey bool }
	var open []level
	// valueDone: a value inside the innermost container is complete; in
	// an object, a key comes next.
	valueDone := func() {
		if len(open) > 0 && open[len(open)-1].object {
			open[len(open)-1].wantKey = true
		}
	}
	var out []string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("decoder on %.40q: %v", doc, err)
		}
		switch v := tok.(type) {
		case json.Delim:
			out = append(out, v.String())
			if v == '{' || v == '[' {
				open = append(open, level{object: v == '{', wantKey: v == '{'})
			} else {
				open = open[:len(open)-1]
				valueDone()
			}
			continue
		case string:
			if len(open) > 0 && open[len(open)-1].wantKey {
				out = append(out, "key:"+v)
				open[len(open)-1].wantKey = false
				continue
			}
			out = append(out, "string:"+v)
		case json.Number:
			out = append(out, "number:"+v.String())
		case bool:
			out = append(out, fmt.Sprint(v))
		case nil:
			out = append(out, "null")
		}
		valueDone()
	}
}

// plainRun finds the same first byte as a byte-by-byte scan: every byte
// value at every place of a word, among plain bytes of both halves of the
// byte range, and runs of several special bytes.
func TestPlainRunAgreesWithByteScan(t *testing.T) {
	naive := func(s string, i int) int {
		for i < len(s) && plainByte[s[i]] {
			i++
		}
		return i
	}
	check := func(s string, i int) {
		if got, want := plainRun(s, i), naive(s, i); got != want {
			t.Fatalf("plainRun(%q, %d) = %d, want %d", s, i, got, want)
		}
	}
	for _, fill := range []byte{'a', 0xc3, 0x7f, 0x21, 0x5d, 0xff, 0x80} {
		for b := range 256 {
			for at := range 19 {
				buf := bytes.Repeat([]byte{fill}, 19)
				buf[at] = byte(b)
				for start := range 3 {
					check(string(buf), start)
				}
				if at+1 < len(buf) { // a second special byte just above
					buf[at+1] = '"'
					check(string(buf), 0)
				}
			}
		}
	}
}
