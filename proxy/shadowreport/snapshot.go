package shadowreport

import (
	"time"

	"github.com/strangler-proxy/strangler/compare"
)

// Counts are a route's comparison outcomes.
type Counts struct {
	// Compared = Match + Mismatch + NoiseOnly.
	Compared  uint64 `json:"compared"`
	Match     uint64 `json:"match"`
	Mismatch  uint64 `json:"mismatch"`
	NoiseOnly uint64 `json:"noise_only"`
	Errors    uint64 `json:"errors"`
	Skipped   uint64 `json:"skipped"`
}

// SideStats are one side's calls, errors and latency.
type SideStats struct {
	// Served counts answers given to clients (traffic share).
	Served uint64 `json:"served"`
	// Calls counts every call, served or shadow.
	Calls     uint64        `json:"calls"`
	Errors    uint64        `json:"errors"`
	ErrorRate float64       `json:"error_rate"`
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
}

// Latency holds both sides.
type Latency struct {
	Legacy SideStats `json:"legacy"`
	Ported SideStats `json:"ported"`
}

// MinuteStats is one minute of the match-rate timeline.
type MinuteStats struct {
	Start     time.Time `json:"start"`
	Compared  uint64    `json:"compared"`
	Matched   uint64    `json:"matched"` // match + noise_only
	Mismatch  uint64    `json:"mismatch"`
	MatchRate float64   `json:"match_rate"` // 0 when nothing was compared
}

// Snapshot is a consistent copy of a route's figures.
type Snapshot struct {
	Route  string `json:"route"`
	Counts Counts `json:"counts"`
	// MatchRate = (Match + NoiseOnly) / Compared; 0 when nothing was
	// compared.
	MatchRate   float64              `json:"match_rate"`
	SkipReasons map[string]uint64    `json:"skip_reasons,omitempty"`
	Latency     Latency              `json:"latency"`
	Timeline    []MinuteStats        `json:"timeline"` // the last 60 minutes, oldest first
	Noise       []compare.NoiseField `json:"noise"`
	TopDiffs    []Group              `json:"top_diffs"`
	// EvictedGroups counts differing paths pushed out of the store.
	EvictedGroups uint64 `json:"evicted_groups,omitempty"`
}

// Snapshot copies the collector's figures.
func (c *Collector) Snapshot() Snapshot {
	now := c.s.now()
	nowMin := now.Unix() / 60
	s := Snapshot{Route: c.route, Noise: c.noise.Fields()}
	c.mu.Lock()
	t := c.total
	s.Counts = Counts{Compared: t.compared, Match: t.match, Mismatch: t.mismatch, NoiseOnly: t.noiseOnly, Errors: t.errors, Skipped: t.skipped}
	if len(c.skipReasons) > 0 {
		s.SkipReasons = make(map[string]uint64, len(c.skipReasons))
		for k, v := range c.skipReasons {
			s.SkipReasons[k] = v
		}
	}
	side := func(i int) SideStats {
		ss := SideStats{Served: t.served[i], Calls: t.calls[i], Errors: t.fails[i],
			P50: c.lat[i].quantile(0.50), P99: c.lat[i].quantile(0.99)}
		if ss.Calls > 0 {
			ss.ErrorRate = float64(ss.Errors) / float64(ss.Calls)
		}
		return ss
	}
	s.Latency = Latency{Legacy: side(0), Ported: side(1)}
	s.Timeline = make([]MinuteStats, ringMinutes)
	for i := range s.Timeline {
		m := nowMin - ringMinutes + 1 + int64(i)
		ms := MinuteStats{Start: time.Unix(m*60, 0).UTC()}
		if slot := &c.ring[m%ringMinutes]; slot.start == m {
			ms.Compared, ms.Matched, ms.Mismatch = slot.compared, slot.match+slot.noiseOnly, slot.mismatch
			if ms.Compared > 0 {
				ms.MatchRate = float64(ms.Matched) / float64(ms.Compared)
			}
		}
		s.Timeline[i] = ms
	}
	s.TopDiffs = c.store.top()
	s.EvictedGroups = c.store.evicted
	c.mu.Unlock()
	if t.compared > 0 {
		s.MatchRate = float64(t.match+t.noiseOnly) / float64(t.compared)
	}
	return s
}

// Verdict judges the route's current figures against th.
func (c *Collector) Verdict(th Thresholds) Verdict { return c.Snapshot().Verdict(th) }
