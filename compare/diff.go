package compare

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"
)

// Response is one side's answer, copied out of the request context.
type Response struct {
	Status int
	// Header holds name/value pairs in the order received; repeated
	// headers repeat.
	Header [][2]string
	Body   []byte
	// ContentType decides how the body is compared. Empty: the
	// Content-Type header.
	ContentType string
}

// Kind says how a value differs.
type Kind string

// Kinds of difference. The first six are differences of meaning; the
// representation kinds (format, escape, case, key_order, whitespace) are
// the same data spelled differently, which the contract of a byte-for-byte
// port forbids as much as a wrong value: clients parse bytes.
const (
	// KindValue: same type, different value.
	KindValue Kind = "value"
	// KindType: different JSON types (a number against a string), or JSON
	// against a body that is not.
	KindType Kind = "type"
	// KindMissing: present in the primary answer only.
	KindMissing Kind = "missing"
	// KindExtra: present in the candidate answer only.
	KindExtra Kind = "extra"
	// KindOrder: the same array elements in another order, or the same
	// elements of a set-like header (Vary, Allow, Cache-Control) in
	// another order.
	KindOrder Kind = "order"
	// KindIncomplete: the comparison stopped at its work budget (see
	// maxSteps); what it had not reached is unknown, so it counts as a
	// difference at the body.
	KindIncomplete Kind = "incomplete"

	// KindFormat: the same number spelled otherwise (1.0 and 1, 1e2 and
	// 100), a header value spelled otherwise, or a generated or clock
	// value not of the shape or layout the legacy side's values share.
	KindFormat Kind = "format"
	// KindEscape: the same string (or member name) escaped otherwise
	// ("\u00e9" and "é", "\/" and "/").
	KindEscape Kind = "escape"
	// KindCase: strings equal but for letter case ("CMP_1" and "cmp_1").
	KindCase Kind = "case"
	// KindKeyOrder: the same object members in another order.
	KindKeyOrder Kind = "key_order"
	// KindWhitespace: the same document with other whitespace between
	// its tokens; reported once per comparison, at the first place.
	KindWhitespace Kind = "whitespace"

	// KindNondeterministic: the Go side answered one request differently
	// when asked twice, at a path where the legacy side's values are not
	// generated (see Profile). Never noise: it is a finding about Go.
	KindNondeterministic Kind = "nondeterministic"
)

// Kinds lists every Kind, in report order.
func Kinds() []Kind {
	return []Kind{KindValue, KindType, KindMissing, KindExtra, KindOrder, KindIncomplete,
		KindFormat, KindEscape, KindCase, KindKeyOrder, KindWhitespace, KindNondeterministic}
}

// Representational reports whether k is a difference of spelling only.
func (k Kind) Representational() bool {
	switch k {
	case KindFormat, KindEscape, KindCase, KindKeyOrder, KindWhitespace:
		return true
	}
	return false
}

// Diff is one difference between the primary and candidate answers.
type Diff struct {
	// Path is concrete: `body.items[3].price`, `header.Location`, `status`.
	Path string `json:"path"`
	// Template is Path with array indices replaced by [*], for grouping.
	Template string `json:"template"`
	Kind     Kind   `json:"kind"`
	// Primary and Candidate render each side's value, short (at most
	// about 120 bytes) and with secrets redacted; "" when absent.
	Primary   string `json:"primary"`
	Candidate string `json:"candidate"`
	// Note says what the kind alone does not ("outside its request's
	// time window by 3s").
	Note string `json:"note,omitempty"`
	// Noise: the legacy side's own answers explain this difference.
	// NoiseBy says how: "generated" (a value of the shape the legacy
	// side's generated values share), "clock" (each side's time within
	// its own request's window) or "legacy_twin" (the legacy side differs
	// from itself here when asked twice).
	Noise   bool   `json:"noise,omitempty"`
	NoiseBy string `json:"noise_by,omitempty"`
	// Accepted is the reason of the route's accept rule that explains
	// this difference.
	Accepted string `json:"accepted,omitempty"`
	// Pending: the path is still learning whether its values are
	// generated; the difference is settled once it knows (Profile.Settle).
	Pending bool `json:"pending,omitempty"`
	pend    *pendingValues
}

