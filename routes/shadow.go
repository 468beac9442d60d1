package routes

import (
	"errors"
	"math"
	"path/filepath"
	"strings"
	"time"

	"github.com/strangler-proxy/strangler/compare"
)

// Normalise is one shadow.normalise rule: every match of Regex in the
// values at Path is replaced by With ($1-style group references allowed) on
// both sides before comparing. Path is `header.<Name>` (a compared header),
// `body` (a text body, or every JSON string of a JSON body) or a JSON path
// below body.
type Normalise struct {
	Path  string `mapstructure:"path"`
	Regex string `mapstructure:"regex"`
	With  string `mapstructure:"with"`
}

// Rules returns the comparison rules of s as the compare package takes
// them.
func (s *ShadowConfig) Rules() compare.Rules {
	if s == nil {
		return compare.Rules{}
	}
	r := compare.Rules{
		Headers:          s.Headers,
		Ignore:           s.Ignore,
		IgnoreArrayOrder: s.IgnoreArrayOrder,
		NumericTolerance: s.NumericTolerance,
		Accept:           s.Accept,
	}
	for _, n := range s.Normalise {
		r.Normalise = append(r.Normalise, compare.Replace(n))
	}
	return r
}

// Comparator is the compiled comparison of a route's shadow block, built by
// Compile (never nil after Compile). Nil before.
func (s *ShadowConfig) Comparator() *compare.Comparator {
	if s == nil {
		return nil
	}
	return s.cmp
}

// Budgets are a route's safety net: when the Go side breaches one over the
// recent window, the route is demoted to legacy until a person re-enables
// it on the admin listener. Rates are fractions (0.01 = 1 %). A zero limit
// is off.
type Budgets struct {
	// MaxMismatchRate of the comparisons in the window (shadow mode).
	MaxMismatchRate float64 `mapstructure:"max_mismatch_rate"`
	// MaxErrorRate of Go calls that failed (handler error, timeout, 5xx) in
	// the window, above legacy's rate over the same window when legacy had
	// MinSamples calls in it (a shared outage demotes nothing).
	MaxErrorRate float64 `mapstructure:"max_error_rate"`
	// MaxP99Ratio of Go's p99 latency over legacy's in the window; needs
	// MinSamples calls on each side.
	MaxP99Ratio float64 `mapstructure:"max_p99_ratio"`
	// Window of recent time judged, whole minutes from 1m to 60m. Zero:
	// DefaultBudgetWindow.
	Window time.Duration `mapstructure:"window"`
	// MinSamples before a rate is judged. Zero: DefaultBudgetMinSamples.
	MinSamples uint64 `mapstructure:"min_samples"`
}

// Verdict sets the thresholds of the "ready to flip" verdict shown on the
// report and used by `strangler compare`. Zero fields take the defaults.
type Verdict struct {
	// TargetMismatchRate is the mismatch rate the route must be shown to
	// be below at 95 % confidence: zero unexplained mismatches over
	// ⌈3/TargetMismatchRate⌉ comparisons (the rule of three). Zero:
	// DefaultVerdictTargetMismatchRate (3,000 comparisons).
	TargetMismatchRate float64 `mapstructure:"target_mismatch_rate"`
	// AllowUncomparedSideEffects lets the route be ready while what its Go
	// handler publishes is not compared with what the legacy side
	// published. Zero value (false): that is "not ready".
	AllowUncomparedSideEffects bool `mapstructure:"allow_uncompared_side_effects"`
	// MaxErrorRateGap is how much more often Go may fail than legacy, as a
	// fraction of calls. Zero: DefaultVerdictMaxErrorRateGap.
	MaxErrorRateGap float64 `mapstructure:"max_error_rate_gap"`
	// MaxP99Ratio of Go's p99 over legacy's. Zero: DefaultVerdictMaxP99Ratio.
	MaxP99Ratio float64 `mapstructure:"max_p99_ratio"`
}

