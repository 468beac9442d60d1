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

// Contender names used by the targets table.
const (
	nameNginxDirect = "nginx direct"
	nameNginxProxy  = "nginx proxy_pass"
	nameHAProxy     = "haproxy"
	nameBare        = "bare fasthttp proxy"
	nameLogOff      = "strangler, access log off"
	nameLogFile     = "strangler, access log to a file"
	nameLogPipe     = "strangler, access log to a pipe"
	nameGo          = "go via strangler"
	namePHP         = "php via strangler"
	nameLegacyOnly  = "legacy only"
	nameShadow      = "shadow 100%"
)

// proxies are the passthrough contenders' processes.
type proxies struct {
	nginx, haproxy, bare *server
	logOff, logFile      *server
	logPipe              *server
}

// The passthrough groups' paths: a 1 KiB file Nginx serves itself, and the
// campaign lookup through PHP-FPM (moderate load: PHP is the bottleneck).
const (
	staticPath = "/static/1k.txt"
	phpPath    = "/api/v1/campaigns/cmp_004242"
)

func contenders(m *monolith.Monolith, p proxies, staticConns, phpConns int) []contender {
	goHdr := map[string]string{"Host": goHost}
	event := benchEvent(time.Now())
	jsonHdr := map[string]string{"Content-Type": "application/json"}
	goJSON := map[string]string{"Content-Type": "application/json", "Host": goHost}
	front := p.logFile // the Go-vs-PHP and shadow groups run with the access log on, as shipped

	var cs []contender
	for _, g := range []struct {
		group, path string
		conns       int
	}{{"static", staticPath, staticConns}, {"php", phpPath, phpConns}} {
		cs = append(cs,
			contender{Group: g.group, Name: nameNginxDirect, URL: m.URL + g.path, Conns: g.conns},
			contender{Group: g.group, Name: nameNginxProxy, Baseline: true, URL: p.nginx.url + g.path, Proxy: p.nginx, Conns: g.conns},
			contender{Group: g.group, Name: nameHAProxy, URL: p.haproxy.url + g.path, Proxy: p.haproxy, Conns: g.conns},
			contender{Group: g.group, Name: nameBare, URL: p.bare.url + g.path, Proxy: p.bare, Conns: g.conns},
			contender{Group: g.group, Name: nameLogOff, URL: p.logOff.url + g.path, Proxy: p.logOff, Conns: g.conns},
			contender{Group: g.group, Name: nameLogFile, URL: p.logFile.url + g.path, Proxy: p.logFile, Conns: g.conns},
		)
		if p.logPipe != nil {
			cs = append(cs, contender{Group: g.group, Name: nameLogPipe, URL: p.logPipe.url + g.path, Proxy: p.logPipe, Conns: g.conns})
		}
	}
	cs = append(cs,
		contender{Group: "intake", Name: namePHP, Baseline: true, Method: "POST", Body: event, Headers: jsonHdr,
			URL: front.url + "/api/v1/events", Proxy: front, Conns: phpConns, Spool: true},
		contender{Group: "intake", Name: nameGo, Method: "POST", Body: event, Headers: goJSON,
			URL: front.url + "/api/v1/events", Proxy: front, Conns: phpConns, Spool: true},

		contender{Group: "lookups", Name: namePHP, Baseline: true, URL: front.url + phpPath, Proxy: front, Conns: phpConns},
		contender{Group: "lookups", Name: nameGo, URL: front.url + phpPath, Headers: goHdr, Proxy: front, Conns: phpConns},

		contender{Group: "shadow", Name: nameLegacyOnly, Baseline: true, URL: front.url + phpPath,
			Headers: map[string]string{"Host": legacyHost}, Proxy: front, Conns: phpConns},
		contender{Group: "shadow", Name: nameShadow, URL: front.url + phpPath,
			Headers: map[string]string{"Host": shadowHost}, Proxy: front, Conns: phpConns},
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
func benchConfig(listen, admin, upstream, dir, campaigns, level string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %q\nadmin_listen: %q\nlog:\n  level: %s\n", listen, admin, level)
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
