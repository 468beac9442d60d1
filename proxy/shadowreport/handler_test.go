package shadowreport

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/routes"
)

type fakeSource struct {
	routes    []RouteStatus
	allLegacy bool
}

func (f *fakeSource) Routes() []RouteStatus { return f.routes }
func (f *fakeSource) AllLegacy() bool       { return f.allLegacy }

func pf(v float64) *float64 { return &v }

// reportFixture: campaign in canary with a first epoch of 1,200
// comparisons (one real mismatch, noise learned), superseded by an epoch
// whose rules accept that difference, with 3,100 clean comparisons (one of
// them accepted); events demoted with one mismatch; home plain legacy; and
// 600 unmatched requests.
func reportFixture(t testing.TB) (*fakeSource, *Stats, *clock) {
	clk := newClock()
	s, _ := newStats(t, clk, nil)
	accept := []compare.Accept{{Path: "body.status", Kind: compare.KindValue, Reason: "campaign paused by the data fix of ticket 42"}}
	src := &fakeSource{routes: []RouteStatus{
		{RouteInfo: routes.RouteInfo{Name: "campaign", Methods: []string{"GET"}, Path: "/api/v1/campaigns/{id}",
			Mode: routes.ModeCanary, EffectiveMode: routes.ModeCanary, CanaryPercent: pf(10)}},
		{RouteInfo: routes.RouteInfo{Name: "events", Methods: []string{"POST"}, Path: "/api/v1/events",
			Mode: routes.ModeShadow, EffectiveMode: routes.ModeLegacy, ShadowPrimary: routes.SideLegacy, ShadowSamplePercent: pf(100)},
			Demoted: true, DemotedReason: "mismatch rate 12.00 % over the last 5 min exceeds the budget of 1.00 %", DemotedAt: clk.Now()},
		{RouteInfo: routes.RouteInfo{Name: "home", Methods: []string{"*"}, Path: "/", Mode: routes.ModeLegacy, EffectiveMode: routes.ModeLegacy}},
	}}
	body := func(status, email string) string {
		return fmt.Sprintf(`{"id":"cmp_000042","status":%q,"request_id":%q,"owner_email":%q}`, status, fmt.Sprint(time.Now().UnixNano()), email)
	}
	run := func(c *Collector, cmp *compare.Comparator, n, paused int, served bool) {
		for i := range n {
			clk.Add(time.Second) // spread over the last hours
			p := jsonResponse(200, body("active", "owner@example.com"))
			var self *compare.Result
			if c.Noise().Sample() {
				r := cmp.Diff(p, jsonResponse(200, body("active", "owner@example.com")))
				c.LearnNoise(r)
				self = &r
				c.CalledTwin(routes.SideLegacy, 20*time.Millisecond, false)
			}
			q := jsonResponse(200, body("active", "owner@example.com"))
			if i == paused {
				q = jsonResponse(200, body("paused", "owner@example.com"))
			}
			c.Compared(Comparison{Request: Request{ID: fmt.Sprintf("req-%d", i), Method: "GET", URI: "/api/v1/campaigns/cmp_000042"},
				PrimarySide: routes.SideLegacy, Primary: p, Candidate: q, Result: cmp.Diff(p, q), Self: self})
			c.Called(routes.SidePorted, 5*time.Millisecond, false)
			c.Timed(routes.SideLegacy, 20*time.Millisecond)
			if served && i < 1000 {
				side, d := routes.SideLegacy, 20*time.Millisecond
				if i%10 == 0 {
					side, d = routes.SidePorted, 5*time.Millisecond
				}
				c.Served(side, d, false)
			}
		}
	}
	c := s.Route("campaign")
	first := compare.MustCompile(compare.Rules{})
	c.SetRules(RulesOf(first, compare.Rules{}))
	run(c, first, 1200, 700, true)
	second := compare.MustCompile(compare.Rules{Accept: accept})
	c.SetRules(RulesOf(second, compare.Rules{Accept: accept}))
	run(c, second, 3100, 1500, false)
	run(s.Route("events"), first, 50, 10, false)
	for i := range 500 {
		s.Unmatched([]byte("GET"), fmt.Appendf(nil, "/users/%d", i))
	}
	for range 100 {
		s.Unmatched([]byte("POST"), []byte("/login"))
	}
	return src, s, clk
}

func get(t *testing.T, h http.Handler, target, accept string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", target, rec.Code, rec.Body)
	}
	return rec
}

