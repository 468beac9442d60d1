package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/strangler-proxy/strangler/proxy/control"
	"github.com/strangler-proxy/strangler/proxy/shadowreport"
	"github.com/strangler-proxy/strangler/routes"
)

// reportRequests is how many shadowed requests the report harness sends.
const reportRequests = 30

// reportHarness is a front door whose shadow route has seen traffic —
// matches and mismatches — plus unmatched requests, with its admin
// listener on loopback.
func reportHarness(t *testing.T, token string) (*harness, string) {
	t.Helper()
	legacySide, goSide := lookupSides(func(m map[string]any) { m["amount"] = 12.49 }, 200, nil)
	reg := routes.Registry{"h": goSide}
	h := newHarness(t, harnessOptions{
		legacy: legacySide,
		routes: []routes.RouteConfig{
			shadowRoute("lookup", "/c/{id}", "GET", nil),
			{Name: "ping", Path: "/ping"},
		},
		reg:   reg,
		plane: func(o *control.Options) { o.ShadowRegistry = reg },
	})
	// More than noise.min_observations (20): comparisons wait for their
	// learning paths to be classified before they are counted.
	for range reportRequests {
		h.roundTrip(t, get("/c/cmp_1"))
	}
	for i := range 4 {
		h.roundTrip(t, get(fmt.Sprintf("/users/%d/orders", i)))
	}
	h.snapshot(t, "lookup", reportRequests)
	return h, h.startAdmin(t, token)
}

// chromium finds the Debian browser; its absence fails the test with the
// way to install it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: install it with `bash scripts/install-deps.sh --browser` (Debian package chromium)")
	return ""
}

// The report page renders in headless Chromium with the figures the
// collector holds, and draws something.
func TestReportPageRendersInChromium(t *testing.T) {
	h, base := reportHarness(t, "")
	path := chromium(t)
	snap := h.srv.stats.Lookup("lookup").Snapshot()

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/shadow"),
		chromedp.WaitVisible(chromedp.CSS("#route-lookup")),
	); err != nil {
		t.Fatalf("load the report: %v", err)
	}
	figures, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`(() => {
		const q = (s) => { const e = document.querySelector(s); return e ? e.textContent.trim() : ""; };
		return {
			title: document.title,
			compared: q('#route-lookup [data-k="compared"]'),
			mismatch: q('#route-lookup [data-k="mismatch"]'),
			verdict: q('#route-lookup [data-k="verdict"]'),
			overviewCompared: q('tr[data-route="lookup"] [data-k="compared"]'),
			topPath: (document.querySelector('#route-lookup details.group') || {dataset: {}}).dataset.path || "",
			unmatched: q('#unmatched'),
			unmatchedTotal: q('[data-k="unmatched-total"]'),
			noise: Array.from(document.querySelectorAll('#route-lookup table.noise-fields tr[data-path]')).map(r => r.dataset.path).join(","),
		};
	})()`))
	if err != nil {
		t.Fatalf("read the page: %v", err)
	}
	want := map[string]string{
		"compared":         fmt.Sprint(snap.Counts.Compared),
		"mismatch":         fmt.Sprint(snap.Counts.Mismatch),
		"overviewCompared": fmt.Sprint(snap.Counts.Compared),
		"verdict":          "not ready",
		"topPath":          "body.amount",
		"unmatchedTotal":   "4",
	}
	for k, v := range want {
		if figures[k] != v {
			t.Errorf("%s on the page: %q, want %q", k, figures[k], v)
		}
	}
	if snap.Counts.Compared != reportRequests || snap.Counts.Mismatch != reportRequests {
		t.Errorf("collector counts %+v, want %d mismatches", snap.Counts, reportRequests)
	}
	if !strings.Contains(figures["unmatched"], "GET /users/{id}/orders") {
		t.Errorf("unmatched table %q lacks GET /users/{id}/orders", figures["unmatched"])
	}
	if !strings.Contains(figures["noise"], "body.trace") {
		t.Errorf("noise table lists %q, want body.trace among them", figures["noise"])
	}

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	checkRendered(t, img)
}

// checkRendered fails unless img is page-sized and not one flat colour.
func checkRendered(t *testing.T, img image.Image) {
	t.Helper()
	b := img.Bounds()
	if b.Dx() < 800 || b.Dy() < 600 || b.Dx() > 10000 || b.Dy() > 100000 {
		t.Errorf("screenshot is %dx%d", b.Dx(), b.Dy())
	}
	colours := map[[3]uint32]int{}
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, bl >> 8}]++
		}
	}
	// Text, badges, tables: a rendered page has many colours, and no one
	// colour covers everything.
	most := 0
	total := 0
	for _, n := range colours {
		most = max(most, n)
		total += n
	}
	if len(colours) < 20 || float64(most)/float64(total) > 0.97 {
		t.Errorf("screenshot looks blank: %d colours, the commonest covering %.1f %%", len(colours), 100*float64(most)/float64(total))
	}
}

// The JSON twin carries the same figures.
func TestReportJSON(t *testing.T) {
	h, base := reportHarness(t, "")
	code, body, hdr := fetch(t, base+"/shadow.json")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /shadow.json: %d %s", code, hdr.Get("Content-Type"))
	}
	var rep shadowreport.Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	snap := h.srv.stats.Lookup("lookup").Snapshot()
	if len(rep.Routes) != 2 || rep.Routes[0].Name != "lookup" || rep.Routes[0].Stats.Counts != snap.Counts {
		t.Errorf("report routes %+v, want lookup with %+v", rep.Routes, snap.Counts)
	}
	if rep.Unmatched.Total != 4 {
		t.Errorf("unmatched %+v", rep.Unmatched)
	}
}

// Re-enabling a route is an action: with a token configured it needs the
// token; without one it is allowed on the loopback listener.
func TestAdminReenable(t *testing.T) {
	const token = "0123456789abcdef-admin"
	tests := []struct {
		name, token, auth, route string
		want                     int
	}{
		{"loopback without a token configured", "", "", "lookup", http.StatusOK},
		{"unknown route", "", "", "nope", http.StatusNotFound},
		{"token configured, none sent", token, "", "lookup", http.StatusUnauthorized},
		{"token configured, wrong one", token, "Bearer 0123456789abcdef-xxxxx", "lookup", http.StatusUnauthorized},
		{"token configured and sent", token, "Bearer " + token, "lookup", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, base := reportHarness(t, tt.token)
			req, err := http.NewRequest(http.MethodPost, base+"/admin/routes/"+tt.route+"/reenable", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			c := &http.Client{Timeout: 10 * time.Second}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			c.CloseIdleConnections()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}
