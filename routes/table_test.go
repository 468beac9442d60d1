package routes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"
)

func newCtx(method, host, uri string) *fasthttp.RequestCtx {
	ctx := &fasthttp.RequestCtx{}
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	ctx.Request.Header.SetHost(host)
	return ctx
}

const matchYAML = `
listen: ":8080"
routes:
  - {name: events, methods: [POST], path: /api/v1/events, mode: ported, handler: events.ingest}
  - {name: campaign, methods: [GET], path: "/api/v1/campaigns/{id}", mode: canary, handler: campaigns.get, canary: {percent: 10}}
  - {name: campaigns, methods: [get], path: /api/v1/campaigns, mode: shadow, handler: campaigns.list}
  - {name: static, path: "/static/*"}
  - {name: admin_events, host: Admin.Example.com, methods: [POST], path: /api/v1/events}
  - {name: any_ping, path: /ping, mode: ported, handler: events.ingest}
  - {name: get_ping, methods: [GET], path: /ping}
  - {name: nested_a, methods: [GET], path: "/n/{aid}"}
  - {name: nested_b, methods: [GET], path: "/n/{bid}/x"}
  - {name: v6, host: "[::1]", path: /v6}
`

func TestMatch(t *testing.T) {
	tb := mustCompile(t, matchYAML)
	tests := []struct {
		name      string
		method    string
		host      string
		uri       string
		wantRoute string // "" ⇒ unmatched
		wantMode  Mode
		wantVals  map[string]string
	}{
		{name: "exact", method: "POST", host: "example.com", uri: "/api/v1/events", wantRoute: "events", wantMode: ModePorted},
		{name: "query ignored", method: "POST", host: "example.com", uri: "/api/v1/events?x=1", wantRoute: "events", wantMode: ModePorted},
		{name: "method mismatch goes to legacy", method: "GET", host: "example.com", uri: "/api/v1/events", wantMode: ModeLegacy},
		{name: "param", method: "GET", host: "example.com", uri: "/api/v1/campaigns/cmp_000042", wantRoute: "campaign", wantMode: ModeCanary,
			wantVals: map[string]string{"id": "cmp_000042"}},
		{name: "param is percent-decoded", method: "GET", host: "example.com", uri: "/api/v1/campaigns/cmp%5F1", wantRoute: "campaign", wantMode: ModeCanary,
			wantVals: map[string]string{"id": "cmp_1"}},
		{name: "lower-cased method in config", method: "GET", host: "example.com", uri: "/api/v1/campaigns", wantRoute: "campaigns", wantMode: ModeShadow},
		{name: "trailing slash is not the same path", method: "GET", host: "example.com", uri: "/api/v1/campaigns/", wantMode: ModeLegacy},
		{name: "param does not span segments", method: "GET", host: "example.com", uri: "/api/v1/campaigns/a/b", wantMode: ModeLegacy},
		{name: "catch-all", method: "GET", host: "example.com", uri: "/static/css/site.css", wantRoute: "static", wantMode: ModeLegacy,
			wantVals: map[string]string{CatchAllParam: "css/site.css"}},
		{name: "catch-all bare prefix", method: "HEAD", host: "example.com", uri: "/static/", wantRoute: "static", wantMode: ModeLegacy,
			wantVals: map[string]string{CatchAllParam: ""}},
		{name: "catch-all needs the slash", method: "GET", host: "example.com", uri: "/static", wantMode: ModeLegacy},
		{name: "host-specific wins", method: "POST", host: "admin.example.com", uri: "/api/v1/events", wantRoute: "admin_events", wantMode: ModeLegacy},
		{name: "host port stripped", method: "POST", host: "admin.example.com:8443", uri: "/api/v1/events", wantRoute: "admin_events", wantMode: ModeLegacy},
		{name: "host case-insensitive", method: "POST", host: "ADMIN.Example.COM", uri: "/api/v1/events", wantRoute: "admin_events", wantMode: ModeLegacy},
		{name: "host trailing dot", method: "POST", host: "admin.example.com.", uri: "/api/v1/events", wantRoute: "admin_events", wantMode: ModeLegacy},
		{name: "other host gets hostless route", method: "POST", host: "www.example.com", uri: "/api/v1/events", wantRoute: "events", wantMode: ModePorted},
		{name: "host without its own match falls back to hostless", method: "GET", host: "admin.example.com", uri: "/api/v1/campaigns/c1", wantRoute: "campaign", wantMode: ModeCanary,
			wantVals: map[string]string{"id": "c1"}},
		{name: "ipv6 host with port", method: "GET", host: "[::1]:8080", uri: "/v6", wantRoute: "v6", wantMode: ModeLegacy},
		{name: "ipv6 route not for other hosts", method: "GET", host: "127.0.0.1:8080", uri: "/v6", wantMode: ModeLegacy},
		{name: "method route wins over any-method route", method: "GET", host: "example.com", uri: "/ping", wantRoute: "get_ping", wantMode: ModeLegacy},
		{name: "any-method route", method: "DELETE", host: "example.com", uri: "/ping", wantRoute: "any_ping", wantMode: ModePorted},
		{name: "custom method reaches any-method route", method: "PROPFIND", host: "example.com", uri: "/ping", wantRoute: "any_ping", wantMode: ModePorted},
		{name: "different param names per path", method: "GET", host: "example.com", uri: "/n/7/x", wantRoute: "nested_b", wantMode: ModeLegacy,
			wantVals: map[string]string{"bid": "7"}},
		{name: "different param names per path, shorter", method: "GET", host: "example.com", uri: "/n/7", wantRoute: "nested_a", wantMode: ModeLegacy,
			wantVals: map[string]string{"aid": "7"}},
		{name: "no route", method: "GET", host: "example.com", uri: "/nope", wantMode: ModeLegacy},
		{name: "root", method: "GET", host: "example.com", uri: "/", wantMode: ModeLegacy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := newCtx(tt.method, tt.host, tt.uri)
			m := tb.Match(ctx)
			got := ""
			if m.Route != nil {
				got = m.Route.Name
			}
			if got != tt.wantRoute || m.Mode != tt.wantMode {
				t.Fatalf("Match(%s %s %s) = route %q mode %q; want %q %q", tt.method, tt.host, tt.uri, got, m.Mode, tt.wantRoute, tt.wantMode)
			}
			vals := map[string]string{}
			if m.Route != nil {
				for _, p := range m.Route.params {
					vals[p.name] = Param(ctx, p.name)
				}
			}
			if len(vals)+len(tt.wantVals) > 0 && fmt.Sprint(vals) != fmt.Sprint(tt.wantVals) {
				t.Errorf("parameters %v, want %v", vals, tt.wantVals)
			}
			for _, name := range []string{"nope", "ID", ""} {
				if v := Param(ctx, name); v != "" {
					t.Errorf("Param(%q) = %q for a parameter the route does not have", name, v)
				}
			}
		})
	}
}