// CaptureConfig samples a route's requests into a JSONL file for offline
// runs (`strangler compare`), with the legacy side's answer (and, where a
// source exists, what it published), redacted: credential header values,
// secret-looking query values, and in bodies e-mail addresses and the
// values of secret-looking fields (masked so that they keep their length
// and kind of character). Bodies up to shadow.max_body_bytes; larger ones
// are not captured.
type CaptureConfig struct {
	// Percent of sticky keys captured (the canary's sticky key and hash),
	// above 0 and at most 100. Required.
	Percent float64 `mapstructure:"percent"`
	// File is the JSONL file appended to. Required. Routes may share one.
	File string `mapstructure:"file"`
	// MaxBytes stops the capture once the file holds this much (a capture
	// is a sample, not a log). Zero: DefaultCaptureMaxBytes.
	MaxBytes int64 `mapstructure:"max_bytes"`
}

// DefaultKeyPath is shadow.key_path when unset: the shipped intake's
// event_id.
const DefaultKeyPath = "event_id"

// Defaults of Budgets, Verdict and CaptureConfig.
const (
	DefaultBudgetWindow              = 5 * time.Minute
	DefaultBudgetMinSamples          = 100
	DefaultVerdictTargetMismatchRate = 0.001
	DefaultVerdictMaxErrorRateGap    = 0.001
	DefaultLegacyTopicWait           = 10 * time.Second
	DefaultVerdictMaxP99Ratio        = 1.5
	DefaultCaptureMaxBytes           = 256 << 20
	maxBudgetWindow                  = time.Hour
)

// resolveCompare validates the comparison fields of out (already copied)
// and compiles them.
func resolveCompare(i int, name string, out *ShadowConfig, p *problems) {
	before := len(*p)
	for j, ig := range out.Ignore {
		if ig != "status" && ig != "body" &&
			!(strings.HasPrefix(ig, "body.") && len(ig) > len("body.")) &&
			!(strings.HasPrefix(ig, "body[") && len(ig) > len("body[")) &&
			!(strings.HasPrefix(ig, "header.") && len(ig) > len("header.")) {
			p.add(i, name, "shadow.ignore[%d] %q must be body.<json path> or header.<Name> (or status, or body for the whole body), e.g. body.event_id or header.Date", j, ig)
		}
	}
	if !(out.NumericTolerance >= 0) || math.IsInf(out.NumericTolerance, 0) {
		p.add(i, name, "shadow.numeric_tolerance %v must be 0 or a positive number such as 0.005", out.NumericTolerance)
	}
	switch {
	case out.MaxBodyBytes < 0:
		p.add(i, name, "shadow.max_body_bytes %d is negative; use a size in bytes such as 1048576 (unset means %d)", out.MaxBodyBytes, DefaultShadowMaxBodyBytes)
	case out.MaxBodyBytes == 0:
		out.MaxBodyBytes = DefaultShadowMaxBodyBytes
	}
	if out.LegacyEventsFile != "" && out.LegacyEventsTopic != nil {
		p.add(i, name, "shadow.legacy_events_file and shadow.legacy_events_topic are both set; the legacy side's messages come from one source")
	}
	if t := out.LegacyEventsTopic; t != nil {
		lt := *t
		switch {
		case lt.Topic == "":
			p.add(i, name, "shadow.legacy_events_topic.topic is required: the topic the legacy side's messages reach")
		case lt.Wait < 0:
			p.add(i, name, "shadow.legacy_events_topic.wait %s is negative (unset means %s)", lt.Wait, DefaultLegacyTopicWait)
		}
		if lt.Wait == 0 {
			lt.Wait = DefaultLegacyTopicWait
		}
		out.LegacyEventsTopic = &lt
	}
	if out.KeyPath == "" {
		out.KeyPath = DefaultKeyPath
	} else if err := compare.ValidKeyPath(out.KeyPath); err != nil {
		p.add(i, name, "shadow.key_path %q must name one value below the body, such as event_id or data.id", out.KeyPath)
	}
	if len(*p) > before {
		return
	}
	c, err := compare.Compile(out.Rules())
	if err != nil {
		for _, e := range joined(errors.Unwrap(err)) {
			p.add(i, name, "shadow.%v", e)
		}
		return
	}
	out.cmp = c
}

// joined splits an errors.Join result into its errors.
func joined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