func find(n *html.Node, match func(*html.Node) bool) *html.Node {
	if match(n) {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := find(c, match); f != nil {
			return f
		}
	}
	return nil
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	if n == nil {
		return "<missing>"
	}
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.TrimSpace(b.String())
}

func withAttr(key, val string) func(*html.Node) bool {
	return func(n *html.Node) bool { return n.Type == html.ElementNode && attr(n, key) == val }
}

// fig returns the text of the data-k=key element inside the element with
// attribute scopeKey=scopeVal.
func fig(t *testing.T, doc *html.Node, scopeKey, scopeVal, key string) string {
	t.Helper()
	scope := find(doc, withAttr(scopeKey, scopeVal))
	if scope == nil {
		t.Fatalf("no element with %s=%q", scopeKey, scopeVal)
	}
	return text(find(scope, withAttr("data-k", key)))
}

func TestReportHTML(t *testing.T) {
	src, s, _ := reportFixture(t)
	h := NewHandler(src, s)
	rec := get(t, h, "/shadow", "text/html,application/xhtml+xml")
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Fatalf("content type %q", ct)
	}
	page := rec.Body.String()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	snap := s.Lookup("campaign").Snapshot()
	tests := []struct {
		scopeKey, scope, key, want string
	}{
		// Overview: 1,000 of 1,600 answers were on campaign.
		{"data-route", "campaign", "share", "62.50 %"},
		{"data-route", "campaign", "served-legacy", "900"},
		{"data-route", "campaign", "served-ported", "100"},
		{"data-route", "campaign", "compared", "3100"},
		{"data-route", "campaign", "match-rate", "100.00 %"},
		{"data-route", "campaign", "verdict", "ready"},
		{"data-route", "events", "mode", "legacy"},
		{"data-route", "events", "match-rate", "98.00 %"},
		{"data-route", "events", "verdict", "not ready"},
		{"data-route", "home", "share", "0.00 %"},
		{"id", "overview", "unmatched-total", "600"},
		{"id", "overview", "unmatched-share", "37.50 %"},
		// Detail: the current epoch.
		{"id", "route-campaign", "mismatch", "0"},
		{"id", "route-campaign", "accepted", "1"},
		{"id", "route-campaign", "noise-only", fmt.Sprint(snap.Counts.NoiseOnly)},
		{"id", "route-campaign", "match", fmt.Sprint(snap.Counts.Match)},
		{"id", "route-campaign", "confidence", "Mismatch rate: fewer than 1 in 1,000 at 95 % confidence (3,100 clean comparisons, none unexplained)."},
		{"id", "route-campaign", "latency-measure", "Both sides measured alike: each side's call in the same shadowed requests, timed by the proxy from calling the side to having its whole answer (the monolith's network round trip included). Calls include the second calls of the noise sample (legacy, safe methods only) and of the determinism check (Go), shown as twin calls."},
		{"data-side", "legacy", "p99", Millis(snap.Latency.Legacy.P99)},
		{"data-side", "ported", "p50", Millis(snap.Latency.Ported.P50)},
		{"data-side", "ported", "calls", "4400"},
		{"data-check", "unexplained mismatches", "got", "0"},
		{"data-check", "clean comparisons", "got", "3,100"},
		{"data-kind", "value", "explained", "1"},
		{"data-epoch", "1", "", ""},
		{"id", "route-events", "demoted", "Demoted to legacy 2025-03-01 12:00:30 UTC: mismatch rate 12.00 % over the last 5 min exceeds the budget of 1.00 %. It stays on legacy until a person re-enables it."},
	}
	events := find(doc, withAttr("id", "route-events"))
	if g := find(events, withAttr("data-path", "body.status")); g == nil || text(find(g, withAttr("data-k", "count"))) != "1" {
		t.Errorf("events: no group body.status with one mismatch")
	}
	if ep := find(doc, withAttr("data-epoch", "1")); !strings.Contains(text(ep), "superseded") || !strings.Contains(text(ep), "1200") {
		t.Errorf("superseded epoch row %q", text(ep))
	}
	if a := find(doc, withAttr("data-kind", "value")); !strings.Contains(text(a), "campaign paused by the data fix of ticket 42") {
		t.Errorf("accept row %q", text(a))
	}
	for _, tt := range tests {
		if tt.key == "" {
			continue
		}
		if got := fig(t, doc, tt.scopeKey, tt.scope, tt.key); got != tt.want {
			t.Errorf("[%s=%s] %s = %q, want %q", tt.scopeKey, tt.scope, tt.key, got, tt.want)
		}
	}
	if snap.Counts.NoiseOnly+snap.Counts.Match != 3099 || snap.Counts.NoiseOnly == 0 || snap.Epoch.Number != 2 || len(snap.Superseded) != 1 {
		t.Fatalf("fixture counts %+v, epoch %+v", snap.Counts, snap.Epoch)
	}
	// p50/p99 reflect what was recorded: legacy served at 20 ms.
	if p := snap.Latency.Legacy.P99; p < 19*time.Millisecond || p > 21*time.Millisecond {
		t.Fatalf("legacy p99 %v, want about 20ms", p)
	}
	unmatched := find(doc, withAttr("id", "unmatched"))
	if txt := text(unmatched); !strings.Contains(txt, "GET /users/{id}500") || !strings.Contains(txt, "POST /login100") {
		t.Errorf("unmatched table %q", txt)
	}
	if find(doc, withAttr("data-path", "body.request_id")) == nil {
		t.Error("noise field body.request_id not shown")
	}
	if find(doc, withAttr("data-k", "sparkline")) == nil {
		t.Error("no sparkline")
	}
	for _, secret := range []string{"owner@example.com"} {
		if strings.Contains(page, secret) {
			t.Errorf("page shows %q", secret)
		}
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("page is not self-contained")
	}

	// One route only.
	doc, err = html.Parse(strings.NewReader(get(t, h, "/shadow?route=events", "").Body.String()))
	if err != nil {
		t.Fatal(err)
	}
	if find(doc, withAttr("id", "route-campaign")) != nil || find(doc, withAttr("id", "route-events")) == nil ||
		find(doc, withAttr("data-route", "campaign")) == nil {
		t.Error("?route=events should detail events only and still list every route")
	}
	src.allLegacy = true
	if !strings.Contains(get(t, h, "/shadow", "").Body.String(), `id="all-legacy"`) {
		t.Error("all_legacy banner missing")
	}
}

