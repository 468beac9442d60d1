package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strangler-proxy/strangler/ported/campaign"
)

const campaignRoutes = "  - {name: campaign, methods: [GET], path: \"/api/v1/campaigns/{id}\", mode: ported, handler: campaigns.get}\n" +
	"  - {name: campaigns, methods: [GET], path: /api/v1/campaigns, mode: ported, handler: campaigns.list}\n"

// Ported campaign routes answer through the proxy what PHP answers
// directly: same status, Content-Type and body bytes, from the hot cache.
func TestCampaignsPortedMatchPHP(t *testing.T) {
	m := startMonolith(t)
	p := start(t, config{Upstream: m.URL, Routes: campaignRoutes})
	waitReady(t, p)

	tests := []struct {
		name, path string
		status     int
	}{
		{"one campaign", "/api/v1/campaigns/cmp_000001", http.StatusOK},
		{"unknown id", "/api/v1/campaigns/cmp_999999", http.StatusNotFound},
		{"active in DE", "/api/v1/campaigns?country=de&active=true&limit=5", http.StatusOK},
		{"first page", "/api/v1/campaigns?limit=3", http.StatusOK},
		{"bad limit", "/api/v1/campaigns?limit=0", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The same request id on both sides: error bodies carry it.
			rid := []string{"X-Request-Id", "campaigns-e2e-1"}
			goResp, goBody := get(t, p.URL+tt.path, rid...)
			phpResp, phpBody := get(t, m.URL+tt.path, rid...)
			if goResp.StatusCode != tt.status || phpResp.StatusCode != tt.status {
				t.Errorf("status: proxy %d, PHP %d, want %d", goResp.StatusCode, phpResp.StatusCode, tt.status)
			}
			if g, p := goResp.Header.Get("Content-Type"), phpResp.Header.Get("Content-Type"); g != p {
				t.Errorf("Content-Type: proxy %q, PHP %q", g, p)
			}
			if string(goBody) != string(phpBody) {
				t.Errorf("bodies differ\nproxy: %s\nPHP:   %s", goBody, phpBody)
			}
		})
	}
	// Go answered, not PHP through the passthrough.
	_, metrics := get(t, p.Admin+"/metrics")
	for _, route := range []string{"campaign", "campaigns"} {
		if !strings.Contains(string(metrics), `backend="ported",mode="ported",route="`+route+`"`) {
			t.Errorf("no request of route %s was served by Go:\n%s", route, grepLines(string(metrics), "strangler_requests_total"))
		}
	}
}

// The hot cache's admin refresh and /readyz: with its file missing the
// proxy starts but is not ready and the Go route has no data; once the file
// is there a forced refresh loads it and readiness follows.
func TestHotCacheRefreshAndReadiness(t *testing.T) {
	m := startMonolith(t)
	file := filepath.Join(t.TempDir(), "campaigns.json")
	p := start(t, config{Upstream: m.URL, HotCache: "file://" + file, Routes: campaignRoutes})

	resp, body := get(t, p.Admin+"/readyz")
	ready := readiness(t, body)
	if resp.StatusCode != http.StatusServiceUnavailable || ready["hotcache"] || !ready["spool"] || !ready["legacy"] {
		t.Errorf("before the first load: %d %s, want 503 with only hotcache failing", resp.StatusCode, body)
	}
	if resp, _ := get(t, p.URL+"/api/v1/campaigns/cmp_000001"); resp.StatusCode == http.StatusOK {
		t.Errorf("a campaign answered 200 with no data loaded")
	}

	data, err := os.ReadFile(shippedCampaigns())
	if err != nil {
		t.Fatal(err)
	}
	doc, err := campaign.Unmarshal(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	resp, err = client().Post(p.Admin+"/admin/hotcache/refresh", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var refreshed struct {
		Result  string `json:"result"`
		Entries int    `json:"entries"`
	}
	err = json.NewDecoder(resp.Body).Decode(&refreshed)
	resp.Body.Close()
	// The refresher's own retry may have loaded it first: not_modified then.
	if err != nil || resp.StatusCode != http.StatusOK || refreshed.Entries != len(doc.Campaigns) ||
		(refreshed.Result != "updated" && refreshed.Result != "not_modified") {
		t.Fatalf("refresh: %d %+v %v, want 200 with %d entries", resp.StatusCode, refreshed, err, len(doc.Campaigns))
	}

	resp, body = get(t, p.Admin+"/readyz")
	ready = readiness(t, body)
	if resp.StatusCode != http.StatusOK || !ready["hotcache"] || !ready["spool"] {
		t.Errorf("after the refresh: %d %s, want 200 with hotcache and spool ready", resp.StatusCode, body)
	}
	if resp, body := get(t, p.URL+"/api/v1/campaigns/cmp_000001"); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"id":"cmp_000001"`) {
		t.Errorf("campaign after the refresh: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, p.Admin+"/admin/hotcache/refresh"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET refresh: %d, want 405", resp.StatusCode)
	}
}

// readiness returns each /readyz check's ok, by name.
func readiness(t *testing.T, body []byte) map[string]bool {
	t.Helper()
	var r struct {
		Checks []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("/readyz %q: %v", body, err)
	}
	out := map[string]bool{}
	for _, c := range r.Checks {
		out[c.Name] = c.OK
	}
	return out
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
