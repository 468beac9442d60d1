package compare

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Outcome is what became of one shadowed request.
type Outcome string

// Outcomes. Judge returns the first four and pending; the caller records
// error and skipped when no comparison could be made.
const (
	OutcomeMatch     Outcome = "match"
	OutcomeMismatch  Outcome = "mismatch"   // at least one difference nothing explains
	OutcomeNoiseOnly Outcome = "noise_only" // every difference is the legacy side's own noise
	OutcomeAccepted  Outcome = "accepted"   // every difference is noise or accepted, one at least accepted
	OutcomeError     Outcome = "error"      // a side failed (handler error, timeout)
	OutcomeSkipped   Outcome = "skipped"    // not compared (pool full, body too large...)
	// OutcomePending: every difference is explained or at a path still
	// learning; the comparison is judged once the path is classified.
	OutcomePending Outcome = "pending"
)

// Outcomes lists every final Outcome, in report order.
func Outcomes() []Outcome {
	return []Outcome{OutcomeMatch, OutcomeMismatch, OutcomeNoiseOnly, OutcomeAccepted, OutcomeError, OutcomeSkipped}
}

// Judge says what a Result amounts to. A Result with dropped differences
// is a mismatch: what was dropped is unknown.
func Judge(r *Result) Outcome {
	if r.Equal() {
		return OutcomeMatch
	}
	if r.Dropped > 0 {
		return OutcomeMismatch
	}
	pending, accepted := false, false
	for i := range r.Diffs {
		d := &r.Diffs[i]
		switch {
		case d.Noise:
		case d.Accepted != "":
			accepted = true
		case d.Pending:
			pending = true
		default:
			return OutcomeMismatch
		}
	}
	switch {
	case pending:
		return OutcomePending
	case accepted:
		return OutcomeAccepted
	}
	return OutcomeNoiseOnly
}

// Noise defaults. The thresholds are Diffy's (relative 20 %, absolute
// 0.03 %), applied the way Diffy applies them: a path differing between
// primary and candidate is real only when it differs more often than the
// primary differs from itself by both margins. MinDiffs is ours: Diffy
// calls two primaries on every request, we call a second primary on a
// sample, so a path must have differed from itself at least three times
// before it may silence anything — one flaky pair must not hide a bug.
const (
	DefaultNoiseMinDiffs          = 3
	DefaultNoiseRelativeThreshold = 0.20
	DefaultNoiseAbsoluteThreshold = 0.0003
	DefaultNoiseMaxPaths          = 1000
	DefaultNoiseWarmup            = 20
	DefaultNoiseEvery             = 100
	DefaultNoiseSettleAfter       = 100_000
	DefaultNoiseSettledEvery      = 1000
)

// NoiseConfig tunes a Noise learner. Zero values take the defaults above.
type NoiseConfig struct {
	// MinDiffs is how many primary pairs must differ at a path before it
	// can be noise.
	MinDiffs int `mapstructure:"min_diffs"`
	// RelativeThreshold: a path is real when (raw−noise)/(raw+noise) of
	// its difference rates exceeds it (and AbsoluteThreshold holds).
	RelativeThreshold float64 `mapstructure:"relative_threshold"`
	// AbsoluteThreshold: a path is real when raw−noise of its difference
	// rates exceeds it, as a fraction (0.0003 = 0.03 percentage points).
	AbsoluteThreshold float64 `mapstructure:"absolute_threshold"`
	// MaxPaths bounds the templates tracked; beyond it new paths are not
	// tracked and count as real differences.
	MaxPaths int `mapstructure:"max_paths"`
	// Warmup: Sample says yes to this many first requests, so noise is
	// known early.
	Warmup int `mapstructure:"warmup"`
	// Every: after Warmup, Sample says yes to one request in Every.
	Every int `mapstructure:"every"`
	// SettleAfter and SettledEvery: after SettleAfter requests (1,000
	// pairs at the defaults) the sample thins to one request in
	// SettledEvery. Each sampled request is a second call to the primary
	// side — for a legacy primary, more load on the monolith — and by then
	// the noise rates are known; a thin sample keeps them current.
	// SettledEvery equal to Every keeps the sample as it is.
	SettleAfter  int `mapstructure:"settle_after"`
	SettledEvery int `mapstructure:"settled_every"`

	// The Profile of the legacy side's answers across requests.
	//
	// MinObservations is how many legacy answers must show a path before
	// it is classified generated, clock or computed.
	MinObservations int `mapstructure:"min_observations"`
	// MinBits is the variation a shape needs for its values to count as
	// generated: a 36-byte UUID has about 122 bits, a 6-digit id 20.
	MinBits int `mapstructure:"min_bits"`
	// ClockSkew is how far the legacy host's clock may be from the
	// proxy's when a time is checked against its request's window.
	ClockSkew time.Duration `mapstructure:"clock_skew"`
	// MaxValues bounds the values remembered per path for the repeat
	// check; past it new values are checked but not remembered.
	MaxValues int `mapstructure:"max_values"`
}