func TestMethodIndexFollowsKnownMethods(t *testing.T) {
	for i, m := range knownMethods {
		if got := methodIndex([]byte(m)); got != i {
			t.Errorf("methodIndex(%s) = %d, want %d", m, got, i)
		}
	}
	if got := methodIndex([]byte("get")); got != -1 {
		t.Errorf("methodIndex(get) = %d, want -1 (fasthttp hands methods over as sent)", got)
	}
}

func TestMatchAllLegacy(t *testing.T) {
	tb := mustCompile(t, "all_legacy: true\n"+matchYAML[len("\nlisten: \":8080\"\n"):])
	if !tb.AllLegacy() {
		t.Fatal("AllLegacy() = false")
	}
	ctx := newCtx("GET", "example.com", "/api/v1/campaigns/c9")
	m := tb.Match(ctx)
	if m.Route == nil || m.Route.Name != "campaign" || m.Route.Mode != ModeCanary || m.Mode != ModeLegacy {
		t.Fatalf("Match = %+v; want route campaign (mode canary) with effective mode legacy", m)
	}
	if Param(ctx, "id") != "c9" {
		t.Errorf("id = %q, want c9", Param(ctx, "id"))
	}
	for _, ri := range tb.Describe() {
		if ri.EffectiveMode != ModeLegacy {
			t.Errorf("Describe %s: effective mode %s under all_legacy", ri.Name, ri.EffectiveMode)
		}
	}
}

