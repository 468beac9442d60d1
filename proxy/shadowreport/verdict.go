package shadowreport

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Thresholds decide when a route is ready to flip to Go. Zero values take
// the defaults.
type Thresholds struct {
	// TargetMismatchRate is the mismatch rate the verdict must show to be
	// below at 95 % confidence. By the rule of three, N comparisons with
	// no unexplained mismatch put the rate below 3/N at 95 %, so ready
	// needs zero unexplained mismatches over ⌈3/TargetMismatchRate⌉
	// comparisons. Zero: 0.001 (3,000 comparisons).
	TargetMismatchRate float64 `mapstructure:"target_mismatch_rate"`
	// MaxErrorRateGap is how much higher Go's error rate may be than
	// legacy's, as a fraction of calls. Zero: 0.001 (0.1 points).
	MaxErrorRateGap float64 `mapstructure:"max_error_rate_gap"`
	// MaxP99Ratio is Go's p99 latency over legacy's, measured alike
	// (Latency.Measure). Zero: 1.5.
	MaxP99Ratio float64 `mapstructure:"max_p99_ratio"`
	// AllowUncomparedSideEffects lets a route be ready although the Go
	// side published messages that could not be compared with the legacy
	// side's. Zero value (false): that is "not ready".
	AllowUncomparedSideEffects bool `mapstructure:"allow_uncompared_side_effects"`
}

// Threshold defaults.
const (
	DefaultTargetMismatchRate = 0.001
	DefaultMaxErrorRateGap    = 0.001
	DefaultMaxP99Ratio        = 1.5
)

// WithDefaults fills zero fields.
func (t Thresholds) WithDefaults() Thresholds {
	if t.TargetMismatchRate == 0 {
		t.TargetMismatchRate = DefaultTargetMismatchRate
	}
	if t.MaxErrorRateGap == 0 {
		t.MaxErrorRateGap = DefaultMaxErrorRateGap
	}
	if t.MaxP99Ratio == 0 {
		t.MaxP99Ratio = DefaultMaxP99Ratio
	}
	return t
}

// Needed is how many clean comparisons, none unexplained, show the
// mismatch rate below TargetMismatchRate at 95 % confidence (the rule of
// three).
func (t Thresholds) Needed() uint64 {
	t = t.WithDefaults()
	return uint64(math.Ceil(3/t.TargetMismatchRate - 1e-9))
}

// Check is one condition of a verdict.
type Check struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	OK   bool   `json:"ok"`
}

// Verdict says whether a route is ready to flip, and why.
type Verdict struct {
	Ready      bool       `json:"ready"`
	Thresholds Thresholds `json:"thresholds"`
	// Needed clean comparisons (Thresholds.Needed).
	Needed uint64  `json:"needed"`
	Checks []Check `json:"checks"`
	// Confidence states what the comparisons show, in words: "fewer than
	// 1 in 1,000 at 95 % confidence" once enough are clean.
	Confidence string `json:"confidence"`
	// Reasons restate the failed checks in words.
	Reasons []string `json:"reasons,omitempty"`
}

