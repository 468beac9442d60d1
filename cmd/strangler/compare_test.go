package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/proxy/capture"
)

// fakeMonolith answers GET /api/v1/ping with impl and counts requests.
func fakeMonolith(t *testing.T, impl string) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, fmt.Sprintf(`{"status":"ok","implementation":%q}`, impl))
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String(), &n
}

// writeCapture writes n captured pings.
func writeCapture(t *testing.T, n int) string {
	t.Helper()
	var b bytes.Buffer
	for i := range n {
		rec := capture.Record{
			Time: time.Now(), Route: "ping", Method: "GET", URI: "/api/v1/ping",
			Header: [][2]string{{"Host", "shop.example"}, {"Cookie", "[redacted]"}, {"X-Request-Id", fmt.Sprint("cap-", i)}},
			Remote: "10.0.0.7",
		}
		line, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(line, '\n'))
	}
	p := filepath.Join(t.TempDir(), "capture.jsonl")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// `strangler compare` replays a capture against the monolith and the Go
// handler, writes the report, and its exit code is the verdict.
func TestCompareCommand(t *testing.T) {
	campaigns, err := filepath.Abs(filepath.Join("..", "..", "examples", "monolith", "data", "campaigns.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		impl     string // what the monolith says it is; Go says "go"
		min      string
		wantExit int
		wantOut  []string
	}{
		{"identical answers: ready", "go", "0.15", exitOK, []string{"20 compared: 20 match", "verdict: ready to flip"}},
		{"a differing field: not ready", "php", "0.15", exitFinding, []string{"20 mismatch", "body.implementation: 20 mismatches", "verdict: NOT READY", "match rate 0.00 %"}},
		{"too few comparisons: not ready", "go", "", exitFinding, []string{"20 clean comparisons of the 3,000 needed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, calls := fakeMonolith(t, tt.impl)
			config := writeConfig(t, fmt.Sprintf("legacy:\n  upstream: %q\nhotcache:\n  source: %q\nroutes:\n"+
				"  - {name: ping, methods: [GET], path: /api/v1/ping, mode: legacy, handler: ping}\n", url, "file://"+campaigns))
			out := filepath.Join(t.TempDir(), "report.html")
			args := []string{"compare", "-config", config, "-capture", writeCapture(t, 20), "-route", "ping", "-out", out}
			if tt.min != "" {
				args = append(args, "-target-mismatch-rate", tt.min) // 3/0.15 = 20 comparisons
			}
			var stdout, stderr bytes.Buffer
			code := run(args, &stdout, &stderr)
			if code != tt.wantExit {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantExit, stdout.String(), stderr.String())
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			if !strings.Contains(stderr.String(), "compare ping [") || !strings.Contains(stderr.String(), "20/20 100%") {
				t.Errorf("no progress bar on stderr: %q", stderr.String())
			}
			// The monolith answered each request, plus the noise sample's
			// second calls (GET is safe).
			if calls.Load() < 20 {
				t.Errorf("the monolith saw %d requests for 20 records", calls.Load())
			}
			html, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(html), `id="route-ping"`) || !strings.Contains(string(html), `data-k="compared">20<`) {
				t.Errorf("report lacks the route's figures")
			}
		})
	}
}

func TestCompareCommandUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"compare"}, "-capture and -route are required"},
		{[]string{"compare", "-capture", "x", "-route", "r", "-concurrency", "0"}, "-concurrency must be at least 1"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		if code := run(tt.args, io.Discard, &stderr); code != exitUsage || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tt.args, code, stderr.String(), exitUsage, tt.want)
		}
	}
}