func (c NoiseConfig) withDefaults() NoiseConfig {
	if c.MinDiffs <= 0 {
		c.MinDiffs = DefaultNoiseMinDiffs
	}
	if c.RelativeThreshold <= 0 {
		c.RelativeThreshold = DefaultNoiseRelativeThreshold
	}
	if c.AbsoluteThreshold <= 0 {
		c.AbsoluteThreshold = DefaultNoiseAbsoluteThreshold
	}
	if c.MaxPaths <= 0 {
		c.MaxPaths = DefaultNoiseMaxPaths
	}
	if c.Warmup <= 0 {
		c.Warmup = DefaultNoiseWarmup
	}
	if c.Every <= 0 {
		c.Every = DefaultNoiseEvery
	}
	if c.SettleAfter <= 0 {
		c.SettleAfter = DefaultNoiseSettleAfter
	}
	if c.SettledEvery <= 0 {
		c.SettledEvery = DefaultNoiseSettledEvery
	}
	if c.MinObservations <= 0 {
		c.MinObservations = DefaultMinObservations
	}
	if c.MinBits <= 0 {
		c.MinBits = DefaultMinBits
	}
	if c.ClockSkew <= 0 {
		c.ClockSkew = DefaultClockSkew
	}
	if c.MaxValues <= 0 {
		c.MaxValues = DefaultMaxValues
	}
	return c
}

// Noise learns which paths differ between two answers of the legacy side
// to the same request (Diffy's idea: ask the same side twice), and
// discounts them in later comparisons. Only the legacy side is ever asked
// twice for noise, and only for safe methods: what the Go side does is
// what is being judged. Safe for concurrent use; memory is bounded by
// MaxPaths.
type Noise struct {
	cfg     NoiseConfig
	sampled atomic.Uint64

	mu          sync.Mutex
	pairs       uint64 // primary pairs learned from
	comparisons uint64 // primary/candidate comparisons classified
	gen         uint64 // dedupes a template within one result
	paths       map[string]*pathStats
	untracked   uint64
}

type pathStats struct {
	noise, raw uint64
	gen        uint64
}

// NewNoise returns an empty learner.
func NewNoise(cfg NoiseConfig) *Noise {
	return &Noise{cfg: cfg.withDefaults(), paths: map[string]*pathStats{}}
}

// Sample says whether this request should also go to each side a second
// time (the legacy side to learn noise, the Go side to check that it
// answers alike): the first Warmup requests, then one in Every, and after
// SettleAfter requests one in SettledEvery.
func (n *Noise) Sample() bool {
	i := n.sampled.Add(1)
	every := n.cfg.Every
	if i > uint64(n.cfg.SettleAfter) {
		every = n.cfg.SettledEvery
	}
	return i <= uint64(n.cfg.Warmup) || i%uint64(every) == 0
}

// Learn records the differences between two answers of the legacy side
// to one request (the Result of Diff(legacy1, legacy2)).
func (n *Noise) Learn(r Result) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pairs++
	n.gen++
	for _, d := range r.Diffs {
		s := n.entry(d.Template, true)
		if s != nil && s.gen != n.gen {
			s.gen = n.gen
			s.noise++
		}
	}
}

