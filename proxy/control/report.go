package control

import (
	"github.com/strangler-proxy/strangler/proxy/shadowreport"
	"github.com/strangler-proxy/strangler/routes"
)

// reportSource is the report's view of the table in force and the
// demotions.
type reportSource struct{ p *Plane }

// Interface guard.
var _ shadowreport.Source = reportSource{}

func (r reportSource) AllLegacy() bool { return r.p.Table().AllLegacy() }

func (r reportSource) Routes() []shadowreport.RouteStatus {
	rt := r.p.Load() // one snapshot, so table and demotions agree
	t := rt.table
	infos := t.Describe()
	out := make([]shadowreport.RouteStatus, len(infos))
	for i, route := range t.Routes() {
		st := shadowreport.RouteStatus{RouteInfo: infos[i]}
		if rr := rt.routes[route]; rr != nil {
			st.Thresholds = rr.thresholds
			if d := rr.demotion.state.Load(); d != nil && route.Mode != routes.ModeLegacy {
				st.Demoted, st.DemotedReason, st.DemotedAt = true, d.reason, d.at
				st.EffectiveMode = routes.ModeLegacy
			}
		}
		out[i] = st
	}
	return out
}
