package compare

import (
	"bytes"
	"cmp"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// A Profile learns, from the legacy side's own answers across requests,
// which values are generated rather than computed from the request:
//
//   - generated values never repeat and share one shape (same length, the
//     same separators in the same places, the rest drawn from one alphabet)
//     with at least MinBits of variation: UUIDs, random tokens;
//   - clock values track the request's own clock: every one lies within
//     the time window of the request it answered (from just before the
//     proxy called the side to just after the answer arrived).
//
// A value found anywhere in the request (head or body) is an echo, hence
// computed. Every path starts "learning"; after MinObservations legacy
// answers it is generated, clock or computed, and a later observation that
// breaks the rule makes it computed for good. Differences at a generated
// path are compared by shape, at a clock path by time window (each side's
// value within its own request's window, in the same layout), everywhere
// else by value. Only the legacy side is ever observed: what the Go side
// does is what is being judged.

type pathState uint8

const (
	stateLearning pathState = iota
	stateGenerated
	stateClock
	stateComputed
)

func (s pathState) String() string {
	switch s {
	case stateGenerated:
		return "generated"
	case stateClock:
		return "clock"
	case stateComputed:
		return "computed"
	}
	return "learning"
}

// Character classes of the token alphabet; the shape of a generated value
// draws its varying bytes from a union of them.
const (
	clDigit    = 1 << iota // 0-9
	clHexLower             // a-f
	clLower                // g-z
	clHexUpper             // A-F
	clUpper                // G-Z
	clPunct                // - _ + /
)

var classSize = [...]int{10, 6, 20, 6, 20, 4}

func classOf(c byte) uint8 {
	switch {
	case c >= '0' && c <= '9':
		return clDigit
	case c >= 'a' && c <= 'f':
		return clHexLower
	case c >= 'g' && c <= 'z':
		return clLower
	case c >= 'A' && c <= 'F':
		return clHexUpper
	case c >= 'G' && c <= 'Z':
		return clUpper
	case c == '-' || c == '_' || c == '+' || c == '/':
		return clPunct
	}
	return 0
}

func alphabetSize(classes uint8) int {
	n := 0
	for i, s := range classSize {
		if classes&(1<<i) != 0 {
			n += s
		}
	}
	return n
}

// pathProfile is what the legacy answers showed at one template.
type pathProfile struct {
	state pathState
	clock bool // a clock candidate (else a shape candidate), fixed by the first value
	seen  uint64
	// why is the evidence of the current state, in words.
	why string
	// was is the class a computed path had before a value broke its rule
	// (stateLearning if it never had one), and since when it is computed.
	was     pathState
	brokeAt time.Time

	// Shape: the length, per byte the value every answer had there (0 once
	// they differ), the classes of the varying bytes, and the values seen
	// (for the repeat check).
	n       int
	lit     []byte
	classes uint8
	values  map[uint64]struct{}
	// Clock: the layout, and the extremes of value−start and value−end.
	layout      timeLayout
	early, late time.Duration
	// keyedBefore counts the times before their windows in answers to
	// keyed requests (ObserveKeyed), at a path that showed none within.
	keyedBefore uint64

	// Candidate values the treatment accepted and refused.
	explained, refused atomic.Uint64
}

// ProfileField is the report's view of one classified path.
type ProfileField struct {
	Template string `json:"template"`
	// Class is generated, clock, computed or learning.
	Class string `json:"class"`
	// Evidence says why, in words.
	Evidence string `json:"evidence"`
	// Observations counts the legacy answers that showed the path.
	Observations uint64 `json:"observations"`
	// Was is the class a computed path had before a legacy value broke
	// its rule ("" if it never had one), Since when that happened.
	Was   string    `json:"was,omitempty"`
	Since time.Time `json:"since,omitzero"`
	// Explained and Refused count values compared by shape or time window
	// that passed and failed.
	Explained uint64 `json:"explained"`
	Refused   uint64 `json:"refused"`
}

// Profile defaults.
const (
	DefaultMinObservations = 20
	DefaultMinBits         = 64
	DefaultClockSkew       = time.Second
	DefaultMaxValues       = 4096
)

// Profile is safe for concurrent use; its memory is bounded by MaxPaths
// paths of at most MaxValues remembered values each.
type Profile struct {
	minObs    uint64
	minBits   int
	skew      time.Duration
	maxPaths  int
	maxValues int
	seed      maphash.Seed
	now       func() time.Time

	mu        sync.RWMutex
	paths     map[string]*pathProfile
	answers   uint64
	learning  int // paths still learning
	untracked atomic.Uint64
	offered   atomic.Uint64 // answers passed to Observe
}

// Once every path is classified and settleAnswers answers were observed,
// Observe looks at one answer in settledEvery: what is left to learn is
// whether a rule still holds (a generated value repeating, a time out of
// its window), and a uniform sample shows that too, for a tenth of the
// cost. A new path, or one going back to learning, ends the thinning.
const (
	settleAnswers = 1000
	settledEvery  = 10
)

// NewProfile returns an empty profile tuned by cfg (its MinObservations,
// MinBits, ClockSkew, MaxPaths and MaxValues).
func NewProfile(cfg NoiseConfig) *Profile {
	cfg = cfg.withDefaults()
	return &Profile{
		minObs: uint64(cfg.MinObservations), minBits: cfg.MinBits, skew: cfg.ClockSkew,
		maxPaths: cfg.MaxPaths, maxValues: cfg.MaxValues, seed: maphash.MakeSeed(), now: time.Now,
		paths: map[string]*pathProfile{},
	}
}

// Observe learns from one legacy answer: resp is the answer (a body that
// is not JSON teaches nothing), root the path root its values are named
// under ("body", or "published" for a published message), w the window in
// which it was produced and req the request it answered (head and body),
// for the echo check. Observe before comparing the answer, so that a
// comparison is judged on what its own legacy answer showed too.
func (p *Profile) Observe(resp Response, root string, w Window, req []byte) {
	p.observe(resp, root, &observation{w: w, req: req})
}

// ObserveKeyed is Observe for the answer to a request carrying an
// Idempotency-Key, which may replay an earlier answer the profile never
// saw (Replayed tells most of those): a time before the request's window
// is left unlearned rather than taken as proof that its path is not the
// request's clock. Only MinObservations such answers in a row at a path
// that never showed a time within its window make it computed.
func (p *Profile) ObserveKeyed(resp Response, root string, w Window, req []byte) {
	p.observe(resp, root, &observation{w: w, req: req, keyed: true})
}

// observation is one answer being observed (or, with check, tested by
// Replayed; with replay, taken as a replay by ObserveReplay): its window
// and request, and what the walk found.
type observation struct {
	w        Window
	req      []byte
	keyed    bool
	check    bool
	replay   bool
	replayed bool
}

// keyedBefore counts a time before its window, in an answer to a keyed
// request, at pp, a path that never showed one within: a replayed time,
// or a computed one, which only many in a row tell apart.
func (p *Profile) keyedBefore(pp *pathProfile) {
	if pp.keyedBefore++; pp.keyedBefore >= p.minObs {
		pp.seen = pp.keyedBefore
		p.compute(pp, fmt.Sprintf("%d answers to requests with an Idempotency-Key held times before their windows, and none within: not the request's clock", pp.keyedBefore))
	}
}

func (p *Profile) observe(resp Response, root string, o *observation) {
	if p == nil || len(resp.Body) == 0 || !isJSON(resp) {
		return
	}
	if n := p.offered.Add(1); n > settleAnswers && n%settledEvery != 0 {
		p.mu.RLock()
		settled := p.learning == 0
		p.mu.RUnlock()
		if settled {
			return
		}
	}
	p.visit(resp, root, o)
}

// parsedAnswer is resp's body parsed, for putTape; nil when it is not
// JSON (it teaches nothing).
func parsedAnswer(resp Response) *tape {
	if len(resp.Body) == 0 || !isJSON(resp) {
		return nil
	}
	t := getTape()
	if t.parse(bytesView(resp.Body)) != nil {
		putTape(t)
		return nil
	}
	return t
}

func (p *Profile) walk(t *tape, i int32, tpl []byte, o *observation) {
	nd := &t.nodes[i]
	switch nd.kind {
	case jObject:
		for c := i + 1; c < nd.end; c = t.nodes[c].end {
			p.walk(t, c, appendKey(tpl, t.key(c)), o)
		}
	case jArray:
		tpl = append(tpl, "[*]"...)
		for c := i + 1; c < nd.end; c = t.nodes[c].end {
			p.walk(t, c, tpl, o)
		}
	case jString, jNumber:
		pp := p.paths[string(tpl)]
		switch {
		case o.check:
			o.replayed = o.replayed || p.before(pp, t, i, nd.kind == jNumber, o.w)
			return
		case o.replay:
			p.replayedLeaf(pp, tpl, t, i, o.w)
			return
		}
		if pp == nil {
			if len(p.paths) >= p.maxPaths {
				p.untracked.Add(1)
				return
			}
			pp = &pathProfile{}
			p.paths[string(tpl)] = pp
			p.learning++
		}
		if pp.state == stateComputed {
			pp.seen++
			return
		}
		if nd.kind == jString {
			p.observeString(pp, t.str(i), o)
		} else {
			p.observeNumber(pp, t.lit(i), o)
		}
	}
}

// compute makes pp computed for good, with the reason.
func (p *Profile) compute(pp *pathProfile, why string) {
	if pp.state == stateLearning {
		p.learning--
	}
	if pp.state == stateGenerated || pp.state == stateClock {
		pp.was, pp.brokeAt = pp.state, p.now()
	}
	pp.state, pp.why = stateComputed, why
	pp.lit, pp.values = nil, nil
}

func (p *Profile) observeNumber(pp *pathProfile, lit string, o *observation) {
	t, l, ok := parseClockNumber(lit)
	if !ok {
		pp.seen++
		p.compute(pp, "a number, not a time: numbers are computed")
		return
	}
	if pp.seen == 0 {
		pp.clock, pp.layout = true, l
	}
	p.observeClock(pp, lit, t, l, o)
}

func (p *Profile) observeString(pp *pathProfile, v string, o *observation) {
	t, l, isTime := parseClockString(v)
	if pp.seen == 0 {
		pp.clock = isTime
		if isTime {
			pp.layout = l
		} else {
			pp.n, pp.lit = len(v), []byte(v)
			pp.values = map[uint64]struct{}{}
		}
	}
	if pp.clock {
		if !isTime {
			pp.seen++
			p.compute(pp, fmt.Sprintf("%s is not a time like the earlier values", quoteShort(v)))
			return
		}
		p.observeClock(pp, v, t, l, o)
		return
	}
	p.observeShape(pp, v, o.req)
}

func (p *Profile) observeClock(pp *pathProfile, v string, t time.Time, l timeLayout, o *observation) {
	w, req := o.w, o.req
	if !w.Known() {
		return // nothing to test it against: no evidence either way
	}
	if o.keyed && w.offset(t, l.precision(), p.skew) < 0 {
		if pp.seen == 0 {
			p.keyedBefore(pp)
		}
		return
	}
	pp.seen++
	if l != pp.layout && l.sameBut(pp.layout) {
		// Fraction digits that vary (a printer that trims trailing
		// zeros): the layout is "any number of digits".
		pp.layout.frac = fracAny
	}
	switch {
	case !l.matches(pp.layout):
		p.compute(pp, fmt.Sprintf("times in two layouts (%s and %s)", pp.layout, l))
		return
	case bytes.Contains(req, []byte(v)):
		p.compute(pp, fmt.Sprintf("the request carries %s: an echo, computed", quoteShort(v)))
		return
	}
	if off := w.offset(t, l.precision(), p.skew); off != 0 {
		p.compute(pp, fmt.Sprintf("%s lay %s %s its request's time window: not the request's clock",
			quoteShort(v), roundDur(abs(off)), beforeAfter(off)))
		return
	}
	// early: how far before the call began a value read (its precision
	// truncates it); late: how far after the answer arrived (clock skew).
	e, la := w.Start.Sub(t), t.Sub(w.End)
	if pp.seen == 1 {
		pp.early, pp.late = e, la
	}
	pp.early, pp.late = max(pp.early, e), max(pp.late, la)
	if pp.state == stateLearning && pp.seen >= p.minObs {
		pp.state = stateClock
		p.learning--
	}
	if pp.state == stateClock {
		pp.why = fmt.Sprintf("each of %d legacy values (%s) lay within its request's time window (at most %s before the call began, %s after its answer arrived)",
			pp.seen, pp.layout, roundDur(max(pp.early, 0)), roundDur(max(pp.late, 0)))
	}
}

func (p *Profile) observeShape(pp *pathProfile, v string, req []byte) {
	pp.seen++
	if len(v) != pp.n {
		p.compute(pp, fmt.Sprintf("values of different lengths (%d and %d bytes)", pp.n, len(v)))
		return
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		cc := classOf(c)
		switch l := pp.lit[i]; {
		case l != 0 && c == l:
		case l != 0:
			lc := classOf(l)
			if cc == 0 || lc == 0 {
				p.compute(pp, fmt.Sprintf("values of different shapes (%q and %q at byte %d)", l, c, i))
				return
			}
			pp.classes |= cc | lc
			pp.lit[i] = 0
		case cc == 0:
			p.compute(pp, fmt.Sprintf("values of different shapes (%q at byte %d, a letter or digit before)", c, i))
			return
		default:
			pp.classes |= cc
		}
	}
	h := maphash.String(p.seed, v)
	if _, dup := pp.values[h]; dup {
		p.compute(pp, fmt.Sprintf("%s repeated across legacy answers: computed, not generated", quoteShort(v)))
		return
	}
	if bytes.Contains(req, []byte(v)) {
		p.compute(pp, fmt.Sprintf("the request carries %s: an echo, computed", quoteShort(v)))
		return
	}
	if len(pp.values) < p.maxValues {
		pp.values[h] = struct{}{}
	}
	if pp.state == stateLearning && pp.seen >= p.minObs {
		if b := pp.bits(); b < p.minBits {
			p.compute(pp, fmt.Sprintf("%d distinct values of one shape %s, but with only ~%d bits of variation: computed, not generated",
				pp.seen, pp.shape(), b))
			return
		}
		pp.state = stateGenerated
		p.learning--
	}
	if pp.state == stateGenerated {
		pp.why = fmt.Sprintf("%d legacy values, none repeated, all of one shape %s (~%d bits of variation)", pp.seen, pp.shape(), pp.bits())
	}
}

// bits estimates the variation of the shape: varying bytes times the
// bits of their alphabet.
func (pp *pathProfile) bits() int {
	vary := 0
	for _, l := range pp.lit {
		if l == 0 {
			vary++
		}
	}
	return int(float64(vary) * math.Log2(float64(max(alphabetSize(pp.classes), 1))))
}

// shape renders the shape: separators as they are, each varying byte as
// x, and the alphabet of the x's.
func (pp *pathProfile) shape() string {
	b := make([]byte, 0, len(pp.lit)+24)
	for _, l := range pp.lit {
		if l == 0 {
			b = append(b, 'x')
		} else {
			b = append(b, l)
		}
	}
	return "`" + string(b) + "` (x in " + classNames(pp.classes) + ")"
}

func classNames(c uint8) string {
	var s string
	for _, r := range []struct {
		bit  uint8
		name string
	}{{clDigit, "0-9"}, {clHexLower, "a-f"}, {clLower, "g-z"}, {clHexUpper, "A-F"}, {clUpper, "G-Z"}, {clPunct, "-_+/"}} {
		if c&r.bit != 0 {
			s += r.name
		}
	}
	return "[" + s + "]"
}

// fits reports whether v has the learned shape.
func (pp *pathProfile) fits(v string) bool {
	if len(v) != pp.n {
		return false
	}
	for i := 0; i < len(v); i++ {
		if l := pp.lit[i]; l != 0 {
			if v[i] != l {
				return false
			}
		} else if c := classOf(v[i]); c == 0 || c&pp.classes == 0 {
			return false
		}
	}
	return true
}

// mayFit is fits for a path still learning, whose separators are known
// but whose varying bytes are not yet: the same length, and the same bytes
// where either value has a separator. A letter or digit of a class the
// legacy values have not shown yet may fit: a few random ids can lack one
// (all digits, one hex id in ~1,800), so the class is judged by Settle,
// once the path is classified.
func (pp *pathProfile) mayFit(v string) bool {
	if len(v) != pp.n {
		return false
	}
	for i := 0; i < len(v); i++ {
		c, l := v[i], pp.lit[i]
		if c != l && (classOf(c) == 0 || (l != 0 && classOf(l) == 0)) {
			return false
		}
	}
	return true
}

// treatment is what a profile says about one differing leaf.
type treatment uint8

const (
	treatValue     treatment = iota // compare by value
	treatExplained                  // both fit: noise
	treatPending                    // the path is still learning and both may fit
	treatFormat                     // a value is not of the learned shape or layout
	treatOutside                    // a time outside its request's window
)

// pendingValues keeps what a pending difference needs to be settled once
// its path is classified: both raw values (never shown).
type pendingValues struct{ p, q string }

// treat decides a differing leaf at template tpl: the primary's and the
// candidate's values (string contents, or number literals when num) and
// the windows in which each was produced.
func (p *Profile) treat(tpl []byte, pv, qv string, num bool, wp, wq Window) (treatment, string) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	pp := p.paths[string(tpl)]
	if pp == nil || pp.state == stateComputed || pp.seen == 0 {
		return treatValue, ""
	}
	if pp.clock {
		parse := parseClockString
		if num {
			parse = parseClockNumber
		}
		tp, lp, okp := parse(pv)
		tq, lq, okq := parse(qv)
		learning := pp.state == stateLearning
		// While learning, the number of fraction digits may yet turn out
		// to vary (a printer trimming zeros): settled later.
		layoutOK := okp && okq && (lp.matches(pp.layout) && lq.matches(pp.layout) ||
			learning && lp.sameBut(pp.layout) && lq.sameBut(pp.layout))
		switch {
		case !layoutOK:
			if learning {
				return treatValue, ""
			}
			pp.refused.Add(1)
			return treatFormat, "legacy's values here are times in the layout " + pp.layout.String()
		case !wp.Known() || !wq.Known():
			if learning {
				return treatValue, ""
			}
			pp.refused.Add(1)
			return treatOutside, "no time window is known for one of the answers"
		}
		prec := max(lp.precision(), lq.precision(), pp.layout.precision())
		for _, s := range []struct {
			t    time.Time
			w    Window
			side string
		}{{tp, wp, "primary"}, {tq, wq, "candidate"}} {
			if off := s.w.offset(s.t, prec, p.skew); off != 0 {
				if learning {
					return treatValue, ""
				}
				pp.refused.Add(1)
				return treatOutside, fmt.Sprintf("the %s's time lay %s %s its request's time window", s.side, roundDur(abs(off)), beforeAfter(off))
			}
		}
		if learning {
			return treatPending, ""
		}
		pp.explained.Add(1)
		return treatExplained, "clock"
	}
	if num {
		return treatValue, ""
	}
	if pp.state == stateLearning {
		if pp.mayFit(pv) && pp.mayFit(qv) {
			return treatPending, ""
		}
		return treatValue, ""
	}
	if pp.fits(pv) && pp.fits(qv) {
		pp.explained.Add(1)
		return treatExplained, "generated"
	}
	pp.refused.Add(1)
	return treatFormat, "legacy's values here are generated, of the shape " + pp.shape()
}

