package compare

import (
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

// Kinds of difference.
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
	// KindOrder: the same array elements in another order.
	KindOrder Kind = "order"
	// KindIncomplete: the comparison stopped at its work budget (see
	// maxSteps); what it had not reached is unknown, so it counts as a
	// difference at the body.
	KindIncomplete Kind = "incomplete"
)

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
	// Noise is set by Noise.Classify when Template is known noise.
	Noise bool `json:"noise,omitempty"`
}

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

// Diff compares primary and candidate. It never fails: a body that is not
// valid JSON is compared as text.
func (c *Comparator) Diff(primary, candidate Response) Result {
	w := getWalker(c)
	defer putWalker(w)
	if !c.ignoreStatus && primary.Status != candidate.Status {
		w.emitRaw(rootStatus, rootStatus, KindValue, strconv.Itoa(primary.Status), strconv.Itoa(candidate.Status))
	}
	c.diffHeaders(w, primary.Header, candidate.Header)
	if !c.ignoreBody {
		c.diffBody(w, primary, candidate)
	}
	if w.steps > maxSteps {
		w.emitRaw(rootBody, rootBody, KindIncomplete, "compared "+strconv.Itoa(maxSteps)+" values, then stopped", "")
	}
	return Result{Diffs: w.diffs, Dropped: w.dropped}
}

func (c *Comparator) diffBody(w *walker, p, q Response) {
	// Identical bytes parse identically, and every rule treats both sides
	// alike: nothing can differ.
	if string(p.Body) == string(q.Body) {
		return
	}
	if !isJSON(p) && !isJSON(q) {
		c.diffText(w, p.Body, q.Body)
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
		c.diffText(w, p.Body, q.Body)
	case errp != nil:
		w.emitRaw(rootBody, rootBody, KindType, "not JSON: "+textExcerpt(p.Body), "JSON "+tq.nodes[0].kind.String())
	case errq != nil:
		w.emitRaw(rootBody, rootBody, KindType, "JSON "+tp.nodes[0].kind.String(), "not JSON: "+textExcerpt(q.Body))
	default:
		w.p, w.q = tp, tq
		w.path = append(w.path[:0], rootBody...)
		w.tpl = append(w.tpl[:0], rootBody...)
		var rs ruleSet
		if c.body != nil {
			rs.nodes = []*ruleNode{c.body}
			rs.norms = c.body.norms
		}
		w.value(0, 0, rs)
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
	next.norms = rs.norms
	if len(rs.nodes) == 0 {
		return next, false
	}
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
	c       *Comparator
	p, q    *tape
	path    []byte // concrete path of the value being compared
	tpl     []byte // its template
	diffs   []Diff
	dropped int
	// probe mode answers "equal?" without collecting: the first
	// difference sets hit and the walk unwinds.
	probe bool
	hit   bool
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

var walkerPool = sync.Pool{New: func() any {
	return &walker{path: make([]byte, 0, 256), tpl: make([]byte, 0, 256)}
}}

func getWalker(c *Comparator) *walker {
	w := walkerPool.Get().(*walker)
	w.c = c
	return w
}

// putWalker recycles w; the diffs it collected belong to the caller.
func putWalker(w *walker) {
	*w = walker{path: w.path[:0], tpl: w.tpl[:0]}
	walkerPool.Put(w)
}

// emit records a difference at the current path, rendering both sides
// (pi or qi < 0: absent).
func (w *walker) emit(kind Kind, pi, qi int32) {
	if w.probe {
		w.hit = true
		return
	}
	if len(w.diffs) >= w.c.maxDiffs {
		w.dropped++
		return
	}
	path := string(w.path)
	d := Diff{Path: path, Template: string(w.tpl), Kind: kind}
	if secretPath(path) {
		if pi >= 0 {
			d.Primary = Redacted
		}
		if qi >= 0 {
			d.Candidate = Redacted
		}
	} else {
		if pi >= 0 {
			d.Primary = render(w.p, pi)
		}
		if qi >= 0 {
			d.Candidate = render(w.q, qi)
		}
	}
	w.diffs = append(w.diffs, d)
}

// emitRaw records a difference whose renderings the caller made.
func (w *walker) emitRaw(path, tpl string, kind Kind, p, q string) {
	if w.probe {
		w.hit = true
		return
	}
	if len(w.diffs) >= w.c.maxDiffs {
		w.dropped++
		return
	}
	w.diffs = append(w.diffs, Diff{Path: path, Template: tpl, Kind: kind, Primary: p, Candidate: q})
}

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
		if !numbersEqual(w.p.lit(pi), w.q.lit(qi), w.c.tolerance) {
			w.emit(KindValue, pi, qi)
		}
	case jString:
		if !w.stringsEqual(pi, qi, rs.norms) {
			w.emit(KindValue, pi, qi)
		}
	case jObject:
		w.object(pi, qi, rs)
	case jArray:
		if w.c.unordered {
			w.unorderedArray(pi, qi, rs)
		} else {
			w.array(pi, qi, rs)
		}
	}
}

