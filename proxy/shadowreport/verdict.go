package shadowreport

import (
	"fmt"
	"time"
)

// Thresholds decide when a route is ready to flip to Go. Zero values take
// the defaults.
type Thresholds struct {
	// MinComparisons before any verdict. Zero: 1000.
	MinComparisons uint64 `mapstructure:"min_comparisons"`
	// MinMatchRate of compared requests that matched (noise-only counts
	// as matched). Zero: 0.999.
	MinMatchRate float64 `mapstructure:"min_match_rate"`
	// MaxErrorRateGap is how much higher Go's error rate may be than
	// legacy's, as a fraction of calls. Zero: 0.001 (0.1 points).
	MaxErrorRateGap float64 `mapstructure:"max_error_rate_gap"`
	// MaxP99Ratio is Go's p99 latency over legacy's. Zero: 1.5.
	MaxP99Ratio float64 `mapstructure:"max_p99_ratio"`
}

// Threshold defaults.
const (
	DefaultMinComparisons  = 1000
	DefaultMinMatchRate    = 0.999
	DefaultMaxErrorRateGap = 0.001
	DefaultMaxP99Ratio     = 1.5
)

// WithDefaults fills zero fields.
func (t Thresholds) WithDefaults() Thresholds {
	if t.MinComparisons == 0 {
		t.MinComparisons = DefaultMinComparisons
	}
	if t.MinMatchRate == 0 {
		t.MinMatchRate = DefaultMinMatchRate
	}
	if t.MaxErrorRateGap == 0 {
		t.MaxErrorRateGap = DefaultMaxErrorRateGap
	}
	if t.MaxP99Ratio == 0 {
		t.MaxP99Ratio = DefaultMaxP99Ratio
	}
	return t
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
	Checks     []Check    `json:"checks"`
	// Reasons restate the failed checks in words.
	Reasons []string `json:"reasons,omitempty"`
}

// Verdict judges the snapshot against th.
func (s Snapshot) Verdict(th Thresholds) Verdict {
	th = th.WithDefaults()
	v := Verdict{Thresholds: th, Ready: true}
	add := func(c Check, reason string) {
		v.Checks = append(v.Checks, c)
		if !c.OK {
			v.Ready = false
			v.Reasons = append(v.Reasons, reason)
		}
	}
	n := s.Counts.Compared
	add(Check{Name: "comparisons", Want: fmt.Sprintf("≥ %d", th.MinComparisons), Got: fmt.Sprint(n), OK: n >= th.MinComparisons},
		fmt.Sprintf("only %d of %d comparisons needed", n, th.MinComparisons))

	rate := s.MatchRate
	add(Check{Name: "match rate", Want: "≥ " + Percent(th.MinMatchRate), Got: Percent(rate), OK: n > 0 && rate >= th.MinMatchRate},
		fmt.Sprintf("match rate %s is below %s", Percent(rate), Percent(th.MinMatchRate)))

	lg, gg := s.Latency.Legacy, s.Latency.Ported
	gap := gg.ErrorRate - lg.ErrorRate
	add(Check{Name: "error rate gap", Want: "≤ " + Percent(th.MaxErrorRateGap),
		Got: fmt.Sprintf("%s (Go %s, legacy %s)", Percent(gap), Percent(gg.ErrorRate), Percent(lg.ErrorRate)),
		OK:  gg.Calls > 0 && gap <= th.MaxErrorRateGap},
		errorGapReason(gg.Calls, gap, th.MaxErrorRateGap))

	ratio, ok := p99Ratio(lg, gg)
	got := "no latency data"
	if ok {
		got = fmt.Sprintf("%.2f× (Go %s, legacy %s)", ratio, Millis(gg.P99), Millis(lg.P99))
	}
	add(Check{Name: "p99 ratio", Want: fmt.Sprintf("≤ %.2f×", th.MaxP99Ratio), Got: got, OK: ok && ratio <= th.MaxP99Ratio},
		p99Reason(ok, ratio, th.MaxP99Ratio))
	return v
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
	if legacy.Calls == 0 || ported.Calls == 0 || legacy.P99 <= 0 {
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
		lp, gp := w.lat[0].quantile(0.99), w.lat[1].quantile(0.99)
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
	lat [2]histTotal
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
		w.errors += m.errors
		w.skipped += m.skipped
		for s := range 2 {
			w.served[s] += m.served[s]
			w.calls[s] += m.calls[s]
			w.fails[s] += m.fails[s]
			w.lat[s].addHist(&m.lat[s])
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