// resolveBudgets validates b and returns a copy with defaults filled in.
func resolveBudgets(i int, name string, b *Budgets, p *problems) *Budgets {
	out := *b
	for _, r := range []struct {
		key string
		v   float64
	}{{"max_mismatch_rate", out.MaxMismatchRate}, {"max_error_rate", out.MaxErrorRate}} {
		if !(r.v >= 0 && r.v <= 1) {
			p.add(i, name, "budgets.%s %v is out of range; use a fraction from 0 to 1 (0.01 = 1 %%; 0 turns it off)", r.key, r.v)
		}
	}
	if !(out.MaxP99Ratio == 0 || out.MaxP99Ratio >= 1) || math.IsInf(out.MaxP99Ratio, 0) {
		p.add(i, name, "budgets.max_p99_ratio %v must be at least 1 (e.g. 2 = Go's p99 may be twice legacy's; 0 turns it off)", out.MaxP99Ratio)
	}
	switch {
	case out.Window == 0:
		out.Window = DefaultBudgetWindow
	case out.Window < time.Minute || out.Window > maxBudgetWindow || out.Window%time.Minute != 0:
		p.add(i, name, "budgets.window %s must be whole minutes from 1m to 60m (unset means %s)", out.Window, DefaultBudgetWindow)
	}
	if out.MinSamples == 0 {
		out.MinSamples = DefaultBudgetMinSamples
	}
	if out.MaxMismatchRate == 0 && out.MaxErrorRate == 0 && out.MaxP99Ratio == 0 {
		p.add(i, name, "budgets sets no limit; set max_mismatch_rate, max_error_rate or max_p99_ratio, or remove budgets")
	}
	return &out
}

// resolveVerdict validates v and returns a copy with defaults filled in.
func resolveVerdict(i int, name string, v *Verdict, p *problems) *Verdict {
	out := Verdict{}
	if v != nil {
		out = *v
	}
	if !(out.TargetMismatchRate >= 0 && out.TargetMismatchRate < 1) {
		p.add(i, name, "verdict.target_mismatch_rate %v is out of range; use a fraction such as 0.001 (1 in 1,000: 3,000 clean comparisons)", out.TargetMismatchRate)
	}
	if !(out.MaxErrorRateGap >= 0 && out.MaxErrorRateGap <= 1) {
		p.add(i, name, "verdict.max_error_rate_gap %v is out of range; use a fraction such as 0.001", out.MaxErrorRateGap)
	}
	if !(out.MaxP99Ratio == 0 || out.MaxP99Ratio >= 1) || math.IsInf(out.MaxP99Ratio, 0) {
		p.add(i, name, "verdict.max_p99_ratio %v must be at least 1, e.g. 1.5", out.MaxP99Ratio)
	}
	if out.TargetMismatchRate == 0 {
		out.TargetMismatchRate = DefaultVerdictTargetMismatchRate
	}
	if out.MaxErrorRateGap == 0 {
		out.MaxErrorRateGap = DefaultVerdictMaxErrorRateGap
	}
	if out.MaxP99Ratio == 0 {
		out.MaxP99Ratio = DefaultVerdictMaxP99Ratio
	}
	return &out
}

// resolveCapture validates c and returns a copy with defaults filled in.
func resolveCapture(i int, name string, c *CaptureConfig, p *problems) *CaptureConfig {
	out := *c
	if !(out.Percent > 0 && out.Percent <= 100) {
		p.add(i, name, "capture.percent %v is out of range; use a value above 0 and at most 100, e.g. 1", out.Percent)
	}
	switch {
	case out.File == "":
		p.add(i, name, "capture.file is required; e.g. /var/lib/strangler/capture-%s.jsonl", name)
	case !filepath.IsAbs(out.File):
		p.add(i, name, "capture.file %q must be an absolute path", out.File)
	}
	switch {
	case out.MaxBytes < 0:
		p.add(i, name, "capture.max_bytes %d is negative (unset means %d)", out.MaxBytes, int64(DefaultCaptureMaxBytes))
	case out.MaxBytes == 0:
		out.MaxBytes = DefaultCaptureMaxBytes
	}
	return &out
}