func TestReportJSON(t *testing.T) {
	src, s, _ := reportFixture(t)
	h := NewHandler(src, s)
	for _, tt := range []struct {
		name string
		rec  *httptest.ResponseRecorder
	}{
		{"format=json", get(t, h, "/shadow?format=json", "")},
		{"accept", get(t, h, "/shadow", "application/json")},
		{"json handler", get(t, h.JSON(), "/shadow.json", "")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var rep Report
			if err := json.Unmarshal(tt.rec.Body.Bytes(), &rep); err != nil {
				t.Fatal(err)
			}
			if len(rep.Routes) != 3 || rep.TotalServed != 1600 || rep.Unmatched.Total != 600 {
				t.Fatalf("report %d routes, %d served, %d unmatched", len(rep.Routes), rep.TotalServed, rep.Unmatched.Total)
			}
			c := rep.Routes[0]
			if c.Name != "campaign" || c.Share != 0.625 || c.Stats.Counts.Compared != 3100 || !c.Verdict.Ready ||
				len(c.Stats.TopDiffs) != 0 || len(c.Stats.Superseded) != 1 || c.Stats.Superseded[0].Counts.Mismatch != 1 ||
				len(c.Stats.Accepts) != 1 || c.Stats.Accepts[0].Explained != 1 || len(c.Stats.Timeline) != 60 {
				t.Fatalf("campaign %+v", c)
			}
			if e := rep.Routes[1]; !e.Demoted || e.EffectiveMode != routes.ModeLegacy {
				t.Fatalf("events %+v", e.RouteStatus)
			}
		})
	}
}

// TestRenderToFile writes the page to a file and checks it parses whole;
// the chromedp screenshot test loads the same page once the proxy serves
// it.
func TestRenderToFile(t *testing.T) {
	src, s, _ := reportFixture(t)
	rec := get(t, NewHandler(src, s), "/shadow", "")
	path := filepath.Join(t.TempDir(), "shadow-report.html")
	if err := os.WriteFile(path, rec.Body.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := html.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	sections := 0
	find(doc, func(n *html.Node) bool {
		if n.Type == html.ElementNode && n.Data == "section" {
			sections++
		}
		return false
	})
	if sections != 4 { // overview and three routes
		t.Fatalf("%d sections in %s, want 4", sections, path)
	}
	t.Logf("report written to %s (%d bytes)", path, rec.Body.Len())
}
