package shadowreport

import (
	"strings"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/routes"
)

func TestVerdict(t *testing.T) {
	ok := Snapshot{
		Counts:    Counts{Compared: 2000, Match: 1990, NoiseOnly: 9, Mismatch: 1},
		MatchRate: 1999.0 / 2000,
		Latency: Latency{
			Legacy: SideStats{Calls: 2000, Errors: 2, ErrorRate: 0.001, P99: 40 * time.Millisecond},
			Ported: SideStats{Calls: 2000, Errors: 3, ErrorRate: 0.0015, P99: 12 * time.Millisecond},
		},
	}
	tests := []struct {
		name       string
		mod        func(*Snapshot)
		th         Thresholds
		wantReady  bool
		wantFailed []string
	}{
		{"ready", nil, Thresholds{}, true, nil},
		{"too few comparisons", func(s *Snapshot) { s.Counts.Compared = 999 }, Thresholds{}, false, []string{"comparisons"}},
		{"match rate below", func(s *Snapshot) { s.MatchRate = 0.998 }, Thresholds{}, false, []string{"match rate"}},
		{"nothing compared", func(s *Snapshot) { s.Counts.Compared, s.MatchRate = 0, 0 }, Thresholds{MinComparisons: 1}, false, []string{"comparisons", "match rate"}},
		{"error gap", func(s *Snapshot) { s.Latency.Ported.ErrorRate = 0.0021 }, Thresholds{}, false, []string{"error rate gap"}},
		{"error gap allowed", func(s *Snapshot) { s.Latency.Ported.ErrorRate = 0.0021 }, Thresholds{MaxErrorRateGap: 0.002}, true, nil},
		{"no Go calls", func(s *Snapshot) { s.Latency.Ported = SideStats{} }, Thresholds{}, false, []string{"error rate gap", "p99 ratio"}},
		{"slow Go", func(s *Snapshot) { s.Latency.Ported.P99 = 61 * time.Millisecond }, Thresholds{}, false, []string{"p99 ratio"}},
		{"stricter thresholds", nil, Thresholds{MinComparisons: 5000, MinMatchRate: 0.9999}, false, []string{"comparisons", "match rate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok
			if tt.mod != nil {
				tt.mod(&s)
			}
			v := s.Verdict(tt.th)
			var failed []string
			for _, c := range v.Checks {
				if !c.OK {
					failed = append(failed, c.Name)
				}
			}
			if v.Ready != tt.wantReady || strings.Join(failed, ",") != strings.Join(tt.wantFailed, ",") || len(v.Reasons) != len(failed) {
				t.Fatalf("ready %v failed %v reasons %q; want ready %v failed %v", v.Ready, failed, v.Reasons, tt.wantReady, tt.wantFailed)
			}
		})
	}
	v := ok.Verdict(Thresholds{})
	if v.Thresholds.MinComparisons != 1000 || v.Thresholds.MinMatchRate != 0.999 || v.Checks[1].Got != "99.95 %" || v.Checks[1].Want != "≥ 99.90 %" {
		t.Fatalf("defaults or figures: %+v", v)
	}
}

func TestBudgets(t *testing.T) {
	type step struct {
		advance            time.Duration
		match, mismatch    int
		goCalls, goFails   int
		legCalls, legFails int
		goLat, legLat      time.Duration
	}
	tests := []struct {
		name   string
		b      Budgets
		steps  []step
		want   bool
		reason string
	}{
		{"healthy", Budgets{MaxMismatchRate: 0.01, MaxErrorRate: 0.01, MaxP99Ratio: 2},
			[]step{{match: 500, goCalls: 500, legCalls: 500, goLat: time.Millisecond, legLat: time.Millisecond}}, false, ""},
		{"mismatch rate", Budgets{MaxMismatchRate: 0.01},
			[]step{{match: 180, mismatch: 20}}, true, "mismatch rate 10.00 %"},
		{"too few samples", Budgets{MaxMismatchRate: 0.01},
			[]step{{match: 50, mismatch: 49}}, false, ""},
		{"old mismatches leave the window", Budgets{MaxMismatchRate: 0.01, Window: 5 * time.Minute},
			[]step{{match: 100, mismatch: 100}, {advance: 6 * time.Minute, match: 200}}, false, ""},
		{"mismatches within the window", Budgets{MaxMismatchRate: 0.01, Window: 10 * time.Minute},
			[]step{{match: 100, mismatch: 100}, {advance: 6 * time.Minute, match: 200}}, true, "mismatch rate 25.00 %"},
		{"Go errors", Budgets{MaxErrorRate: 0.01},
			[]step{{goCalls: 200, goFails: 10}}, true, "Go error rate 5.00 %"},
		{"errors on both sides", Budgets{MaxErrorRate: 0.01},
			[]step{{goCalls: 200, goFails: 10, legCalls: 200, legFails: 9}}, false, ""},
		{"Go slow", Budgets{MaxP99Ratio: 1.5},
			[]step{{goCalls: 200, legCalls: 200, goLat: 30 * time.Millisecond, legLat: 10 * time.Millisecond}}, true, "Go p99"},
		{"off", Budgets{},
			[]step{{match: 1, mismatch: 1000, goCalls: 200, goFails: 200}}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			s, _ := newStats(t, clk, nil)
			c := s.Route("events")
			for _, st := range tt.steps {
				clk.Add(st.advance)
				c.mu.Lock()
				m := c.minuteLocked(clk.Now())
				m.compared += uint64(st.match + st.mismatch)
				m.match += uint64(st.match)
				m.mismatch += uint64(st.mismatch)
				c.mu.Unlock()
				for i := range st.goCalls {
					c.Called(routes.SidePorted, st.goLat, i < st.goFails)
				}
				for i := range st.legCalls {
					c.Served(routes.SideLegacy, st.legLat, i < st.legFails)
				}
			}
			got, reason := c.Breached(tt.b)
			if got != tt.want || !strings.Contains(reason, tt.reason) {
				t.Fatalf("Breached = %v %q, want %v containing %q", got, reason, tt.want, tt.reason)
			}
		})
	}
}