// Explained reports whether d needs no one's attention: noise or
// accepted.
func (d *Diff) Explained() bool { return d.Noise || d.Accepted != "" }

// Result lists the differences of one comparison, in document order:
// status, headers (in configured order), body.
type Result struct {
	Diffs []Diff `json:"diffs,omitempty"`
	// Dropped counts differences beyond the comparator's MaxDiffs.
	Dropped int `json:"dropped,omitempty"`
}

// Equal reports whether no difference was found.
func (r Result) Equal() bool { return len(r.Diffs) == 0 && r.Dropped == 0 }

// maxRender bounds a rendered value in a Diff.
const maxRender = 120

// DiffOptions say how a comparison uses what the route has learned.
type DiffOptions struct {
	// Profile decides differing values at generated and clock paths (see
	// Profile). Nil: every value is compared as is.
	Profile *Profile
	// Windows are when the primary [0] and the candidate [1] answered,
	// for clock values.
	Windows [2]Window
	// Root names the body's paths: "body" (default), or "published" when
	// the bodies are published messages.
	Root string
}

// Diff compares primary and candidate. It never fails: a body that is not
// valid JSON is compared as text.
func (c *Comparator) Diff(primary, candidate Response) Result {
	return c.DiffWith(primary, candidate, DiffOptions{})
}

// DiffWith is Diff with the route's learned noise and time windows.
// Differences the route's accept rules name are marked Accepted.
func (c *Comparator) DiffWith(primary, candidate Response, o DiffOptions) Result {
	w := getWalker(c)
	defer putWalker(w)
	w.o = o
	if w.o.Root == "" {
		w.o.Root = rootBody
	}
	body := w.o.Root == rootBody
	if body {
		if !c.ignoreStatus && primary.Status != candidate.Status {
			w.emitRaw(rootStatus, rootStatus, KindValue, strconv.Itoa(primary.Status), strconv.Itoa(candidate.Status))
		}
		c.diffHeaders(w, primary.Header, candidate.Header)
	}
	if !c.ignoreBody || !body {
		c.diffBody(w, primary, candidate)
	}
	if w.steps > maxSteps {
		w.emitRaw(w.o.Root, w.o.Root, KindIncomplete, "compared "+strconv.Itoa(maxSteps)+" values, then stopped", "")
	}
	r := Result{Dropped: w.dropped}
	if len(w.diffs) > 0 {
		// Collected in the walker's reused slice: one allocation of the
		// size needed instead of one per doubling.
		r.Diffs = append([]Diff(nil), w.diffs...)
	}
	c.accept(&r)
	return r
}

func (c *Comparator) diffBody(w *walker, p, q Response) {
	// Identical bytes parse identically, and every rule treats both sides
	// alike: nothing can differ.
	if string(p.Body) == string(q.Body) {
		return
	}
	root := w.o.Root
	if !isJSON(p) && !isJSON(q) {
		c.diffText(w, root, p.Body, q.Body)
		return
	}
	tp, tq := getTape(), getTape()
	defer putTape(tp)
	defer putTape(tq)
	// The tapes alias the bodies only while Diff runs; everything emitted
	// is copied (see walker.emit).
	errp := tp.parse(bytesView(p.Body))
	errq := tq.parse(bytesView(q.Body))
	switch {
	case errp != nil && errq != nil:
		c.diffText(w, root, p.Body, q.Body)
	case errp != nil:
		w.emitRaw(root, root, KindType, "not JSON: "+textExcerpt(p.Body), "JSON "+tq.nodes[0].kind.String())
	case errq != nil:
		w.emitRaw(root, root, KindType, "JSON "+tp.nodes[0].kind.String(), "not JSON: "+textExcerpt(q.Body))
	default:
		w.p, w.q = tp, tq
		var rs ruleSet
		if c.body != nil && root == rootBody {
			rs.nodes = []*ruleNode{c.body}
			rs.norms = c.body.norms
		}
		// Whitespace around the document.
		pr, qr := &tp.nodes[0], &tq.nodes[0]
		w.gaps(tp.src[:pr.start], tq.src[:qr.start])
		w.value(0, 0, rs)
		w.gaps(tp.src[pr.stop:], tq.src[qr.stop:])
	}
}

