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

// reportFixture: campaign in canary with 1,200 comparisons (one real
// mismatch, noise learned), events demoted, home plain legacy, and 600
// unmatched requests.
func reportFixture(t testing.TB) (*fakeSource, *Stats, *clock) {
	clk := newClock()
	s, _ := newStats(t, clk, nil)
	src := &fakeSource{routes: []RouteStatus{
		{RouteInfo: routes.RouteInfo{Name: "campaign", Methods: []string{"GET"}, Path: "/api/v1/campaigns/{id}",
			Mode: routes.ModeCanary, EffectiveMode: routes.ModeCanary, CanaryPercent: pf(10)}},
		{RouteInfo: routes.RouteInfo{Name: "events", Methods: []string{"POST"}, Path: "/api/v1/events",
			Mode: routes.ModeShadow, EffectiveMode: routes.ModeLegacy, ShadowPrimary: routes.SideLegacy, ShadowSamplePercent: pf(100)},
			Demoted: true, DemotedReason: "mismatch rate 12.00 % over the last 5 min exceeds the budget of 1.00 %", DemotedAt: clk.Now()},
		{RouteInfo: routes.RouteInfo{Name: "home", Methods: []string{"*"}, Path: "/", Mode: routes.ModeLegacy, EffectiveMode: routes.ModeLegacy}},
	}}
	c := s.Route("campaign")
	cmp := compare.MustCompile(compare.Rules{})
	body := func(status, email string) string {
		return fmt.Sprintf(`{"id":"cmp_000042","status":%q,"request_id":%q,"owner_email":%q}`, status, fmt.Sprint(time.Now().UnixNano()), email)
	}
	for i := range 1200 {
		clk.Add(3 * time.Second) // spread over the last hour
		p := jsonResponse(200, body("active", "owner@example.com"))
		var self *compare.Result
		if c.Noise().Sample() {
			r := cmp.Diff(p, jsonResponse(200, body("active", "owner@example.com")))
			c.LearnNoise(r)
			self = &r
		}
		q := jsonResponse(200, body("active", "owner@example.com"))
		if i == 700 {
			q = jsonResponse(200, body("paused", "owner@example.com"))
		}
		c.Compared(Comparison{Request: Request{ID: fmt.Sprintf("req-%d", i), Method: "GET", URI: "/api/v1/campaigns/cmp_000042"},
			PrimarySide: routes.SideLegacy, Primary: p, Candidate: q, Result: cmp.Diff(p, q), Self: self})
		c.Called(routes.SidePorted, 5*time.Millisecond, false)
		if i < 1000 {
			side, d := routes.SideLegacy, 20*time.Millisecond
			if i%10 == 0 {
				side, d = routes.SidePorted, 5*time.Millisecond
			}
			c.Served(side, d, false)
		}
	}
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
		{"data-route", "campaign", "compared", "1200"},
		{"data-route", "campaign", "match-rate", "99.92 %"}, // 1199/1200
		{"data-route", "campaign", "verdict", "ready"},
		{"data-route", "events", "mode", "legacy"},
		{"data-route", "events", "match-rate", "—"},
		{"data-route", "events", "verdict", "not ready"},
		{"data-route", "home", "share", "0.00 %"},
		{"id", "overview", "unmatched-total", "600"},
		{"id", "overview", "unmatched-share", "37.50 %"},
		// Detail.
		{"id", "route-campaign", "mismatch", "1"},
		{"id", "route-campaign", "noise-only", fmt.Sprint(snap.Counts.NoiseOnly)},
		{"id", "route-campaign", "match", fmt.Sprint(snap.Counts.Match)},
		{"data-side", "legacy", "p99", Millis(snap.Latency.Legacy.P99)},
		{"data-side", "ported", "p50", Millis(snap.Latency.Ported.P50)},
		{"data-side", "ported", "calls", "1300"},
		{"data-check", "match rate", "got", "99.92 %"},
		{"data-check", "comparisons", "got", "1200"},
		{"data-path", "body.status", "count", "1"},
		{"id", "route-events", "demoted", "Demoted to legacy 2025-03-01 12:00:30 UTC: mismatch rate 12.00 % over the last 5 min exceeds the budget of 1.00 %. It stays on legacy until a person re-enables it."},
	}
	for _, tt := range tests {
		if got := fig(t, doc, tt.scopeKey, tt.scope, tt.key); got != tt.want {
			t.Errorf("[%s=%s] %s = %q, want %q", tt.scopeKey, tt.scope, tt.key, got, tt.want)
		}
	}
	if snap.Counts.NoiseOnly+snap.Counts.Match != 1199 || snap.Counts.NoiseOnly == 0 {
		t.Fatalf("fixture counts %+v", snap.Counts)
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
			if c.Name != "campaign" || c.Share != 0.625 || c.Stats.Counts.Compared != 1200 || !c.Verdict.Ready ||
				len(c.Stats.TopDiffs) != 1 || c.Stats.TopDiffs[0].Template != "body.status" || len(c.Stats.Timeline) != 60 {
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