// Classify records a primary/candidate Result, marks the differences its
// learned noise explains (Diff.Noise, NoiseBy "legacy_twin") and returns
// the Result's outcome (Judge). A difference is twin noise when its
// template is learned noise, or when self — the Result of the legacy
// side's second answer to this same request, nil when the request was not
// sampled — differs at the same template: direct evidence, as in Diffy's
// three-way comparison, and what keeps the warm-up requests from being
// reported before enough pairs are learned. A nondeterministic difference
// (Go against itself) is never noise.
func (n *Noise) Classify(r *Result, self *Result) Outcome {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.comparisons++
	if r.Equal() {
		return OutcomeMatch
	}
	n.gen++
	for _, d := range r.Diffs {
		if d.Kind == KindNondeterministic {
			continue
		}
		if s := n.entry(d.Template, false); s != nil && s.gen != n.gen {
			s.gen = n.gen
			s.raw++
		}
	}
	for i := range r.Diffs {
		d := &r.Diffs[i]
		if d.Noise || d.Kind == KindNondeterministic {
			continue
		}
		if n.isNoise(d.Template) || (self != nil && hasTemplate(self, d.Template)) {
			d.Noise, d.NoiseBy, d.Pending, d.pend = true, "legacy_twin", false, nil
		}
	}
	return Judge(r)
}

func hasTemplate(r *Result, t string) bool {
	for _, d := range r.Diffs {
		if d.Template == t {
			return true
		}
	}
	return false
}

// IsNoise reports whether differences at template are currently
// discounted as noise.
func (n *Noise) IsNoise(template string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.isNoise(template)
}

func (n *Noise) isNoise(template string) bool {
	s := n.paths[template]
	if s == nil || s.noise < uint64(n.cfg.MinDiffs) {
		return false
	}
	noiseRate := float64(s.noise) / float64(n.pairs)
	rawRate := 0.0
	if n.comparisons > 0 {
		rawRate = float64(s.raw) / float64(n.comparisons)
	}
	gap := rawRate - noiseRate
	significant := gap > 0 && gap/(rawRate+noiseRate) > n.cfg.RelativeThreshold && gap > n.cfg.AbsoluteThreshold
	return !significant
}

// entry returns the stats of template, creating them if room is left. A
// noise path may evict a path that has never been noisy: those only matter
// next to a noise count.
func (n *Noise) entry(template string, forNoise bool) *pathStats {
	if s := n.paths[template]; s != nil {
		return s
	}
	if len(n.paths) >= n.cfg.MaxPaths {
		if !forNoise || !n.evictQuiet() {
			n.untracked++
			return nil
		}
	}
	s := &pathStats{}
	// A Diff's template shares one allocation with its renderings: the
	// key kept for ever is a copy of the template alone.
	n.paths[strings.Clone(template)] = s
	return s
}

func (n *Noise) evictQuiet() bool {
	for k, s := range n.paths {
		if s.noise == 0 {
			delete(n.paths, k)
			return true
		}
	}
	return false
}

// NoiseField is what the learner knows about one template that has
// differed between two primary answers.
type NoiseField struct {
	Template string `json:"template"`
	// NoiseDiffs of Pairs primary pairs differed here.
	NoiseDiffs uint64  `json:"noise_diffs"`
	Pairs      uint64  `json:"pairs"`
	NoiseRate  float64 `json:"noise_rate"`
	// RawDiffs of Comparisons primary/candidate comparisons differed here.
	RawDiffs    uint64  `json:"raw_diffs"`
	Comparisons uint64  `json:"comparisons"`
	RawRate     float64 `json:"raw_rate"`
	// Noise: differences here are discounted now.
	Noise bool `json:"noise"`
}

// Fields lists every template seen differing between primary answers,
// most often first, whether or not it is discounted: noise is shown, not
// hidden.
func (n *Noise) Fields() []NoiseField {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []NoiseField
	for t, s := range n.paths {
		if s.noise == 0 {
			continue
		}
		f := NoiseField{
			Template: t, NoiseDiffs: s.noise, Pairs: n.pairs, RawDiffs: s.raw,
			Comparisons: n.comparisons, Noise: n.isNoise(t),
		}
		f.NoiseRate = float64(s.noise) / float64(n.pairs)
		if n.comparisons > 0 {
			f.RawRate = float64(s.raw) / float64(n.comparisons)
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b NoiseField) int {
		return cmp.Or(cmp.Compare(b.NoiseDiffs, a.NoiseDiffs), cmp.Compare(a.Template, b.Template))
	})
	return out
}

// Pairs returns how many primary pairs the learner has seen.
func (n *Noise) Pairs() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pairs
}
