package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/strangler-proxy/strangler/internal/monolith"
)

// goHost selects the ported (Go) side of a route in the bench config: the
// same path without it stays legacy, so one proxy serves both sides and the
// comparison is Go vs PHP behind the same front door.
const goHost = "go.bench"

// shadowHost selects the shadowed copy of the lookup route: PHP answers and
// Go runs on a copy of every request, for the shadow-overhead group.
const shadowHost = "shadow.bench"

// legacyHost selects the same lookup route in legacy mode: the shadow
// group's baseline is the route before it is shadowed, matched and
// forwarded alike, and driven by wrk the same way (a Host header).
const legacyHost = "legacy.bench"

func contenders(m *monolith.Monolith, px *strangler) []contender {
	stack := func() []int { return []int{m.NginxPID, m.FPMPID} }
	withProxy := func() []int { return append(stack(), px.pid()) }
	goHdr := map[string]string{"Host": goHost}
	event := benchEvent(time.Now())
	jsonHdr := map[string]string{"Content-Type": "application/json"}
	goJSON := map[string]string{"Content-Type": "application/json", "Host": goHost}

	var cs []contender
	for _, g := range []struct{ group, path string }{
		{"static", "/static/hello.txt"},
		{"php", "/api/v1/ping"},
	} {
		cs = append(cs,
			contender{Group: g.group, Name: "nginx direct", Baseline: true, URL: m.URL + g.path, Procs: stack},
			contender{Group: g.group, Name: "nginx proxy_pass", Baseline: true, URL: m.ProxyPassURL + g.path, Procs: stack},
			contender{Group: g.group, Name: "strangler (legacy)", URL: px.url + g.path, Procs: withProxy, Strangler: true},
		)
	}
	cs = append(cs,
		contender{Group: "ping", Name: "php via strangler", Baseline: true, URL: px.url + "/api/v1/ping", Procs: withProxy, Strangler: true},
		contender{Group: "ping", Name: "go via strangler", URL: px.url + "/api/v1/ping", Headers: goHdr, Procs: withProxy, Strangler: true},

		contender{Group: "campaigns", Name: "php direct", URL: m.URL + "/api/v1/campaigns/cmp_004242", Procs: stack},
		contender{Group: "campaigns", Name: "php via strangler", Baseline: true, URL: px.url + "/api/v1/campaigns/cmp_004242", Procs: withProxy, Strangler: true},
		contender{Group: "campaigns", Name: "go via strangler", URL: px.url + "/api/v1/campaigns/cmp_004242", Headers: goHdr, Procs: withProxy, Strangler: true},

		contender{Group: "shadow", Name: "legacy only", Baseline: true, URL: px.url + "/api/v1/campaigns/cmp_004242", Headers: map[string]string{"Host": legacyHost}, Procs: withProxy, Strangler: true},
		contender{Group: "shadow", Name: "shadow 100%", URL: px.url + "/api/v1/campaigns/cmp_004242", Headers: map[string]string{"Host": shadowHost}, Procs: withProxy, Strangler: true},

		contender{Group: "events", Name: "php direct", Method: "POST", Body: event, Headers: jsonHdr, URL: m.URL + "/api/v1/events", Procs: stack},
		contender{Group: "events", Name: "php via strangler", Baseline: true, Method: "POST", Body: event, Headers: jsonHdr, URL: px.url + "/api/v1/events", Procs: withProxy, Strangler: true},
		contender{Group: "events", Name: "go via strangler", Method: "POST", Body: event, Headers: goJSON, URL: px.url + "/api/v1/events", Procs: withProxy, Strangler: true},
	)
	return cs
}

// benchEvent is a valid purchase (items summing to the amount, an active
// campaign, an e-mail to hash, metadata) stamped now, so the intake's
// occurred_at window accepts it for the length of the run and every rule runs.
func benchEvent(now time.Time) string {
	return fmt.Sprintf(`{"type":"purchase","user_id":"u_bench0001","session_id":"s_benchsession1",`+
		`"occurred_at":%q,"country":"DE","currency":"EUR","amount":25.5,`+
		`"items":[{"sku":"SKU-1","qty":2,"price":10},{"sku":"SKU-2","qty":1,"price":5.5}],`+
		`"campaign_id":"cmp_000001","email":" Bench@Example.com ","metadata":{"source":"bench"}}`,
		now.UTC().Format(time.RFC3339))
}

// benchConfig is the proxy's config for the run: every path legacy, the
// ported handlers on the bench host only, and the lookup route shadowed on
// the shadow host.
func benchConfig(listen, admin, upstream, dir, campaigns string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %q\nadmin_listen: %q\nlog:\n  level: warn\n", listen, admin)
	fmt.Fprintf(&b, "legacy:\n  upstream: %q\n", upstream)
	fmt.Fprintf(&b, "spool:\n  dir: %q\n", dir+"/spool")
	fmt.Fprintf(&b, "hotcache:\n  source: %q\n", "file://"+campaigns)
	b.WriteString("routes:\n")
	for _, r := range []string{
		"{name: ping-go, methods: [GET], host: " + goHost + ", path: /api/v1/ping, mode: ported, handler: ping}",
		"{name: campaign-go, methods: [GET], host: " + goHost + ", path: \"/api/v1/campaigns/{id}\", mode: ported, handler: campaigns.get}",
		"{name: events-go, methods: [POST], host: " + goHost + ", path: /api/v1/events, mode: ported, handler: events.ingest}",
		"{name: campaign-legacy, methods: [GET], host: " + legacyHost + ", path: \"/api/v1/campaigns/{id}\", mode: legacy}",
		"{name: campaign-shadow, methods: [GET], host: " + shadowHost + ", path: \"/api/v1/campaigns/{id}\", mode: shadow, handler: campaigns.get, shadow: {primary: legacy, sample_percent: 100}}",
	} {
		b.WriteString("  - " + r + "\n")
	}
	return b.String()
}