func TestNilAndEmptyTable(t *testing.T) {
	var nilTable *Table
	live := NewLive(nil)
	for _, tb := range []*Table{nilTable, live.Load(), mustCompile(t, "listen: x\n")} {
		m := tb.Match(newCtx("GET", "example.com", "/api/v1/events"))
		if m.Route != nil || m.Mode != ModeLegacy {
			t.Errorf("Match on empty table = %+v", m)
		}
		if tb.AllLegacy() || len(tb.Routes()) != 0 || len(tb.Describe()) != 0 {
			t.Errorf("empty table reports routes or all_legacy")
		}
	}
}

func TestDescribeAndFprint(t *testing.T) {
	tb := mustCompile(t, `
routes:
  - {name: events, methods: [POST], path: /api/v1/events, mode: shadow, handler: events.ingest, shadow: {sample_percent: 50}}
  - {name: campaign, path: "/api/v1/campaigns/{id}", host: API.example.com, mode: canary, handler: campaigns.get,
     canary: {percent: 12.5, override_header: X-Canary, override_token: do-not-show-this-token}}
`)
	b, err := json.Marshal(tb.Describe())
	if err != nil {
		t.Fatal(err)
	}
	js := string(b)
	for _, want := range []string{
		`"name":"events","methods":["POST"],"path":"/api/v1/events","mode":"shadow","effective_mode":"shadow","handler":"events.ingest","shadow_primary":"legacy","shadow_sample_percent":50`,
		`"name":"campaign","methods":["*"],"host":"api.example.com","path":"/api/v1/campaigns/{id}","mode":"canary","effective_mode":"canary","handler":"campaigns.get","canary_percent":12.5`,
	} {
		if !strings.Contains(js, want) {
			t.Errorf("Describe JSON %s\ndoes not contain %s", js, want)
		}
	}
	var buf bytes.Buffer
	if err := tb.Fprint(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("Fprint output:\n%s", out)
	}
	if f := strings.Fields(lines[2]); strings.Join(f, " ") != "campaign * api.example.com /api/v1/campaigns/{id} canary 12.5% campaigns.get" {
		t.Errorf("Fprint row %q", lines[2])
	}
	if strings.Contains(js+out, "do-not-show-this-token") {
		t.Error("override token shown by Describe or Fprint")
	}
}

// Requests keep matching against whichever table they loaded while the
// table is swapped underneath (run with -race).
func TestLiveSwapConcurrent(t *testing.T) {
	a := mustCompile(t, matchYAML)
	b := mustCompile(t, "all_legacy: true\n"+matchYAML[len("\nlisten: \":8080\"\n"):])
	live := NewLive(a)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 2000 {
				ctx := newCtx("POST", "example.com", "/api/v1/events")
				m := live.Load().Match(ctx)
				if m.Route == nil || m.Route.Name != "events" || (m.Mode != ModePorted && m.Mode != ModeLegacy) {
					t.Errorf("Match during swaps = %+v", m)
					return
				}
			}
		})
	}
	for i := range 2000 {
		if i%2 == 0 {
			live.Store(b)
		} else {
			live.Store(a)
		}
	}
	wg.Wait()
}

func BenchmarkMatch(b *testing.B) {
	tb := mustCompile(b, matchYAML)
	for _, bc := range []struct{ name, method, host, uri string }{
		{"exact", "POST", "example.com", "/api/v1/events"},
		{"exact_host_routes", "POST", "admin.example.com:8443", "/api/v1/events"},
		{"param", "GET", "example.com", "/api/v1/campaigns/cmp_000042"},
		{"miss", "GET", "example.com", "/account/settings"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := newCtx(bc.method, bc.host, bc.uri)
			if m := tb.Match(ctx); (m.Route == nil) != (bc.name == "miss") {
				b.Fatalf("unexpected match %+v", m)
			}
			b.ReportAllocs()
			for b.Loop() {
				tb.Match(ctx)
			}
		})
	}
}
