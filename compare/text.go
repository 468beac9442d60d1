package compare

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"
)

// diffText compares bodies that are not JSON and reports the first
// differing line. Bodies that differ only in line ends (CRLF, CR) and
// trailing whitespace differ in kind whitespace; the route's normalise
// rules apply after that.
func (c *Comparator) diffText(w *walker, root string, p, q []byte) {
	if bytes.Equal(p, q) {
		return
	}
	a, b := baseText(p), baseText(q)
	if a == b {
		n, la, lb := firstDifferentLine(string(p), string(q))
		prefix := "line " + strconv.Itoa(n) + ": "
		w.emitRaw(root, root, KindWhitespace, prefix+excerpt(strconv.Quote(RedactText(la))), prefix+excerpt(strconv.Quote(RedactText(lb))))
		return
	}
	for _, r := range c.textNorms {
		a, b = r.apply(a), r.apply(b)
	}
	if a == b {
		return
	}
	n, la, lb := firstDifferentLine(a, b)
	prefix := "line " + strconv.Itoa(n) + ": "
	w.emitRaw(root, root, KindValue, prefix+excerpt(RedactText(la)), prefix+excerpt(RedactText(lb)))
}

// baseText is a text body with line ends made LF and trailing
// whitespace dropped.
func baseText(b []byte) string {
	s := strings.ReplaceAll(string(b), "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t\f\v")
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

// firstDifferentLine returns the 1-based number of the first line that
// differs and that line on each side ("" past the end).
func firstDifferentLine(a, b string) (int, string, string) {
	for n := 1; ; n++ {
		la, ra, oka := strings.Cut(a, "\n")
		lb, rb, okb := strings.Cut(b, "\n")
		if la != lb || oka != okb {
			return n, la, lb
		}
		a, b = ra, rb
	}
}

// excerpt cuts s to about maxRender bytes on a rune boundary.
func excerpt(s string) string {
	if len(s) <= maxRender {
		return s
	}
	cut := maxRender
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// appendRender appends node i printed compactly, secrets redacted, cut to
// about maxRender bytes as excerpt cuts.
func appendRender(b []byte, t *tape, i int32) []byte {
	start := len(b)
	return cutRender(appendNode(b, t, i, start+maxRender), start)
}

// cutRender cuts what b holds past start to about maxRender bytes, on a
// rune boundary, as excerpt does.
func cutRender(b []byte, start int) []byte {
	if len(b)-start > maxRender {
		cut := start + maxRender
		for cut > start && !utf8.RuneStart(b[cut]) {
			cut--
		}
		b = append(b[:cut], "…"...)
	}
	return b
}

// appendNode appends node i, stopping once b is longer than limit (the
// caller cuts there).
func appendNode(b []byte, t *tape, i int32, limit int) []byte {
	if len(b) > limit {
		return b
	}
	nd := &t.nodes[i]
	switch nd.kind {
	case jObject:
		b = append(b, '{')
		for c := i + 1; c < nd.end; c = t.nodes[c].end {
			if c > i+1 {
				b = append(b, ',')
			}
			b = appendQuoted(b, t.key(c))
			b = append(b, ':')
			if secretKey(t.key(c)) {
				b = strconv.AppendQuote(b, Redacted)
			} else {
				b = appendNode(b, t, c, limit)
			}
			if len(b) > limit {
				return b
			}
		}
		return append(b, '}')
	case jArray:
		b = append(b, '[')
		for c := i + 1; c < nd.end; c = t.nodes[c].end {
			if c > i+1 {
				b = append(b, ',')
			}
			b = appendNode(b, t, c, limit)
			if len(b) > limit {
				return b
			}
		}
		return append(b, ']')
	default:
		// A long string need not be copied whole to be cut: what the cut
		// looks at is the bytes up to the limit and a rune beyond.
		return append(b, t.src[nd.start:min(nd.stop, nd.start+int32(limit-len(b)+utf8.UTFMax))]...)
	}
}

// appendQuoted is strconv.AppendQuote, with the common case (printable
// ASCII, nothing to escape) copied as it is.
func appendQuoted(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return strconv.AppendQuote(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