// textExcerpt shows the start of a body, redacted; only the start is
// redacted, so a large body costs no more than a small one.
func textExcerpt(b []byte) string {
	return excerpt(RedactText(string(b[:min(len(b), 4*maxRender)])))
}

// isJSON says whether r's body should be parsed as JSON: a JSON media type
// (application/json, text/json, anything+json), or no content type at all
// and a body that opens like a document.
func isJSON(r Response) bool {
	ct := r.ContentType
	if ct == "" {
		ct = headerValue(r.Header, "Content-Type")
	}
	if ct == "" {
		b := strings.TrimLeft(bytesView(r.Body), " \t\r\n")
		return b != "" && (b[0] == '{' || b[0] == '[')
	}
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	return strings.EqualFold(mt, "application/json") || strings.EqualFold(mt, "text/json") ||
		len(mt) > 5 && strings.EqualFold(mt[len(mt)-5:], "+json")
}

func headerValue(h [][2]string, name string) string {
	for _, kv := range h {
		if strings.EqualFold(kv[0], name) {
			return kv[1]
		}
	}
	return ""
}

// bytesView returns b as a string without copying; the caller must not
// keep the string past b's lifetime or modify b meanwhile.
func bytesView(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// ruleSet is where the walk stands in the body rule trie: the trie nodes
// matching the current path and the normalisers inherited from above.
type ruleSet struct {
	nodes []*ruleNode
	norms []*replacer
}

// Steps for ruleSet.step besides an array index.
const (
	stepKey      = -1 // an object key
	stepAnyIndex = -2 // any element of an array: [*] rules only
)

// step descends into an object key (idx == stepKey), an array index, or
// any array element (stepAnyIndex, for comparisons where elements move).
// ignored reports a rule that leaves the subtree out.
func (rs ruleSet) step(key string, idx int) (next ruleSet, ignored bool) {
	if len(rs.nodes) == 0 { // no rule here, as in most walks: small enough to inline
		return rs, false
	}
	return rs.stepRules(key, idx)
}

func (rs ruleSet) stepRules(key string, idx int) (next ruleSet, ignored bool) {
	next.norms = rs.norms
	add := func(n *ruleNode) {
		if n == nil {
			return
		}
		ignored = ignored || n.ignore
		next.nodes = append(next.nodes, n)
		if len(n.norms) > 0 {
			// Full slice expression: never write into the parent's array.
			next.norms = append(next.norms[:len(next.norms):len(next.norms)], n.norms...)
		}
	}
	for _, n := range rs.nodes {
		switch idx {
		case stepKey:
			add(n.keys[key])
			add(n.anyKey)
		case stepAnyIndex:
			add(n.anyIdx)
		default:
			add(n.idx[idx])
			add(n.anyIdx)
		}
	}
	return next, ignored
}

// walker walks two tapes in step and collects differences.
type walker struct {
	c    *Comparator
	o    DiffOptions
	p, q *tape
	// at is the path of the value being compared below the root, one
	// step a level; rendered only when a difference needs it (paths).
	at      []pathStep
	buf     []byte // scratch for rendered paths
	diffs   []Diff
	dropped int
	// probe mode answers "equal?" without collecting: the first
	// difference of meaning sets hit and the walk unwinds. Spelling and
	// noise are not differences of meaning there.
	probe bool
	hit   bool
	// real counts differences of meaning found, noise and spelling aside:
	// whether array elements differ for the reorder check.
	real int
	// spaced: a whitespace difference was reported (once is enough).
	spaced bool
	// steps counts values visited, probes included; past maxSteps the
	// walk stops.
	steps int
}

// maxSteps bounds the values one Diff visits. Matching unordered or
// permuted arrays probes subtrees more than once, and nested arrays
// multiply that: without a bound a crafted pair of bodies could hold a
// shadow worker for ever. A million visits is a few tens of milliseconds,
// far beyond any ordinary pair of answers.
const maxSteps = 1 << 20

// pathStep is one level of walker.at: an object member (a node of the
// primary's tape, or of the candidate's when q: its key names the step)
// or an array index (idx >= 0).
type pathStep struct {
	node, idx int32
	q         bool
}

var walkerPool = sync.Pool{New: func() any {
	return &walker{at: make([]pathStep, 0, 32), buf: make([]byte, 0, 256)}
}}

func getWalker(c *Comparator) *walker {
	w := walkerPool.Get().(*walker)
	w.c = c
	return w
}

// putWalker recycles w; the diffs it collected were copied out for the
// caller (DiffWith), and are cleared so the pool does not keep their
// strings.
func putWalker(w *walker) {
	if cap(w.diffs) > 1<<10 { // do not pin a huge result in the pool
		w.diffs = nil
	}
	clear(w.diffs[:cap(w.diffs)])
	*w = walker{at: w.at[:0], buf: w.buf[:0], diffs: w.diffs[:0]}
	walkerPool.Put(w)
}

// emit records a difference at the current path, rendering both sides
// (pi or qi < 0: absent).
func (w *walker) emit(kind Kind, pi, qi int32) {
	w.emitNote(kind, pi, qi, "", !kind.Representational())
}

// emitNote is emit with a note; meaning says whether the difference is
// one of meaning (for probes and the reorder check).
func (w *walker) emitNote(kind Kind, pi, qi int32, note string, meaning bool) *Diff {
	if !w.admit(meaning) {
		return nil
	}
	d := w.record(kind, pi, qi, false)
	d.Note = note
	return d
}

// admit says whether a difference (meaning: one of meaning) is to be
// recorded, and counts it: a probe only notes a hit, and past MaxDiffs a
// difference is only counted as dropped.
func (w *walker) admit(meaning bool) bool {
	if w.probe {
		w.hit = w.hit || meaning
		return false
	}
	if meaning {
		w.real++
	}
	if len(w.diffs) >= w.c.maxDiffs {
		w.dropped++
		return false
	}
	return true
}

// record appends a difference at the current path with both sides
// rendered (pi or qi < 0: absent; keys: the objects' member names instead
// of their values). Its path, template and renderings are one string, one
// allocation.
func (w *walker) record(kind Kind, pi, qi int32, keys bool) *Diff {
	b := w.appendPath(w.buf[:0], false)
	np, nt := len(b), len(b)
	indexed := slices.ContainsFunc(w.at, func(s pathStep) bool { return s.idx >= 0 })
	if indexed {
		b = w.appendPath(b, true)
		nt = len(b)
	}
	secret := !keys && secretPath(bytesView(b[:np]))
	side := func(b []byte, t *tape, i int32) []byte {
		switch {
		case i < 0 || secret:
			return b
		case keys:
			return appendKeyList(b, t, i)
		}
		return appendRender(b, t, i)
	}
	b = side(b, w.p, pi)
	np1 := len(b)
	b = side(b, w.q, qi)
	text := string(b)
	w.buf = b[:0]
	d := Diff{Path: text[:np], Template: text[:np], Kind: kind}
	if indexed {
		d.Template = text[np:nt]
	}
	switch {
	case secret:
		if pi >= 0 {
			d.Primary = Redacted
		}
		if qi >= 0 {
			d.Candidate = Redacted
		}
	default:
		if pi >= 0 {
			d.Primary = text[nt:np1]
		}
		if qi >= 0 {
			d.Candidate = text[np1:]
		}
	}
	w.diffs = append(w.diffs, d)
	return &w.diffs[len(w.diffs)-1]
}

// paths renders the current path and its template, from one allocation:
// the same string when no array index is on the way.
func (w *walker) paths() (path, tpl string) {
	w.buf = w.appendPath(w.buf[:0], false)
	n := len(w.buf)
	if !slices.ContainsFunc(w.at, func(s pathStep) bool { return s.idx >= 0 }) {
		path = string(w.buf)
		return path, path
	}
	w.buf = w.appendPath(w.buf, true)
	both := string(w.buf)
	return both[:n], both[n:]
}

// appendPath appends the current path (tpl: its template) to b.
func (w *walker) appendPath(b []byte, tpl bool) []byte {
	b = append(b, w.o.Root...)
	for _, s := range w.at {
		switch {
		case s.idx < 0 && s.q:
			b = appendKey(b, w.q.key(s.node))
		case s.idx < 0:
			b = appendKey(b, w.p.key(s.node))
		case tpl:
			b = append(b, "[*]"...)
		default:
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(s.idx), 10)
			b = append(b, ']')
		}
	}
	return b
}