// Verdict judges the snapshot against th.
func (s Snapshot) Verdict(th Thresholds) Verdict {
	th = th.WithDefaults()
	need := th.Needed()
	v := Verdict{Thresholds: th, Needed: need, Ready: true}
	add := func(c Check, reason string) {
		v.Checks = append(v.Checks, c)
		if !c.OK {
			v.Ready = false
			v.Reasons = append(v.Reasons, reason)
		}
	}
	k := s.Counts
	target := OneIn(th.TargetMismatchRate)
	add(Check{Name: "unexplained mismatches", Want: "0", Got: Count(k.Mismatch), OK: k.Mismatch == 0},
		fmt.Sprintf("%s comparisons differ in ways nothing explains (noise, an accept rule); see the differing paths", Count(k.Mismatch)))
	clean := k.Clean()
	add(Check{Name: "clean comparisons", Want: fmt.Sprintf("≥ %s (rule of three: fewer than %s at 95 %% confidence)", Count(need), target),
		Got: Count(clean), OK: clean >= need},
		fmt.Sprintf("%s clean comparisons of the %s needed to show fewer than %s at 95 %% confidence", Count(clean), Count(need), target))
	add(Check{Name: "pending", Want: "0", Got: Count(k.Pending), OK: k.Pending == 0},
		fmt.Sprintf("%s comparisons wait for the paths they differ at to be classified from more legacy answers", Count(k.Pending)))

	lg, gg := s.Latency.Legacy, s.Latency.Ported
	gap := gg.ErrorRate - lg.ErrorRate
	add(Check{Name: "error rate gap", Want: "≤ " + Percent(th.MaxErrorRateGap),
		Got: fmt.Sprintf("%s (Go %s, legacy %s)", Percent(gap), Percent(gg.ErrorRate), Percent(lg.ErrorRate)),
		OK:  gg.Calls > 0 && gap <= th.MaxErrorRateGap},
		errorGapReason(gg.Calls, gap, th.MaxErrorRateGap))

	ratio, ok := p99Ratio(lg, gg)
	got := "no latency data"
	if ok {
		got = fmt.Sprintf("%.2f× (Go %s, legacy %s; %s)", ratio, Millis(gg.P99), Millis(lg.P99), measureText(s.Latency.Measure))
	}
	add(Check{Name: "p99 ratio", Want: fmt.Sprintf("≤ %.2f×", th.MaxP99Ratio), Got: got, OK: ok && ratio <= th.MaxP99Ratio},
		p99Reason(ok, ratio, th.MaxP99Ratio))

	se := s.SideEffects
	seGot := "nothing published by the Go side"
	switch {
	case se.Uncompared > 0:
		seGot = fmt.Sprintf("not compared in %s comparisons (%s); compared in %s", Count(se.Uncompared), se.Reason, Count(se.Compared))
	case se.Compared > 0:
		seGot = fmt.Sprintf("compared in %s comparisons", Count(se.Compared))
	}
	want := "compared whenever the Go side publishes"
	if th.AllowUncomparedSideEffects {
		want = "compared where a source exists (allow_uncompared_side_effects)"
	}
	add(Check{Name: "side effects", Want: want, Got: seGot, OK: se.Uncompared == 0 || th.AllowUncomparedSideEffects},
		fmt.Sprintf("side effects not compared: the Go side published in %s comparisons and %s", Count(se.Uncompared), se.Reason))

	switch {
	case k.Mismatch > 0:
		v.Confidence = fmt.Sprintf("%s unexplained mismatches: no confidence statement until the rules or the port change (a new epoch)", Count(k.Mismatch))
	case clean == 0:
		v.Confidence = "nothing compared yet"
	case clean >= need:
		v.Confidence = fmt.Sprintf("fewer than %s at 95 %% confidence (%s clean comparisons, none unexplained)", target, Count(clean))
	default:
		v.Confidence = fmt.Sprintf("fewer than %s at 95 %% confidence so far (%s clean comparisons; %s needed for %s)",
			OneIn(3/float64(clean)), Count(clean), Count(need), target)
	}
	return v
}

func measureText(m string) string {
	if m == MeasureCalls {
		return "each side's call in the same shadowed requests"
	}
	return "answers served to clients"
}

// OneIn writes a rate as "1 in N" (0.001 → "1 in 1,000"), N rounded down
// so that the statement never claims more than the rate (0.15 → 1 in 6).
func OneIn(rate float64) string {
	if rate >= 1 {
		return "1 in 1"
	}
	return "1 in " + Count(uint64(math.Floor(1/rate+1e-9)))
}

