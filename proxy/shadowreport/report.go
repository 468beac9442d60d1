package shadowreport

import (
	"time"

	"github.com/strangler-proxy/strangler/routes"
)

// RouteStatus is what the proxy knows about a route beyond its figures.
type RouteStatus struct {
	routes.RouteInfo
	// Demoted: a budget was breached and the route answers from legacy
	// until a person re-enables it. EffectiveMode is then legacy.
	Demoted       bool      `json:"demoted,omitempty"`
	DemotedReason string    `json:"demoted_reason,omitempty"`
	DemotedAt     time.Time `json:"demoted_at,omitzero"`
	// Thresholds for the route's verdict; zero fields take the defaults.
	Thresholds Thresholds `json:"-"`
}

// Source is the report's view of the proxy: the proxy implements it over
// its live route table and demotion state.
type Source interface {
	// Routes lists every configured route in table order.
	Routes() []RouteStatus
	// AllLegacy reports the kill switch.
	AllLegacy() bool
}

// StatusFromTable describes t's routes with no demotion and default
// thresholds, for a Source that has nothing more to say.
func StatusFromTable(t *routes.Table) []RouteStatus {
	infos := t.Describe()
	out := make([]RouteStatus, len(infos))
	for i, ri := range infos {
		out[i] = RouteStatus{RouteInfo: ri}
	}
	return out
}

// Report is everything the report page shows; its JSON twin serves it
// as is.
type Report struct {
	Generated time.Time `json:"generated"`
	AllLegacy bool      `json:"all_legacy"`
	// TotalServed counts answers to clients: every route's, plus unmatched
	// requests.
	TotalServed uint64          `json:"total_served"`
	Routes      []RouteReport   `json:"routes"`
	Unmatched   UnmatchedReport `json:"unmatched"`
}

// RouteReport is one route's part of the report.
type RouteReport struct {
	RouteStatus
	// Share of TotalServed answered on this route.
	Share   float64  `json:"share"`
	Stats   Snapshot `json:"stats"`
	Verdict Verdict  `json:"verdict"`
}

// UnmatchedReport lists the busiest paths no route matches: they still go
// to legacy, and are the candidates to port next.
type UnmatchedReport struct {
	Total uint64          `json:"total"`
	Share float64         `json:"share"`
	Top   []TemplateCount `json:"top"`
}

// DefaultUnmatchedTop is how many unmatched templates the report lists.
const DefaultUnmatchedTop = 20

// Build assembles the report.
func Build(src Source, s *Stats) Report {
	rep := Report{Generated: s.now().UTC(), AllLegacy: src.AllLegacy()}
	for _, rs := range src.Routes() {
		rr := RouteReport{RouteStatus: rs}
		if c := s.Lookup(rs.Name); c != nil {
			rr.Stats = c.Snapshot()
		} else {
			rr.Stats = emptySnapshot(rs.Name, s.now())
		}
		rr.Verdict = rr.Stats.Verdict(rs.Thresholds)
		rep.TotalServed += rr.Stats.Latency.Legacy.Served + rr.Stats.Latency.Ported.Served
		rep.Routes = append(rep.Routes, rr)
	}
	rep.Unmatched.Top, rep.Unmatched.Total = s.UnmatchedTop(DefaultUnmatchedTop)
	rep.TotalServed += rep.Unmatched.Total
	if rep.TotalServed > 0 {
		for i := range rep.Routes {
			st := rep.Routes[i].Stats.Latency
			rep.Routes[i].Share = float64(st.Legacy.Served+st.Ported.Served) / float64(rep.TotalServed)
		}
		rep.Unmatched.Share = float64(rep.Unmatched.Total) / float64(rep.TotalServed)
	}
	return rep
}

func emptySnapshot(route string, now time.Time) Snapshot {
	s := Snapshot{Route: route, Timeline: make([]MinuteStats, ringMinutes)}
	nowMin := now.Unix() / 60
	for i := range s.Timeline {
		s.Timeline[i].Start = time.Unix((nowMin-ringMinutes+1+int64(i))*60, 0).UTC()
	}
	return s
}