// emitRaw records a difference whose renderings the caller made.
func (w *walker) emitRaw(path, tpl string, kind Kind, p, q string) {
	if !w.admit(!kind.Representational()) {
		return
	}
	w.diffs = append(w.diffs, Diff{Path: path, Template: tpl, Kind: kind, Primary: p, Candidate: q})
}

// emitNoise records a difference the profile explains: shown, never
// counted against the candidate.
func (w *walker) emitNoise(pi, qi int32, by string) {
	if w.probe {
		return
	}
	if d := w.emitNote(KindValue, pi, qi, "", false); d != nil {
		d.Noise, d.NoiseBy = true, by
	}
}

// emitPending records a difference at a path still learning; it keeps
// both raw values for Profile.Settle. A probe takes it for equal: if the
// path turns out computed the difference is reported by the full walk.
func (w *walker) emitPending(kind Kind, pi, qi int32, pv, qv string) {
	if w.probe {
		return
	}
	if d := w.emitNote(kind, pi, qi, "", false); d != nil {
		d.Pending = true
		d.pend = &pendingValues{p: strings.Clone(pv), q: strings.Clone(qv)}
	}
}

// gaps compares the text between two tokens on each side: whitespace,
// and for an object member its name as spelled. A difference there is
// whitespace (reported once per comparison) or an escaped member name.
func (w *walker) gaps(a, b string) {
	if a == b || w.probe {
		return
	}
	kind := KindEscape
	if sameBesidesSpace(a, b) {
		if w.spaced {
			return
		}
		w.spaced, kind = true, KindWhitespace
	}
	path, tpl := w.paths()
	w.emitRaw(path, tpl, kind, excerpt(strconv.Quote(a)), excerpt(strconv.Quote(b)))
}