func (w *walker) stringsEqual(pi, qi int32, norms []*replacer) bool {
	pn, qn := &w.p.nodes[pi], &w.q.nodes[qi]
	if len(norms) == 0 && !pn.esc && !qn.esc {
		return w.p.src[pn.start:pn.stop] == w.q.src[qn.start:qn.stop]
	}
	a, b := w.p.str(pi), w.q.str(qi)
	for _, r := range norms {
		a, b = r.apply(a), r.apply(b)
	}
	return a == b
}

// pushKey appends key k to both paths and returns the lengths to restore.
func (w *walker) pushKey(k string) (int, int) {
	lp, lt := len(w.path), len(w.tpl)
	w.path = appendKey(w.path, k)
	w.tpl = appendKey(w.tpl, k)
	return lp, lt
}

func (w *walker) pushIndex(i int) (int, int) {
	lp, lt := len(w.path), len(w.tpl)
	w.path = append(w.path, '[')
	w.path = strconv.AppendInt(w.path, int64(i), 10)
	w.path = append(w.path, ']')
	w.tpl = append(w.tpl, "[*]"...)
	return lp, lt
}

func (w *walker) pop(lp, lt int) { w.path, w.tpl = w.path[:lp], w.tpl[:lt] }

// largeObject is the member count above which key lookups use a map
// instead of a scan.
const largeObject = 32

// member finds key k among the members of object oi in t, trying the
// member at *hint first (objects usually list keys in the same order) and
// moving the hint past the one found. It returns -1 when k is absent.
func member(t *tape, oi int32, k string, hint *int32, index *map[string]int32) int32 {
	if h := *hint; h < t.nodes[oi].end && t.nodes[h].key == k {
		*hint = t.nodes[h].end
		return h
	}
	if t.nodes[oi].n > largeObject {
		if *index == nil {
			m := make(map[string]int32, t.nodes[oi].n)
			for c := oi + 1; c < t.nodes[oi].end; c = t.nodes[c].end {
				if _, dup := m[t.nodes[c].key]; !dup {
					m[t.nodes[c].key] = c
				}
			}
			*index = m
		}
		if c, ok := (*index)[k]; ok {
			*hint = t.nodes[c].end
			return c
		}
		return -1
	}
	for c := oi + 1; c < t.nodes[oi].end; c = t.nodes[c].end {
		if t.nodes[c].key == k {
			*hint = t.nodes[c].end
			return c
		}
	}
	return -1
}

func (w *walker) object(pi, qi int32, rs ruleSet) {
	var qIndex, pIndex map[string]int32
	qHint := qi + 1
	for c := pi + 1; c < w.p.nodes[pi].end; c = w.p.nodes[c].end {
		if w.probe && w.hit {
			return
		}
		k := w.p.nodes[c].key
		next, ignored := rs.step(k, stepKey)
		if ignored {
			continue
		}
		lp, lt := w.pushKey(k)
		if m := member(w.q, qi, k, &qHint, &qIndex); m < 0 {
			w.emit(KindMissing, c, -1)
		} else {
			w.value(c, m, next)
		}
		w.pop(lp, lt)
	}
	if w.probe && w.hit {
		return
	}
	// Keys the candidate has and the primary lacks.
	if w.p.nodes[pi].n == w.q.nodes[qi].n && w.sameKeys(pi, qi) {
		return
	}
	pHint := pi + 1
	for c := qi + 1; c < w.q.nodes[qi].end; c = w.q.nodes[c].end {
		k := w.q.nodes[c].key
		if member(w.p, pi, k, &pHint, &pIndex) >= 0 {
			continue
		}
		if _, ignored := rs.step(k, stepKey); ignored {
			continue
		}
		lp, lt := w.pushKey(k)
		w.emit(KindExtra, -1, c)
		w.pop(lp, lt)
		if w.probe {
			return
		}
	}
}

// sameKeys is the fast path for objects with the same keys in the same
// order.
func (w *walker) sameKeys(pi, qi int32) bool {
	c, d := pi+1, qi+1
	for c < w.p.nodes[pi].end {
		if w.p.nodes[c].key != w.q.nodes[d].key {
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
			lp, lt := w.pushIndex(i)
			switch {
			case i >= nq:
				w.emit(KindMissing, c, -1)
			case i >= np:
				w.emit(KindExtra, -1, d)
			default:
				n, dropped := len(w.diffs), w.dropped
				w.value(c, d, next)
				if !w.probe && (len(w.diffs) != n || w.dropped != dropped) {
					differing = append(differing, i)
				}
			}
			w.pop(lp, lt)
		}
		if i < np {
			c = w.p.nodes[c].end
		}
		if i < nq {
			d = w.q.nodes[d].end
		}
	}
	// Elements differ by index: if they are the same elements in another
	// order, say that once instead of once per shifted element. Elements
	// equal in place can be left out: the arrays are permutations of each
	// other exactly when the differing elements are, and one differing
	// element cannot be a permutation of anything.
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
			lp, lt := w.pushIndex(up[k])
			w.emit(KindMissing, pc[up[k]], -1)
			w.pop(lp, lt)
		case k >= len(up):
			lp, lt := w.pushIndex(uq[k])
			w.emit(KindExtra, -1, qc[uq[k]])
			w.pop(lp, lt)
		default:
			lp, lt := w.pushIndex(up[k])
			w.value(pc[up[k]], qc[uq[k]], next)
			w.pop(lp, lt)
		}
	}
}
