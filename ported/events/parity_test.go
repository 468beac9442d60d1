package events

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/internal/monolith"
	"github.com/strangler-proxy/strangler/internal/monolith/monolithtest"
	"github.com/strangler-proxy/strangler/ported/campaign"
	"github.com/strangler-proxy/strangler/ported/spool"
)

// TestParityWithPHP sends the whole corpus to the PHP intake behind real
// Nginx + PHP-FPM and to this handler served by fasthttp on loopback, both
// on the same fixed clock and campaign file, and requires byte-identical
// answers and forwarded events, event_id values aside.
func TestParityWithPHP(t *testing.T) {
	campaignsFile := filepath.Join(repoRoot(t), "examples", "monolith", "data", "campaigns.json")
	set, err := FileCampaigns(campaignsFile)
	if err != nil {
		t.Fatalf("shipped campaign data: %v", err)
	}
	php := monolithtest.Start(t, monolith.Options{
		Workers: 2,
		Env:     map[string]string{"STRANGLER_FIXED_NOW": fixedNowText, "STRANGLER_CAMPAIGNS_FILE": campaignsFile},
	})
	sink := &recordingSink{}
	h, err := New(Options{Campaigns: set, Sink: sink, Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	goURL := serveLoopback(t, h)

	corpus := parityCorpus(set)
	if len(corpus) < 300 {
		t.Fatalf("corpus has %d requests, want >= 300", len(corpus))
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 2, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}

	var phpIDs, goIDs []string // event_id of each 202, in order
	statuses := map[int]int{}
	mismatches := 0
	for _, rq := range corpus {
		pr := send(t, client, php.URL, rq)
		gr := send(t, client, goURL, rq)
		statuses[pr.status]++
		if pr.status == http.StatusAccepted {
			phpIDs = append(phpIDs, acceptedID(t, "php "+rq.name, pr.body))
		}
		if gr.status == http.StatusAccepted {
			goIDs = append(goIDs, acceptedID(t, "go "+rq.name, gr.body))
		}
		if diff := pr.diff(gr); diff != "" {
			mismatches++
			if mismatches <= 25 {
				t.Errorf("%s: %s\nrequest: %.300q\nphp: %d %s\ngo:  %d %s", rq.name, diff, rq.body, pr.status, pr.body, gr.status, gr.body)
			}
		}
	}
	if mismatches > 0 {
		t.Errorf("%d of %d requests answered differently", mismatches, len(corpus))
	}
	t.Logf("%d requests, PHP statuses %v", len(corpus), statuses)
	for _, s := range []int{202, 400, 413, 415, 422} {
		if statuses[s] == 0 {
			t.Errorf("corpus produced no %d", s)
		}
	}

	// Forwarded events: PHP's JSONL file against what the sink recorded.
	lines := readLines(t, php.EventsFile)
	msgs := sink.messages()
	if len(lines) != len(phpIDs) || len(msgs) != len(goIDs) {
		t.Fatalf("forwarded %d PHP lines for %d PHP 202s, %d Go messages for %d Go 202s", len(lines), len(phpIDs), len(msgs), len(goIDs))
	}
	if len(lines) != len(msgs) {
		t.Fatalf("PHP forwarded %d events, Go %d", len(lines), len(msgs))
	}
	for i := range lines {
		if got := eventIDOf(lines[i]); got != phpIDs[i] {
			t.Errorf("PHP event %d: forwarded event_id %s, answered %s", i, got, phpIDs[i])
		}
		if got := eventIDOf(msgs[i].Value); got != goIDs[i] || msgs[i].EventID != goIDs[i] {
			t.Errorf("Go event %d: forwarded event_id %s, message %s, answered %s", i, got, msgs[i].EventID, goIDs[i])
		}
		if want := []byte(`"user_id":"` + string(msgs[i].Key) + `"`); !bytes.Contains(msgs[i].Value, want) {
			t.Errorf("Go event %d: key %q is not its user_id", i, msgs[i].Key)
		}
		if p, g := maskIDs(lines[i]), maskIDs(msgs[i].Value); !bytes.Equal(p, g) {
			t.Errorf("forwarded event %d differs\nphp: %s\ngo:  %s", i, p, g)
		}
	}
	t.Logf("%d forwarded events compared", len(lines))
}

type answer struct {
	status      int
	contentType string
	retryAfter  string
	body        []byte
}

// diff describes how b differs from a, ignoring event_id values.
func (a answer) diff(b answer) string {
	switch {
	case a.status != b.status:
		return fmt.Sprintf("status %d != %d", a.status, b.status)
	case a.contentType != b.contentType:
		return fmt.Sprintf("Content-Type %q != %q", a.contentType, b.contentType)
	case a.retryAfter != b.retryAfter:
		return fmt.Sprintf("Retry-After %q != %q", a.retryAfter, b.retryAfter)
	case !bytes.Equal(maskIDs(a.body), maskIDs(b.body)):
		return "body differs"
	}
	return ""
}

var eventIDRe = regexp.MustCompile(`"event_id":"([^"]*)"`)

var uuidV4Re = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func maskIDs(b []byte) []byte { return eventIDRe.ReplaceAll(b, []byte(`"event_id":"…"`)) }

func eventIDOf(b []byte) string {
	m := eventIDRe.FindSubmatch(b)
	if m == nil {
		return ""
	}
	return string(m[1])
}

func acceptedID(t *testing.T, name string, body []byte) string {
	t.Helper()
	id := eventIDOf(body)
	if !uuidV4Re.MatchString(id) {
		t.Errorf("%s: event_id %q is not a UUID v4", name, id)
	}
	return id
}

func send(t *testing.T, c *http.Client, base string, rq request) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/events", bytes.NewReader(rq.body))
	if err != nil {
		t.Fatal(err)
	}
	if !rq.noCT {
		req.Header["Content-Type"] = []string{rq.contentType}
	}
	if rq.requestID != "" {
		req.Header.Set("X-Request-Id", rq.requestID)
	}
	if rq.idemKey != "" {
		req.Header["Idempotency-Key"] = []string{rq.idemKey}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s: POST %s: %v", rq.name, base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: read %s: %v", rq.name, base, err)
	}
	return answer{resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Retry-After"), body}
}

// serveLoopback serves h over fasthttp on 127.0.0.1 until the test ends.
func serveLoopback(t *testing.T, h *Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			if err := h.Serve(ctx); err != nil {
				ctx.Error(err.Error(), fasthttp.StatusInternalServerError)
			}
		},
		ReadTimeout:        10 * time.Second,
		WriteTimeout:       10 * time.Second,
		MaxRequestBodySize: 4 << 20,
		StreamRequestBody:  true, // as the front door (proxy) serves it
		// The worker pool's cleaner sleeps this long between checks, so
		// Shutdown leaves it running up to this long (goleak waits less).
		MaxIdleWorkerDuration: 50 * time.Millisecond,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := srv.Shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		out = append(out, append([]byte(nil), sc.Bytes()...))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir || strings.HasSuffix(parent, string(filepath.Separator)) && parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// notLoaded is a campaign lookup before its first load, retrying in 5s.
type notLoaded struct{}

func (notLoaded) Campaign(string) (*campaign.Campaign, bool) { return nil, false }
func (notLoaded) Loaded() bool                               { return false }
func (notLoaded) RetryAfter() time.Duration                  { return 5 * time.Second }

// With no campaign data (PHP: the file cannot be read; Go: the hot cache
// never loaded) both sides answer an event that names a campaign with the
// same 503 and Retry-After, never campaign_not_found, whatever else it
// breaks; an event that names none is still accepted.
func TestParityWithoutCampaignData(t *testing.T) {
	php := monolithtest.Start(t, monolith.Options{
		Env: map[string]string{"STRANGLER_FIXED_NOW": fixedNowText,
			"STRANGLER_CAMPAIGNS_FILE": filepath.Join(t.TempDir(), "missing.json")},
	})
	h, err := New(Options{Campaigns: notLoaded{}, Sink: &recordingSink{}, Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	goURL := serveLoopback(t, h)
	client := &http.Client{Timeout: 20 * time.Second}
	tests := []struct {
		name   string
		body   doc
		status int
	}{
		{"names a campaign", pageView().set("campaign_id", `"cmp_000001"`), 503},
		{"names a campaign and breaks other rules", pageView().set("campaign_id", `"cmp_000001"`).set("country", `"XX"`), 503},
		{"a malformed campaign id needs no data", pageView().set("campaign_id", `"nope"`), 422},
		{"names none", pageView(), 202},
	}
	for _, tt := range tests {
		rq := request{name: tt.name, contentType: "application/json", body: tt.body.bytes(), requestID: "req-9"}
		pr, gr := send(t, client, php.URL, rq), send(t, client, goURL, rq)
		if pr.status != tt.status {
			t.Errorf("%s: PHP answered %d %s, want %d", tt.name, pr.status, pr.body, tt.status)
		}
		if d := pr.diff(gr); d != "" {
			t.Errorf("%s: %s\nphp: %d %s %q\ngo:  %d %s %q", tt.name, d, pr.status, pr.retryAfter, pr.body, gr.status, gr.retryAfter, gr.body)
		}
		if tt.status == 503 && (gr.retryAfter != "5" ||
			string(gr.body) != `{"error":"unavailable","message":"campaign data unavailable, retry later","request_id":"req-9"}`) {
			t.Errorf("%s: Go answered %d Retry-After %q %s", tt.name, gr.status, gr.retryAfter, gr.body)
		}
	}
}

// Idempotency-Key on both sides: the same sequence of keyed requests gets
// the same answers (event ids aside), a retry repeats its own side's first
// 202 byte for byte, and each side stores one event per accepted key.
func TestParityIdempotencyKey(t *testing.T) {
	campaignsFile := filepath.Join(repoRoot(t), "examples", "monolith", "data", "campaigns.json")
	set, err := FileCampaigns(campaignsFile)
	if err != nil {
		t.Fatal(err)
	}
	eventsFile := filepath.Join(t.TempDir(), "events.jsonl")
	php := monolithtest.Start(t, monolith.Options{
		Env: map[string]string{"STRANGLER_FIXED_NOW": fixedNowText, "STRANGLER_CAMPAIGNS_FILE": campaignsFile,
			"STRANGLER_EVENTS_FILE": eventsFile, "STRANGLER_IDEMPOTENCY_DIR": t.TempDir()},
	})
	now := func() time.Time { return fixedNow }
	sp, err := spool.Open(spool.Config{Dir: t.TempDir()}, zap.NewNop(), nil, spool.WithNow(now))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sp.Close(context.Background()) }()
	sink := &countingSink{Spool: sp}
	h, err := New(Options{Campaigns: set, Sink: sink, Keys: sp, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	goURL := serveLoopback(t, h)
	client := &http.Client{Timeout: 20 * time.Second}

	a, b := pageView().String(), pageView().set("country", `"FR"`).String()
	seq := []struct {
		key, body string
		status    int
		replayOf  int // index of the request whose answer this repeats, or -1
	}{
		{`"order-1"`, a, 202, -1},
		{`"order-1"`, a, 202, 0},
		{`order-1`, a, 202, 0}, // the same key, bare
		{`"order-1"`, b, 422, -1},
		{`"order-2"`, `{"type":"x"}`, 422, -1},
		{`"order-2"`, b, 202, -1}, // the rejected request kept nothing
		{`"order-2"`, b, 202, 5},
		{`"a\"b"`, a, 202, -1},
		{`a"b`, a, 400, -1},
		{`""`, a, 400, -1},
		{strings.Repeat("k", 256), a, 400, -1},
	}
	var phpAns, goAns []answer
	for i, r := range seq {
		rq := request{name: fmt.Sprint("keyed ", i), contentType: "application/json", body: []byte(r.body), idemKey: r.key}
		pr, gr := send(t, client, php.URL, rq), send(t, client, goURL, rq)
		phpAns, goAns = append(phpAns, pr), append(goAns, gr)
		if pr.status != r.status {
			t.Errorf("request %d (%s): PHP %d %s, want %d", i, r.key, pr.status, pr.body, r.status)
		}
		if d := pr.diff(gr); d != "" {
			t.Errorf("request %d (%s): %s\nphp: %d %s\ngo:  %d %s", i, r.key, d, pr.status, pr.body, gr.status, gr.body)
		}
		if r.replayOf >= 0 {
			if !bytes.Equal(pr.body, phpAns[r.replayOf].body) || !bytes.Equal(gr.body, goAns[r.replayOf].body) {
				t.Errorf("request %d: a retry's answer differs from the first (php %s / %s, go %s / %s)",
					i, pr.body, phpAns[r.replayOf].body, gr.body, goAns[r.replayOf].body)
			}
		}
	}
	if n := len(readLines(t, eventsFile)); n != 3 || sink.n != 3 {
		t.Errorf("stored %d events in PHP and %d in Go for three accepted keys", n, sink.n)
	}
}