// Count writes n with thousands separators.
func Count(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func errorGapReason(calls uint64, gap, maxGap float64) string {
	if calls == 0 {
		return "no calls to the Go side yet"
	}
	return fmt.Sprintf("Go fails %s more often than legacy (allowed %s)", Percent(gap), Percent(maxGap))
}

func p99Reason(ok bool, ratio, maxRatio float64) string {
	if !ok {
		return "latency of both sides is needed"
	}
	return fmt.Sprintf("Go's p99 is %.2f× legacy's (allowed %.2f×)", ratio, maxRatio)
}

func p99Ratio(legacy, ported SideStats) (float64, bool) {
	if legacy.Calls == 0 || ported.Calls == 0 || legacy.P99 <= 0 || ported.P99 <= 0 {
		return 0, false
	}
	return float64(ported.P99) / float64(legacy.P99), true
}

// Budgets are a route's safety net: breaching one demotes it to legacy
// until a person re-enables it. Zero limits are off.
type Budgets struct {
	// MaxMismatchRate of comparisons in the window.
	MaxMismatchRate float64 `mapstructure:"max_mismatch_rate"`
	// MaxErrorRate of Go calls in the window, above legacy's rate when
	// legacy had MinSamples calls in it (so a shared outage — the database
	// is down for both — demotes nothing), else absolute.
	MaxErrorRate float64 `mapstructure:"max_error_rate"`
	// MaxP99Ratio of Go's p99 over legacy's in the window; needs
	// MinSamples calls on each side.
	MaxP99Ratio float64 `mapstructure:"max_p99_ratio"`
	// Window of recent minutes judged, at most 60. Zero: 5 minutes.
	Window time.Duration `mapstructure:"window"`
	// MinSamples before a rate is judged: no demotion on three requests.
	// Zero: 100.
	MinSamples uint64 `mapstructure:"min_samples"`
}

// Breached evaluates b over the recent window and names the first budget
// breached. The demotion itself is the caller's to keep.
func (c *Collector) Breached(b Budgets) (bool, string) { return c.BreachedSince(b, time.Time{}) }

// BreachedSince is Breached over the part of the window after since: the
// minutes that began after it. A route re-enabled by a person is judged
// on what happened after the re-enable, not on what demoted it.
func (c *Collector) BreachedSince(b Budgets, since time.Time) (bool, string) {
	if b.MinSamples == 0 {
		b.MinSamples = 100
	}
	minutes := int64(b.Window / time.Minute)
	if minutes <= 0 {
		minutes = 5
	}
	minutes = min(minutes, ringMinutes)
	w := c.window(minutes, since)
	if b.MaxMismatchRate > 0 && w.compared >= b.MinSamples {
		if r := float64(w.mismatch) / float64(w.compared); r > b.MaxMismatchRate {
			return true, fmt.Sprintf("mismatch rate %s over the last %d min exceeds the budget of %s (%d of %d comparisons)",
				Percent(r), minutes, Percent(b.MaxMismatchRate), w.mismatch, w.compared)
		}
	}
	if b.MaxErrorRate > 0 && w.calls[1] >= b.MinSamples {
		goRate := float64(w.fails[1]) / float64(w.calls[1])
		base, against := 0.0, ""
		if w.calls[0] >= b.MinSamples {
			base = float64(w.fails[0]) / float64(w.calls[0])
			against = fmt.Sprintf(" above legacy's %s", Percent(base))
		}
		if goRate-base > b.MaxErrorRate {
			return true, fmt.Sprintf("Go error rate %s%s over the last %d min exceeds the budget of %s",
				Percent(goRate), against, minutes, Percent(b.MaxErrorRate))
		}
	}
	if b.MaxP99Ratio > 0 && w.calls[0] >= b.MinSamples && w.calls[1] >= b.MinSamples {
		// The same measure on both sides: timed calls in shadow mode,
		// served answers in canary.
		lat := &w.lat
		if w.call[0].count() > 0 && w.call[1].count() > 0 {
			lat = &w.call
		}
		lp, gp := lat[0].quantile(0.99), lat[1].quantile(0.99)
		if lp > 0 && float64(gp)/float64(lp) > b.MaxP99Ratio {
			return true, fmt.Sprintf("Go p99 %s is %.2f× legacy's %s over the last %d min, above the budget of %.2f×",
				Millis(gp), float64(gp)/float64(lp), Millis(lp), minutes, b.MaxP99Ratio)
		}
	}
	return false, ""
}

// windowCounts sums the ring over recent minutes.
type windowCounts struct {
	counts
	lat, call [2]histTotal
}

func (c *Collector) window(minutes int64, since time.Time) windowCounts {
	now := c.s.now().Unix() / 60
	first := now - minutes + 1
	if !since.IsZero() {
		first = max(first, since.Unix()/60+1)
	}
	var w windowCounts
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.ring {
		m := &c.ring[i]
		if m.start < first || m.start > now {
			continue
		}
		w.compared += m.compared
		w.match += m.match
		w.mismatch += m.mismatch
		w.noiseOnly += m.noiseOnly
		w.accepted += m.accepted
		w.errors += m.errors
		w.skipped += m.skipped
		for s := range 2 {
			w.served[s] += m.served[s]
			w.calls[s] += m.calls[s]
			w.fails[s] += m.fails[s]
			w.lat[s].addHist(&m.lat[s])
			w.call[s].addHist(&m.call[s])
		}
	}
	return w
}

// Percent formats a fraction as a percentage with two decimals.
func Percent(f float64) string { return fmt.Sprintf("%.2f %%", f*100) }

// Millis formats a duration in milliseconds with two decimals.
func Millis(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}
