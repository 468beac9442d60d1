package shadowreport

import (
	"strings"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/routes"
)

func TestVerdict(t *testing.T) {
	ok := Snapshot{
		Counts:    Counts{Compared: 3000, Match: 2990, NoiseOnly: 8, Accepted: 2},
		MatchRate: 1,
		Latency: Latency{
			Legacy:  SideStats{Calls: 3000, Errors: 3, ErrorRate: 0.001, P99: 40 * time.Millisecond},
			Ported:  SideStats{Calls: 3000, Errors: 4, ErrorRate: 0.0013, P99: 12 * time.Millisecond},
			Measure: MeasureCalls,
		},
		SideEffects: SideEffectStats{Compared: 1500},
	}
	tests := []struct {
		name       string
		mod        func(*Snapshot)
		th         Thresholds
		wantReady  bool
		wantFailed []string
	}{
		{"ready", nil, Thresholds{}, true, nil},
		{"one mismatch in 3,000", func(s *Snapshot) { s.Counts.Mismatch, s.Counts.Compared = 1, 3001 }, Thresholds{}, false, []string{"unexplained mismatches"}},
		{"too few clean comparisons", func(s *Snapshot) { s.Counts.Match = 2989 }, Thresholds{}, false, []string{"clean comparisons"}},
		{"a looser target needs fewer", func(s *Snapshot) { s.Counts.Match, s.Counts.Compared = 290, 300 }, Thresholds{TargetMismatchRate: 0.01}, true, nil},
		{"a stricter target needs more", nil, Thresholds{TargetMismatchRate: 0.0001}, false, []string{"clean comparisons"}},
		{"pending", func(s *Snapshot) { s.Counts.Pending = 3 }, Thresholds{}, false, []string{"pending"}},
		{"nothing compared", func(s *Snapshot) { s.Counts = Counts{} }, Thresholds{}, false, []string{"clean comparisons"}},
		{"error gap", func(s *Snapshot) { s.Latency.Ported.ErrorRate = 0.0021 }, Thresholds{}, false, []string{"error rate gap"}},
		{"error gap allowed", func(s *Snapshot) { s.Latency.Ported.ErrorRate = 0.0021 }, Thresholds{MaxErrorRateGap: 0.002}, true, nil},
		{"no Go calls", func(s *Snapshot) { s.Latency.Ported = SideStats{} }, Thresholds{}, false, []string{"error rate gap", "p99 ratio"}},
		{"slow Go", func(s *Snapshot) { s.Latency.Ported.P99 = 61 * time.Millisecond }, Thresholds{}, false, []string{"p99 ratio"}},
		{"side effects not compared", func(s *Snapshot) { s.SideEffects = SideEffectStats{Uncompared: 4, Reason: "no legacy source"} }, Thresholds{}, false, []string{"side effects"}},
		{"side effects allowed", func(s *Snapshot) { s.SideEffects = SideEffectStats{Uncompared: 4, Reason: "no legacy source"} }, Thresholds{AllowUncomparedSideEffects: true}, true, nil},
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
	if v.Needed != 3000 || v.Thresholds.TargetMismatchRate != 0.001 || v.Confidence != "fewer than 1 in 1,000 at 95 % confidence (3,000 clean comparisons, none unexplained)" {
		t.Fatalf("defaults or figures: %+v", v)
	}
	half := ok
	half.Counts.Match, half.Counts.Compared = 1490, 1500
	if c := half.Verdict(Thresholds{}).Confidence; c != "fewer than 1 in 500 at 95 % confidence so far (1,500 clean comparisons; 3,000 needed for 1 in 1,000)" {
		t.Fatalf("confidence so far: %q", c)
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
					c.Timed(routes.SideLegacy, st.legLat)
				}
			}
			got, reason := c.Breached(tt.b)
			if got != tt.want || !strings.Contains(reason, tt.reason) {
				t.Fatalf("Breached = %v %q, want %v containing %q", got, reason, tt.want, tt.reason)
			}
		})
	}
}
