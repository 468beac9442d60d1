package shadowreport

import (
	"time"

	"github.com/strangler-proxy/strangler/compare"
)

// Counts are a route's comparison outcomes in the current epoch.
type Counts struct {
	// Compared = Match + Mismatch + NoiseOnly + Accepted: comparisons
	// judged. Pending ones are not among them yet.
	Compared  uint64 `json:"compared"`
	Match     uint64 `json:"match"`
	Mismatch  uint64 `json:"mismatch"`
	NoiseOnly uint64 `json:"noise_only"`
	Accepted  uint64 `json:"accepted"`
	// Pending comparisons wait for a path to be classified (generated,
	// clock or computed) before they are judged.
	Pending uint64 `json:"pending"`
	Errors  uint64 `json:"errors"`
	Skipped uint64 `json:"skipped"`
}

// Clean counts comparisons with no unexplained difference.
func (k Counts) Clean() uint64 { return k.Match + k.NoiseOnly + k.Accepted }

// SideStats are one side's calls, errors and latency.
type SideStats struct {
	// Served counts answers given to clients (traffic share).
	Served uint64 `json:"served"`
	// Calls counts every call, served or shadow; Twins the second calls
	// for the same request among them (legacy: noise sample; Go:
	// determinism check).
	Calls     uint64  `json:"calls"`
	Twins     uint64  `json:"twin_calls,omitempty"`
	Errors    uint64  `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
	// P50 and P99 are of the measure Latency.Measure names, the same for
	// both sides.
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
}

// Latency measures.
const (
	// MeasureCalls: each side's call in shadowed requests, timed by the
	// proxy from calling the side to having its whole answer (the legacy
	// side's network round trip included: it is what a flip removes).
	MeasureCalls = "calls"
	// MeasureServed: answers served to clients, the front door's whole
	// exchange (canary and ported modes, where both sides serve).
	MeasureServed = "served"
)

// Latency holds both sides, measured alike.
type Latency struct {
	Legacy SideStats `json:"legacy"`
	Ported SideStats `json:"ported"`
	// Measure is MeasureCalls when both sides have timed calls, else
	// MeasureServed.
	Measure string `json:"measure"`
}

// MinuteStats is one minute of the match-rate timeline.
type MinuteStats struct {
	Start     time.Time `json:"start"`
	Compared  uint64    `json:"compared"`
	Matched   uint64    `json:"matched"` // match + noise_only + accepted
	Mismatch  uint64    `json:"mismatch"`
	MatchRate float64   `json:"match_rate"` // 0 when nothing was compared
}

// AcceptStat is one accept rule of the route and how many differences it
// explained in this epoch.
type AcceptStat struct {
	compare.Accept
	Explained uint64 `json:"explained"`
}

// SideEffectStats say how what the sides published was compared.
type SideEffectStats struct {
	// Compared counts comparisons whose published messages were compared.
	Compared uint64 `json:"compared"`
	// Uncompared counts comparisons in which the Go side published and
	// no working source of the legacy side's messages could say what it
	// published; Reason is the last reason.
	Uncompared uint64 `json:"uncompared"`
	Reason     string `json:"reason,omitempty"`
}

// Snapshot is a consistent copy of a route's figures.
type Snapshot struct {
	Route  string `json:"route"`
	Counts Counts `json:"counts"`
	// MatchRate = Counts.Clean() / Compared; 0 when nothing was compared.
	MatchRate   float64           `json:"match_rate"`
	SkipReasons map[string]uint64 `json:"skip_reasons,omitempty"`
	Latency     Latency           `json:"latency"`
	Timeline    []MinuteStats     `json:"timeline"` // the last 60 minutes, oldest first
	// Noise is the legacy-twin learner's view (safe methods only).
	Noise []compare.NoiseField `json:"noise"`
	// Profile is how paths were classified from the legacy side's own
	// answers across requests, and why.
	Profile        []compare.ProfileField `json:"profile"`
	LegacyObserved uint64                 `json:"legacy_answers_observed"`
	Accepts        []AcceptStat           `json:"accepts,omitempty"`
	SideEffects    SideEffectStats        `json:"side_effects"`
	Epoch          Epoch                  `json:"epoch"`
	Superseded     []Epoch                `json:"superseded_epochs,omitempty"`
	TopDiffs       []Group                `json:"top_diffs"`
	// EvictedGroups counts differing paths pushed out of the store.
	EvictedGroups uint64 `json:"evicted_groups,omitempty"`
}

// countsLocked is the current epoch's counts. Caller holds mu.
func (c *Collector) countsLocked() Counts {
	t := c.total
	return Counts{
		Compared: t.compared, Match: t.match, Mismatch: t.mismatch, NoiseOnly: t.noiseOnly, Accepted: t.accepted,
		Pending: uint64(len(c.pending)), Errors: t.errors, Skipped: t.skipped,
	}
}

// Snapshot copies the collector's figures.
func (c *Collector) Snapshot() Snapshot {
	c.settle()
	now := c.s.now()
	nowMin := now.Unix() / 60
	s := Snapshot{Route: c.route, Noise: c.Noise().Fields(), Profile: c.profile.Fields(), LegacyObserved: c.profile.Answers()}
	c.mu.Lock()
	t := c.total
	s.Counts = c.countsLocked()
	if len(c.skipReasons) > 0 {
		s.SkipReasons = make(map[string]uint64, len(c.skipReasons))
		for k, v := range c.skipReasons {
			s.SkipReasons[k] = v
		}
	}
	measure, lat := MeasureServed, &c.lat
	if c.call[0].count() > 0 && c.call[1].count() > 0 {
		measure, lat = MeasureCalls, &c.call
	}
	side := func(i int) SideStats {
		ss := SideStats{Served: t.served[i], Calls: t.calls[i], Twins: t.twins[i], Errors: t.fails[i],
			P50: lat[i].quantile(0.50), P99: lat[i].quantile(0.99)}
		if ss.Calls > 0 {
			ss.ErrorRate = float64(ss.Errors) / float64(ss.Calls)
		}
		return ss
	}
	s.Latency = Latency{Legacy: side(0), Ported: side(1), Measure: measure}
	s.Timeline = make([]MinuteStats, ringMinutes)
	for i := range s.Timeline {
		m := nowMin - ringMinutes + 1 + int64(i)
		ms := MinuteStats{Start: time.Unix(m*60, 0).UTC()}
		if slot := &c.ring[m%ringMinutes]; slot.start == m {
			ms.Compared, ms.Matched, ms.Mismatch = slot.compared, slot.match+slot.noiseOnly+slot.accepted, slot.mismatch
			if ms.Compared > 0 {
				ms.MatchRate = float64(ms.Matched) / float64(ms.Compared)
			}
		}
		s.Timeline[i] = ms
	}
	for _, a := range c.epoch.Rules.Accept {
		s.Accepts = append(s.Accepts, AcceptStat{Accept: a, Explained: c.accepted[[2]string{string(a.Kind), a.Reason}]})
	}
	s.SideEffects = SideEffectStats{Compared: c.effects.compared, Uncompared: c.effects.uncompared, Reason: c.effects.reason}
	s.Epoch = c.epoch
	s.Superseded = append([]Epoch(nil), c.superseded...)
	s.TopDiffs = c.store.top()
	s.EvictedGroups = c.store.evicted
	c.mu.Unlock()
	if s.Counts.Compared > 0 {
		s.MatchRate = float64(s.Counts.Clean()) / float64(s.Counts.Compared)
	}
	return s
}

// Verdict judges the route's current figures against th.
func (c *Collector) Verdict(th Thresholds) Verdict { return c.Snapshot().Verdict(th) }