// Settle decides a pending difference once its path is classified: it
// becomes noise (Noise, NoiseBy) or a real difference (with a Note when
// it is one because of its shape). It reports false while the path is
// still learning.
func (p *Profile) Settle(d *Diff) bool {
	if !d.Pending {
		return true
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	pp := p.paths[d.Template]
	if pp == nil {
		d.Pending, d.pend = false, nil
		return true
	}
	switch pp.state {
	case stateLearning:
		return false
	case stateClock:
		// The windows were checked when the difference was found; the
		// layout is known only now.
		if d.pend != nil && clockFits(d.pend.p, pp.layout) && clockFits(d.pend.q, pp.layout) {
			d.Noise, d.NoiseBy = true, "clock"
			pp.explained.Add(1)
		} else {
			d.Kind, d.Note = settledKind(d.Kind), "legacy's values here are times in the layout "+pp.layout.String()
			pp.refused.Add(1)
		}
	case stateGenerated:
		if d.pend != nil && pp.fits(d.pend.p) && pp.fits(d.pend.q) {
			d.Noise, d.NoiseBy = true, "generated"
			pp.explained.Add(1)
		} else {
			d.Kind, d.Note = settledKind(d.Kind), "legacy's values here are generated, of the shape "+pp.shape()
			pp.refused.Add(1)
		}
	}
	d.Pending, d.pend = false, nil
	return true
}

// settledKind is the kind of a pending difference whose value is not of
// the learned shape or layout: format, but a finding about the Go side
// answering twice stays one.
func settledKind(k Kind) Kind {
	if k == KindNondeterministic {
		return k
	}
	return KindFormat
}

// clockFits reports whether v (a string's contents or a number literal)
// is a time of layout l.
func clockFits(v string, l timeLayout) bool {
	parse := parseClockString
	if l.epoch != 0 {
		parse = parseClockNumber
	}
	_, lv, ok := parse(v)
	return ok && lv.matches(l)
}

// Fields lists every path that is or was classified generated or clock,
// and those still learning, most observed first. Paths computed from the
// start are the rule, not news, and are left out.
func (p *Profile) Fields() []ProfileField {
	if p == nil {
		return nil
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	var out []ProfileField
	for t, pp := range p.paths {
		if pp.state == stateComputed && pp.was == stateLearning {
			continue
		}
		f := ProfileField{
			Template: t, Class: pp.state.String(), Evidence: pp.why, Observations: pp.seen,
			Explained: pp.explained.Load(), Refused: pp.refused.Load(),
		}
		if pp.state == stateLearning {
			f.Evidence = fmt.Sprintf("%d of %d legacy answers seen so far", pp.seen, p.minObs)
		}
		if pp.was != stateLearning {
			f.Was, f.Since = pp.was.String(), pp.brokeAt
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b ProfileField) int {
		return cmp.Or(cmp.Compare(b.Observations, a.Observations), cmp.Compare(a.Template, b.Template))
	})
	return out
}

// Answers counts the legacy answers observed.
func (p *Profile) Answers() uint64 {
	if p == nil {
		return 0
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.answers
}

// Learning reports whether template is still learning.
func (p *Profile) Learning(template string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	pp := p.paths[template]
	return pp != nil && pp.state == stateLearning
}

func quoteShort(s string) string {
	if len(s) > 48 {
		s = s[:45] + "..."
	}
	return fmt.Sprintf("%q", s)
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func beforeAfter(off time.Duration) string {
	if off < 0 {
		return "before"
	}
	return "after"
}

// roundDur prints a duration to three significant digits.
func roundDur(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	r := time.Duration(1)
	for n := bits.Len64(uint64(d)); d >= 1000*r && n > 0; n-- {
		r *= 10
	}
	s := d.Round(r).String()
	if neg {
		return "-" + s
	}
	return s
}