// sameBesidesSpace compares two gaps with JSON whitespace outside quotes
// dropped; a gap holds at most one quoted string, a member name.
func sameBesidesSpace(a, b string) bool {
	i, j := 0, 0
	inA, inB := false, false
	for {
		for i < len(a) && !inA && isSpace(a[i]) {
			i++
		}
		for j < len(b) && !inB && isSpace(b[j]) {
			j++
		}
		if i == len(a) || j == len(b) {
			return i == len(a) && j == len(b)
		}
		if a[i] != b[j] {
			return false
		}
		switch c := a[i]; {
		case c == '\\' && (inA || inB):
			// An escape: the next byte is part of it, never a quote.
			if i+1 < len(a) && j+1 < len(b) && a[i+1] == b[j+1] {
				i++
				j++
			}
		case c == '"':
			inA, inB = !inA, !inB
		}
		i++
		j++
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (w *walker) value(pi, qi int32, rs ruleSet) {
	if w.steps++; w.steps > maxSteps {
		w.hit = w.hit || w.probe // unknown is not equal
		return
	}
	pn, qn := &w.p.nodes[pi], &w.q.nodes[qi]
	if pn.kind != qn.kind {
		if (pn.kind == jTrue || pn.kind == jFalse) && (qn.kind == jTrue || qn.kind == jFalse) {
			w.emit(KindValue, pi, qi)
		} else {
			w.emit(KindType, pi, qi)
		}
		return
	}
	switch pn.kind {
	case jNumber:
		a, b := w.p.lit(pi), w.q.lit(qi)
		switch {
		case a == b:
		case numbersEqual(a, b, 0):
			w.emit(KindFormat, pi, qi)
		case w.c.tolerance > 0 && numbersEqual(a, b, w.c.tolerance):
		default:
			w.leaf(KindValue, pi, qi, a, b, true)
		}
	case jString:
		w.strings(pi, qi, rs.norms)
	case jObject, jArray:
		switch {
		case w.p.lit(pi) == w.q.lit(qi):
			// The same text holds the same values and spacing, and every
			// rule treats both sides alike: nothing below can differ (as
			// for identical bodies). Most of a pair that differs somewhere
			// is the same text elsewhere.
		case pn.kind == jObject:
			w.object(pi, qi, rs)
		case w.c.unordered:
			w.unorderedArray(pi, qi, rs)
		default:
			w.array(pi, qi, rs)
		}
	}
}

// strings compares two strings: as spelled, decoded, normalised.
func (w *walker) strings(pi, qi int32, norms []*replacer) {
	pn, qn := &w.p.nodes[pi], &w.q.nodes[qi]
	if w.p.src[pn.start:pn.stop] == w.q.src[qn.start:qn.stop] {
		return
	}
	a, b := w.p.str(pi), w.q.str(qi)
	if a == b {
		w.emit(KindEscape, pi, qi)
		return
	}
	if len(norms) > 0 {
		na, nb := a, b
		for _, r := range norms {
			na, nb = r.apply(na), r.apply(nb)
		}
		if na == nb {
			return // the route's normalise rule says they mean the same
		}
	}
	kind := KindValue
	if strings.EqualFold(a, b) {
		kind = KindCase
	}
	w.leaf(kind, pi, qi, a, b, false)
}

// leaf records a differing string or number (a and b its decoded text or
// literal), unless the profile explains it.
func (w *walker) leaf(kind Kind, pi, qi int32, a, b string, num bool) {
	if w.o.Profile == nil {
		w.emit(kind, pi, qi)
		return
	}
	w.buf = w.appendPath(w.buf[:0], true)
	switch t, note := w.o.Profile.treat(w.buf, a, b, num, w.o.Windows[0], w.o.Windows[1]); t {
	case treatExplained:
		w.emitNoise(pi, qi, note)
	case treatPending:
		w.emitPending(kind, pi, qi, a, b)
	case treatFormat:
		w.emitNote(KindFormat, pi, qi, note, false)
	case treatOutside:
		w.emitNote(KindValue, pi, qi, note, true)
	default:
		w.emit(kind, pi, qi)
	}
}

// pushKey steps into member c of the primary's tape (q: the candidate's);
// pop steps back.
func (w *walker) pushKey(c int32, q bool) { w.at = append(w.at, pathStep{node: c, idx: -1, q: q}) }

func (w *walker) pushIndex(i int) { w.at = append(w.at, pathStep{idx: int32(i)}) }

func (w *walker) pop() { w.at = w.at[:len(w.at)-1] }

// largeObject is the member count above which key lookups use a map
// instead of a scan.
const largeObject = 32

// memberAt is a member of an object: its node and its place among the
// members.
type memberAt struct{ node, ord int32 }

// member finds key k among the members of object oi in t, trying the
// member at *hint first (objects usually list keys in the same order) and
// moving the hint past the one found. Its node is -1 when k is absent.
func member(t *tape, oi int32, k string, hint *memberAt, index *map[string]memberAt) memberAt {
	if h := *hint; h.node < t.nodes[oi].end && t.key(h.node) == k {
		*hint = memberAt{t.nodes[h.node].end, h.ord + 1}
		return h
	}
	if t.nodes[oi].n > largeObject {
		if *index == nil {
			m := make(map[string]memberAt, t.nodes[oi].n)
			ord := int32(0)
			for c := oi + 1; c < t.nodes[oi].end; c, ord = t.nodes[c].end, ord+1 {
				if _, dup := m[t.key(c)]; !dup {
					m[t.key(c)] = memberAt{c, ord}
				}
			}
			*index = m
		}
		if at, ok := (*index)[k]; ok {
			*hint = memberAt{t.nodes[at.node].end, at.ord + 1}
			return at
		}
		return memberAt{node: -1}
	}
	ord := int32(0)
	for c := oi + 1; c < t.nodes[oi].end; c, ord = t.nodes[c].end, ord+1 {
		if t.key(c) == k {
			*hint = memberAt{t.nodes[c].end, ord + 1}
			return memberAt{c, ord}
		}
	}
	return memberAt{node: -1}
}

func (w *walker) object(pi, qi int32, rs ruleSet) {
	var qIndex, pIndex map[string]memberAt
	qHint := memberAt{qi + 1, 0}
	// Members are matched by name; lastQ spots a member found before the
	// previous one's place in the candidate: the names are in another
	// order. found marks the candidate's members matched (the first 64).
	lastQ, reordered := int32(-1), false
	var found uint64
	for c := pi + 1; c < w.p.nodes[pi].end; c = w.p.nodes[c].end {
		if w.probe && w.hit {
			return
		}
		k := w.p.key(c)
		next, ignored := rs.step(k, stepKey)
		if ignored {
			continue
		}
		w.pushKey(c, false)
		if at := member(w.q, qi, k, &qHint, &qIndex); at.node < 0 {
			w.emit(KindMissing, c, -1)
		} else {
			m := at.node
			if m < lastQ {
				reordered = true
			}
			lastQ = m
			if at.ord < 64 {
				found |= 1 << at.ord
			}
			w.gaps(w.p.src[w.p.nodes[c].gap:w.p.nodes[c].start], w.q.src[w.q.nodes[m].gap:w.q.nodes[m].start])
			w.value(c, m, next)
		}
		w.pop()
	}
	if w.probe && w.hit {
		return
	}
	if reordered && w.admit(false) {
		w.record(KindKeyOrder, pi, qi, true)
	}
	w.closing(pi, qi)
	// Keys the candidate has and the primary lacks: none when every one
	// of the candidate's members was matched.
	if nq := w.q.nodes[qi].n; nq <= 64 && found == 1<<nq-1 {
		return
	}
	if w.p.nodes[pi].n == w.q.nodes[qi].n && w.sameKeys(pi, qi) {
		return
	}
	pHint := memberAt{pi + 1, 0}
	for c := qi + 1; c < w.q.nodes[qi].end; c = w.q.nodes[c].end {
		k := w.q.key(c)
		if member(w.p, pi, k, &pHint, &pIndex).node >= 0 {
			continue
		}
		if _, ignored := rs.step(k, stepKey); ignored {
			continue
		}
		w.pushKey(c, true)
		w.emit(KindExtra, -1, c)
		w.pop()
		if w.probe {
			return
		}
	}
}

// closing compares the text before a container's closing byte.
func (w *walker) closing(pi, qi int32) {
	if w.probe {
		return
	}
	pn, qn := &w.p.nodes[pi], &w.q.nodes[qi]
	w.gaps(w.p.src[w.p.tail(pi):pn.stop-1], w.q.src[w.q.tail(qi):qn.stop-1])
}

// appendKeyList appends an object's member names in order, cut as
// appendRender cuts.
func appendKeyList(b []byte, t *tape, oi int32) []byte {
	start := len(b)
	b = append(b, '[')
	for c := oi + 1; c < t.nodes[oi].end && len(b)-start <= maxRender; c = t.nodes[c].end {
		if c > oi+1 {
			b = append(b, ',')
		}
		b = appendQuoted(b, t.key(c))
	}
	return cutRender(append(b, ']'), start)
}

// sameKeys is the fast path for objects with the same keys in the same
// order.
func (w *walker) sameKeys(pi, qi int32) bool {
	c, d := pi+1, qi+1
	for c < w.p.nodes[pi].end {
		if w.p.key(c) != w.q.key(d) {
			return false
		}
		c, d = w.p.nodes[c].end, w.q.nodes[d].end
	}
	return true
}

// children lists the element indexes of array ai.
func children(t *tape, ai int32) []int32 {
	out := make([]int32, 0, t.nodes[ai].n)
	for c := ai + 1; c < t.nodes[ai].end; c = t.nodes[c].end {
		out = append(out, c)
	}
	return out
}

// maxPermutation bounds the quadratic matching of array elements (order
// check, unordered comparison): beyond it elements compare by index.
const maxPermutation = 1 << 14

func (w *walker) array(pi, qi int32, rs ruleSet) {
	np, nq := int(w.p.nodes[pi].n), int(w.q.nodes[qi].n)
	if w.probe && np != nq {
		w.hit = true
		return
	}
	mark, markDropped := len(w.diffs), w.dropped
	var differing []int // indexes whose elements differ, when lengths agree
	c, d := pi+1, qi+1
	for i := 0; i < max(np, nq); i++ {
		if w.probe && w.hit {
			return
		}
		next, ignored := rs.step("", i)
		if !ignored {
			w.pushIndex(i)
			switch {
			case i >= nq:
				w.emit(KindMissing, c, -1)
			case i >= np:
				w.emit(KindExtra, -1, d)
			default:
				w.gaps(w.p.src[w.p.nodes[c].gap:w.p.nodes[c].start], w.q.src[w.q.nodes[d].gap:w.q.nodes[d].start])
				before := w.real
				w.value(c, d, next)
				if !w.probe && w.real != before {
					differing = append(differing, i)
				}
			}
			w.pop()
		}
		if i < np {
			c = w.p.nodes[c].end
		}
		if i < nq {
			d = w.q.nodes[d].end
		}
	}
	w.closing(pi, qi)
	// Elements differ by index: if they are the same elements in another
	// order, say that once instead of once per shifted element. Elements
	// equal in place can be left out: the arrays are permutations of each
	// other exactly when the differing elements are, and one differing
	// element cannot be a permutation of anything. Spelling and noise
	// differences make no element differ here.
	if w.probe || np != nq || len(differing) < 2 || len(differing)*len(differing) > maxPermutation {
		return
	}
	pc, qc := children(w.p, pi), children(w.q, qi)
	for k, i := range differing {
		pc[k], qc[k] = pc[i], qc[i]
	}
	pc, qc = pc[:len(differing)], qc[:len(differing)]
	next, _ := rs.step("", stepAnyIndex) // indexes move in a permutation
	if _, unmatched := w.match(pc, qc, next); len(unmatched) == 0 {
		// What the elements' own differences said is replaced by the one
		// order difference (their spelling differences with it).
		w.diffs, w.dropped = w.diffs[:mark], markDropped
		w.emit(KindOrder, pi, qi)
	}
}

// match pairs every element of pc with an equal, unused element of qc,
// greedily, and returns the indexes (into pc and qc) left unpaired.
func (w *walker) match(pc, qc []int32, rs ruleSet) (unmatchedP, unmatchedQ []int) {
	used := make([]bool, len(qc))
	for i, a := range pc {
		found := false
		for j, b := range qc {
			if !used[j] && w.equal(a, b, rs) {
				used[j], found = true, true
				break
			}
		}
		if !found {
			unmatchedP = append(unmatchedP, i)
		}
	}
	for j, u := range used {
		if !u {
			unmatchedQ = append(unmatchedQ, j)
		}
	}
	return unmatchedP, unmatchedQ
}

// equal compares two subtrees without recording anything.
func (w *walker) equal(pi, qi int32, rs ruleSet) bool {
	probe, hit := w.probe, w.hit
	w.probe, w.hit = true, false
	w.value(pi, qi, rs)
	eq := !w.hit
	w.probe, w.hit = probe, hit
	return eq
}

func (w *walker) unorderedArray(pi, qi int32, rs ruleSet) {
	np, nq := int(w.p.nodes[pi].n), int(w.q.nodes[qi].n)
	next, ignored := rs.step("", stepAnyIndex)
	if ignored {
		return
	}
	// match tries the unused elements in order, so equal arrays cost one
	// probe per element.
	pc, qc := children(w.p, pi), children(w.q, qi)
	var up, uq []int
	if np*nq <= maxPermutation {
		up, uq = w.match(pc, qc, next)
	} else {
		for i := range pc {
			up = append(up, i)
		}
		for j := range qc {
			uq = append(uq, j)
		}
	}
	if w.probe {
		w.hit = w.hit || len(up) > 0 || len(uq) > 0
		return
	}
	// Unpaired elements are compared with each other in order, so a
	// changed field inside an element is reported at its own path; the
	// rest are missing or extra.
	for k := 0; k < max(len(up), len(uq)); k++ {
		switch {
		case k >= len(uq):
			w.pushIndex(up[k])
			w.emit(KindMissing, pc[up[k]], -1)
			w.pop()
		case k >= len(up):
			w.pushIndex(uq[k])
			w.emit(KindExtra, -1, qc[uq[k]])
			w.pop()
		default:
			w.pushIndex(up[k])
			w.value(pc[up[k]], qc[uq[k]], next)
			w.pop()
		}
	}
}
