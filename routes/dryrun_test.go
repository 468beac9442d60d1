package routes

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// DryRun says what a reload of some contents would do — refuse a static
// change, refuse an invalid table, or apply and with which changes — and
// changes nothing: the table in force and the reload counters stay.
func TestWatcherDryRun(t *testing.T) {
	e := startWatcher(t)
	before := e.live.Load()
	tests := []struct {
		name     string
		give     string
		result   string
		problems []string // substrings, in order
		changes  []string
	}{
		{"unchanged", configFile("canary", ""), ResultOK, nil, []string{}},
		{"a route edit", configFile("ported", ""), ResultOK, nil, []string{"campaign: canary 10%→ported"}},
		{"a static change", strings.Replace(configFile("ported", ""), `listen: ":8080"`, `listen: ":9090"`, 1),
			ResultStaticChanged, []string{"config reload not supported for listen: old=:8080, new=:9090"}, []string{}},
		{"an unknown handler", strings.Replace(configFile("ported", ""), "campaigns.get", "campaigns.nope", 1),
			ResultInvalid, []string{"campaigns.nope"}, []string{}},
		{"not YAML", "routes: [", ResultInvalid, []string{"parse"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.w.DryRun([]byte(tt.give))
			if got.Result != tt.result || len(got.Problems) != len(tt.problems) {
				t.Fatalf("DryRun = %+v, want result %s with %d problems", got, tt.result, len(tt.problems))
			}
			for i, p := range tt.problems {
				if !strings.Contains(got.Problems[i], p) {
					t.Errorf("problem %d = %q, want it to say %q", i, got.Problems[i], p)
				}
			}
			if strings.Join(got.Changes, "\n") != strings.Join(tt.changes, "\n") {
				t.Errorf("changes %q, want %q", got.Changes, tt.changes)
			}
		})
	}
	if e.live.Load() != before || e.campaignMode() != ModeCanary {
		t.Error("a dry run replaced the table in force")
	}
	for _, r := range []string{ResultOK, ResultInvalid, ResultStaticChanged} {
		if n := e.reloads(r); n != 0 {
			t.Errorf("a dry run counted a %s reload", r)
		}
	}

	// Over HTTP, as `strangler check -against` asks.
	rec := httptest.NewRecorder()
	e.w.CheckHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/config/check", strings.NewReader(configFile("ported", ""))))
	var rc ReloadCheck
	if err := json.Unmarshal(rec.Body.Bytes(), &rc); err != nil || rec.Code != 200 || rc.Result != ResultOK || len(rc.Changes) != 1 {
		t.Errorf("handler: %d %s (%v)", rec.Code, rec.Body, err)
	}
	rec = httptest.NewRecorder()
	e.w.CheckHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/config/check", bytes.NewReader(make([]byte, maxCheckBytes+1))))
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over the bound: %d", rec.Code)
	}
}
