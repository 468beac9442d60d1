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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/proxy/capture"
)

// fakeMonolith answers GET /api/v1/ping with impl, counts requests and
// keeps the bodies of the others.
func fakeMonolith(t *testing.T, impl string) (string, *atomic.Int64, func() []string) {
	t.Helper()
	var n atomic.Int64
	var mu sync.Mutex
	var bodies []string
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			if r.Method != http.MethodGet {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				bodies = append(bodies, r.Method+" "+string(b))
				mu.Unlock()
			}
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
	return "http://" + ln.Addr().String(), &n, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(bodies)
	}
}

// writeCapture writes n captured pings; with impl set, each with the
// legacy answer saying it is impl, recorded. post adds as many POSTs.
func writeCapture(t *testing.T, n int, impl string, post int) string {
	t.Helper()
	var b bytes.Buffer
	add := func(rec capture.Record) {
		line, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(line, '\n'))
	}
	for i := range n {
		rec := capture.Record{
			Time: time.Now(), Route: "ping", Method: "GET", URI: "/api/v1/ping",
			Header: [][2]string{{"Host", "shop.example"}, {"Cookie", "[redacted]"}, {"X-Request-Id", fmt.Sprint("cap-", i)}},
			Remote: "10.0.0.7",
		}
		if impl != "" {
			at := time.Now().Add(-time.Hour)
			rec.Answer = &capture.Answer{Status: 200, Header: [][2]string{{"Content-Type", "application/json"}},
				Body: fmt.Sprintf(`{"status":"ok","implementation":%q}`, impl), Start: at, End: at.Add(3 * time.Millisecond)}
		}
		add(rec)
	}
	for i := range post {
		add(capture.Record{Time: time.Now(), Route: "ping", Method: "POST", URI: "/api/v1/ping",
			Header: [][2]string{{"Host", "shop.example"}, {"Content-Type", "application/json"}}, Body: fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", 100))})
	}
	p := filepath.Join(t.TempDir(), "capture.jsonl")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func pingConfig(t *testing.T, upstream string) string {
	t.Helper()
	campaigns, err := filepath.Abs(filepath.Join("..", "..", "examples", "monolith", "data", "campaigns.json"))
	if err != nil {
		t.Fatal(err)
	}
	return writeConfig(t, fmt.Sprintf("legacy:\n  upstream: %q\nhotcache:\n  source: %q\nroutes:\n"+
		"  - {name: ping, path: /api/v1/ping, mode: legacy, handler: ping}\n", upstream, "file://"+campaigns))
}

// `strangler compare` compares the Go handler with the legacy answers the
// capture recorded, asking the monolith nothing, writes the report, and
// its exit code is the verdict; -live asks the monolith again.
func TestCompareCommand(t *testing.T) {
	tests := []struct {
		name     string
		live     bool
		impl     string // what the legacy side says it is; Go says "go"
		min      string
		wantExit int
		wantOut  []string
	}{
		{"recorded identical answers: ready", false, "go", "0.15", exitOK, []string{"20 replayed against the recorded legacy answers, 20 compared: 20 match", "verdict: ready to flip: mismatch rate fewer than 1 in 6 at 95 % confidence (20 clean comparisons"}},
		{"a recorded differing field: not ready", false, "php", "0.15", exitFinding, []string{"20 mismatch", "body.implementation: 20 mismatches", "verdict: NOT READY", "match rate 0.00 %"}},
		{"recorded, too few comparisons: not ready", false, "go", "", exitFinding, []string{"20 clean comparisons of the 3,000 needed"}},
		{"live identical answers: ready", true, "go", "0.15", exitOK, []string{"20 replayed against the monolith, 20 compared: 20 match", "verdict: ready to flip"}},
		{"live differing field: not ready", true, "php", "0.15", exitFinding, []string{"20 mismatch", "body.implementation: 20 mismatches"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, calls, _ := fakeMonolith(t, tt.impl)
			out := filepath.Join(t.TempDir(), "report.html")
			recorded := tt.impl
			if tt.live {
				recorded = ""
			}
			args := []string{"compare", "-config", pingConfig(t, url), "-capture", writeCapture(t, 20, recorded, 0), "-route", "ping", "-out", out}
			if tt.live {
				args = append(args, "-live")
			}
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
			switch {
			case !tt.live && calls.Load() != 0:
				t.Errorf("an offline run sent %d requests to the monolith", calls.Load())
			case tt.live && calls.Load() < 20:
				// Each record, plus the noise sample's second calls (GET is safe).
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

// -live sends unsafe methods to the monolith only with -allow-unsafe, and
// then with their bodies whole; offline, a record with no legacy answer is
// skipped and counted.
func TestCompareCommandUnsafeMethods(t *testing.T) {
	url, _, bodies := fakeMonolith(t, "go")
	capFile := writeCapture(t, 5, "", 3)
	run1 := func(extra ...string) string {
		var stdout, stderr bytes.Buffer
		args := append([]string{"compare", "-config", pingConfig(t, url), "-capture", capFile, "-route", "ping",
			"-out", filepath.Join(t.TempDir(), "r.html")}, extra...)
		if code := run(args, &stdout, &stderr); code == exitRunError || code == exitUsage {
			t.Fatalf("%q: exit %d\n%s%s", extra, code, stdout.String(), stderr.String())
		}
		return stdout.String()
	}
	if out := run1("-live"); !strings.Contains(out, "skipped unsafe_method: 3") || len(bodies()) != 0 {
		t.Fatalf("-live without -allow-unsafe: %s; the monolith saw %q", out, bodies())
	}
	run1("-live", "-allow-unsafe")
	got := bodies()
	if len(got) != 3 || !strings.HasPrefix(got[0], `POST {"n":`) || !strings.HasSuffix(got[0], strings.Repeat("x", 100)+`"}`) {
		t.Fatalf("the monolith saw %q, want 3 POSTs with their bodies whole", got)
	}
	if out := run1(); !strings.Contains(out, "skipped no_recorded_answer: 8") {
		t.Fatalf("offline without recorded answers: %s", out)
	}
}

func TestCompareCommandUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"compare"}, "-capture and -route are required"},
		{[]string{"compare", "-capture", "x", "-route", "r", "-concurrency", "0"}, "-concurrency must be at least 1"},
		{[]string{"compare", "-capture", "x", "-route", "r", "-allow-unsafe"}, "-legacy and -allow-unsafe go with -live"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		if code := run(tt.args, io.Discard, &stderr); code != exitUsage || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tt.args, code, stderr.String(), exitUsage, tt.want)
		}
	}
}
