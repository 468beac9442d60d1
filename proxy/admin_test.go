package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/proxy/control"
	"github.com/strangler-proxy/strangler/proxy/shadowreport"
)

// startAdmin serves the harness's admin endpoints on a loopback port and
// returns the base URL.
func (h *harness) startAdmin(t *testing.T, token string) string {
	t.Helper()
	a, err := control.NewAdmin(control.AdminOptions{Registry: h.reg, Plane: h.plane, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func fetch(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// report is the migration report as the admin listener would serve it.
func (h *harness) report(t testing.TB) shadowreport.Report {
	t.Helper()
	rec := httptest.NewRecorder()
	h.plane.Report().JSON().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/shadow.json", nil))
	var rep shadowreport.Report
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatalf("report JSON: %v: %s", err, rec.Body)
	}
	return rep
}

func TestAdminMetricsCountRequests(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	base := h.startAdmin(t, "")

	h.roundTrip(t, get("/counted"))
	_, body, _ := fetch(t, base+"/metrics")
	want := `strangler_requests_total{backend="legacy",mode="legacy",route="_unmatched",status="200"} 1`
	if !strings.Contains(body, want) {
		t.Errorf("/metrics lacks %s", want)
	}
	for _, name := range []string{"strangler_request_duration_seconds_bucket", "strangler_requests_in_flight 0", "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}
