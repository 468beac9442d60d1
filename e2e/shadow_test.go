package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/strangler-proxy/strangler/internal/monolith"
	"github.com/strangler-proxy/strangler/ported/kafka/kafkatest"
	"github.com/strangler-proxy/strangler/proxy/capture"
	"github.com/strangler-proxy/strangler/proxy/shadowreport"
)

const adminToken = "e2e-admin-token-0123456789"

// shadowReport reads /shadow.json.
func shadowReport(t *testing.T, p *proc) shadowreport.Report {
	t.Helper()
	resp, b := get(t, p.Admin+"/shadow.json")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /shadow.json: %d %s", resp.StatusCode, b)
	}
	var rep shadowreport.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("shadow.json: %v", err)
	}
	return rep
}

// routeReport waits until the route has compared want requests (or failed
// or skipped them, or holds them while a path learns) and returns its part
// of the report.
func routeReport(t *testing.T, p *proc, name string, want uint64) shadowreport.RouteReport {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, r := range shadowReport(t, p).Routes {
			k := r.Stats.Counts
			if r.Name == name && k.Compared+k.Pending+k.Errors+k.Skipped >= want {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("route %s never reached %d shadow outcomes: %+v", name, want, shadowReport(t, p).Routes)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lines returns the non-empty lines of a file ("" when it is missing).
func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// Shadowing the real PHP intake: PHP answers and forwards each event once,
// the Go candidate publishes nothing (its sink records), the two agree —
// answers and forwarded events — and where they do not (ping says which
// implementation it is) the report, the diff log and the admin API say so.
func TestShadowAgainstRealPHP(t *testing.T) {
	m := startMonolith(t)
	cmp := activeCampaign(t)
	dir := t.TempDir()
	diffLog := filepath.Join(dir, "diffs.jsonl")
	routes := fmt.Sprintf(`  - name: events
    methods: [POST]
    path: /api/v1/events
    mode: shadow
    handler: events.ingest
    shadow:
      # No ignore rule: event_id and received_at are learned from PHP's
      # own answers and lines.
      legacy_events_file: %q
  - {name: ping, methods: [GET], path: /api/v1/ping, mode: shadow, handler: ping}
`, m.EventsFile)
	p := start(t, config{Upstream: m.URL, Routes: routes,
		Extra: fmt.Sprintf("admin_token: %q\nshadow:\n  workers: 4\n  diff_log:\n    path: %q\n", adminToken, diffLog)})
	// Until the hot cache has loaded, the Go intake knows no campaign and
	// rejects (422 campaign_not_found) what PHP accepts: the shadow
	// reports exactly that when events arrive before readiness.
	waitReady(t, p)

	const n = 30
	c := client()
	var ids []string
	for i := range n {
		code, id, err := postEvent(c, p.URL, event(fmt.Sprintf("u_shadow%04d", i), cmp))
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("event %d: %d %v", i, code, err)
		}
		ids = append(ids, id)
	}
	for range 5 {
		if _, b := get(t, p.URL+"/api/v1/ping"); implementation(t, b) != "php" {
			t.Fatalf("ping answered by %s, want PHP (the primary)", b)
		}
	}

	ev := routeReport(t, p, "events", n)
	k := ev.Stats.Counts
	if k.Compared != n || k.Mismatch != 0 {
		t.Errorf("events: %+v, want %d compared and no mismatch; top diffs %+v", k, n, ev.Stats.TopDiffs)
	}
	classes := map[string]string{}
	for _, f := range ev.Stats.Profile {
		classes[f.Template] = f.Class
	}
	for path, want := range map[string]string{"body.event_id": "generated", "body.received_at": "clock", "published.event_id": "generated", "published.received_at": "clock"} {
		if classes[path] != want {
			t.Errorf("%s classified %q, want %s: %+v", path, classes[path], want, ev.Stats.Profile)
		}
	}
	if len(ev.Stats.Noise) != 0 {
		t.Errorf("legacy-twin noise learned for a POST: %+v", ev.Stats.Noise)
	}
	if se := ev.Stats.SideEffects; se.Compared != n || se.Uncompared != 0 {
		t.Errorf("side effects %+v, want all %d compared", se, n)
	}
	// PHP forwarded each event exactly once; the proxy's spool holds none.
	forwardedIDs := map[string]int{}
	for _, l := range lines(t, m.EventsFile) {
		forwardedIDs[decodeForwarded(t, []byte(l)).EventID]++
	}
	for _, id := range ids {
		if forwardedIDs[id] != 1 {
			t.Errorf("PHP forwarded event %s %d times", id, forwardedIDs[id])
		}
	}
	if len(forwardedIDs) != n {
		t.Errorf("PHP forwarded %d events for %d requests", len(forwardedIDs), n)
	}
	if spooled := strangleSpool(t, p.Config); len(spooled) != 0 {
		t.Errorf("the Go candidate published %d events", len(spooled))
	}

	ping := routeReport(t, p, "ping", 5)
	if ping.Stats.Counts.Mismatch != 5 || len(ping.Stats.TopDiffs) == 0 || ping.Stats.TopDiffs[0].Template != "body.implementation" {
		t.Errorf("ping: %+v %+v, want 5 mismatches at body.implementation", ping.Stats.Counts, ping.Stats.TopDiffs)
	}
	waitLines(t, diffLog, 5)
	pingLines := 0
	for _, l := range lines(t, diffLog) {
		if strings.Contains(l, `"route":"ping"`) && strings.Contains(l, `"path":"body.implementation"`) {
			pingLines++
		}
	}
	if pingLines != 5 {
		t.Errorf("diff log has %d ping lines at body.implementation, want 5:\n%s", pingLines, strings.Join(lines(t, diffLog), "\n"))
	}
	if !strings.Contains(p.logs.String(), `"msg":"shadow mismatch"`) {
		t.Error("no log line for a mismatch")
	}

	resp, page := get(t, p.Admin+"/shadow")
	if resp.StatusCode != http.StatusOK || !bytes.Contains(page, []byte(`id="route-events"`)) {
		t.Errorf("GET /shadow: %d, page without the events route", resp.StatusCode)
	}
	for _, tt := range []struct {
		auth string
		want int
	}{{"", http.StatusUnauthorized}, {"Bearer " + adminToken, http.StatusOK}} {
		req, _ := http.NewRequest(http.MethodPost, p.Admin+"/admin/routes/events/reenable", nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("re-enable with %q: %d, want %d", tt.auth, resp.StatusCode, tt.want)
		}
	}
}

func waitLines(t *testing.T, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for len(lines(t, path)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d lines, want %d", path, len(lines(t, path)), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var dateLine = regexp.MustCompile(`(?m)^Date: [^\r\n]*\r\n`)

// The client gets the same bytes from real Nginx + PHP whether or not the
// route is shadowed (Date aside, which Nginx stamps per second).
func TestShadowedAnswersAreByteIdenticalFromRealNginx(t *testing.T) {
	m := startMonolith(t)
	route := func(mode string) string {
		return fmt.Sprintf("  - {name: campaign, methods: [GET], path: \"/api/v1/campaigns/{id}\", mode: %s, handler: campaigns.get}\n", mode)
	}
	c := config{Upstream: m.URL, Routes: route("legacy")}
	p := start(t, c)
	requests := []string{
		"GET /api/v1/campaigns/cmp_000001 HTTP/1.1\r\nHost: shop.example\r\nX-Request-Id: e2e-fixed-1\r\nCookie: PHPSESSID=x\r\nConnection: close\r\n\r\n",
		"GET /api/v1/campaigns/cmp_999999 HTTP/1.1\r\nHost: shop.example\r\nX-Request-Id: e2e-fixed-2\r\nConnection: close\r\n\r\n",
	}
	var before []string
	for _, r := range requests {
		before = append(before, dateLine.ReplaceAllString(rawExchange(t, p.URL, r), ""))
	}
	c.Listen, c.Admin = strings.TrimPrefix(p.URL, "http://"), strings.TrimPrefix(p.Admin, "http://")
	c.SpoolDir = filepath.Join(p.Dir, "spool") // what start chose: static, must not change
	c.Routes = route("shadow")
	p.rewriteConfig(t, c.render())
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, b := get(t, p.Admin+"/routes")
		if bytes.Contains(b, []byte(`"mode": "shadow"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reload to shadow never applied: %s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i, r := range requests {
		if got := dateLine.ReplaceAllString(rawExchange(t, p.URL, r), ""); got != before[i] {
			t.Errorf("request %d changed by the shadow:\nbefore: %q\nafter:  %q", i, before[i], got)
		}
	}
	rr := routeReport(t, p, "campaign", uint64(len(requests)))
	if rr.Stats.Counts.Compared != uint64(len(requests)) || rr.Stats.Counts.Mismatch != 0 {
		t.Errorf("campaign: %+v %+v, want every request compared and matching", rr.Stats.Counts, rr.Stats.TopDiffs)
	}
}

// Routes captured in front of the real monolith, then compared offline by
// `strangler compare`: the Go handlers against the recorded PHP answers and
// forwarded events, with the monolith out of reach (nothing is sent to it).
// The capture is redacted — the session cookie gone, e-mail addresses
// masked — and the comparison redacts the Go side alike. The exit code is
// the verdict.
func TestCaptureThenCompare(t *testing.T) {
	m := startMonolith(t)
	cmp := activeCampaign(t)
	capFile := filepath.Join(t.TempDir(), "capture.jsonl")
	p := start(t, config{Upstream: m.URL, Routes: fmt.Sprintf(
		"  - {name: ping, methods: [GET], path: /api/v1/ping, mode: legacy, handler: ping, capture: {percent: 100, file: %q}}\n"+
			"  - {name: campaign, methods: [GET], path: \"/api/v1/campaigns/{id}\", mode: legacy, handler: campaigns.get, capture: {percent: 100, file: %q}}\n"+
			"  - {name: events, methods: [POST], path: /api/v1/events, mode: legacy, handler: events.ingest, capture: {percent: 100, file: %q}, shadow: {legacy_events_file: %q}}\n",
		capFile, capFile, capFile, m.EventsFile)})
	waitReady(t, p)
	const n = 30
	c := client()
	for i := range n {
		get(t, p.URL+"/api/v1/ping", "Cookie", "PHPSESSID=secret-session")
		get(t, p.URL+fmt.Sprintf("/api/v1/campaigns/cmp_%06d", i+1))
		ev := fmt.Appendf(nil, `{"type":"page_view","user_id":"u_capture%04d","occurred_at":%q,"country":%q,"campaign_id":%q,"email":" Alice.Smith+%d@Example.COM "}`,
			i, time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), cmp.Countries[0], cmp.ID, i)
		if code, _, err := postEvent(c, p.URL, ev); err != nil || code != http.StatusAccepted {
			t.Fatalf("event %d: %d %v", i, code, err)
		}
	}
	waitLines(t, capFile, 3*n)
	b, _ := os.ReadFile(capFile)
	for _, secret := range []string{"secret-session", "Alice.Smith", "Example.COM"} {
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("the capture holds %q", secret)
		}
	}
	if !bytes.Contains(b, []byte(`"published":{`)) || !bytes.Contains(b, []byte(`"email_sha256":"[redacted]"`)) {
		t.Error("the capture lacks the events PHP forwarded, redacted")
	}
	// Offline: the monolith's address is of no use.
	cfg, err := os.ReadFile(p.Config)
	if err != nil {
		t.Fatal(err)
	}
	offline := filepath.Join(t.TempDir(), "offline.yaml")
	if err := os.WriteFile(offline, bytes.ReplaceAll(cfg, []byte(m.URL), []byte("http://127.0.0.1:9")), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		route    string
		args     []string
		wantExit int
		want     []string
	}{
		{"ping", nil, 1, []string{"body.implementation: 30 mismatches"}},
		{"campaign", nil, 0, []string{"30 compared: 30 match", "verdict: ready to flip"}},
		{"events", nil, 0, []string{"30 compared", "0 mismatch", "verdict: ready to flip"}},
		{"campaign", []string{"-live", "-legacy", m.URL}, 0, []string{"replayed against the monolith", "verdict: ready to flip"}},
		{"events", []string{"-live", "-legacy", m.URL}, 1, []string{"skipped unsafe_method: 30"}},
	}
	for _, tt := range tests {
		t.Run(tt.route+strings.Join(tt.args, ""), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "report.html")
			args := append([]string{"compare", "-config", offline, "-capture", capFile, "-route", tt.route,
				"-out", out, "-target-mismatch-rate", "0.1"}, tt.args...) // 3/0.1 = 30 comparisons
			cmd := exec.Command(binary, args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			ok := code == tt.wantExit
			for _, w := range tt.want {
				ok = ok && strings.Contains(stdout.String(), w)
			}
			if !ok {
				t.Errorf("exit %d, want %d with %q; stdout:\n%s\nstderr:\n%s", code, tt.wantExit, tt.want, stdout.String(), stderr.String())
			}
			if !strings.Contains(lastLine(stderr.String()), "30/30 100%") {
				t.Errorf("progress bar: %q", stderr.String())
			}
			if _, err := os.Stat(out); err != nil {
				t.Errorf("no report: %v", err)
			}
		})
	}
}

func lastLine(s string) string {
	sc := bufio.NewScanner(strings.NewReader(strings.ReplaceAll(s, "\r", "\n")))
	last := ""
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			last = sc.Text()
		}
	}
	return last
}

// TestShadowDiffEventsToKafka: with shadow.diff_topic the real binary
// publishes each mismatch as a JSON event keyed by route to that topic on
// a Kafka-protocol broker over TCP — here the ping route, whose Go twin
// differs from PHP in exactly one field.
func TestShadowDiffEventsToKafka(t *testing.T) {
	const diffTopic = "shadow.diffs.v1"
	k := kafkatest.Start(t, kafkatest.Options{Topic: diffTopic})
	m := startMonolith(t)
	p := start(t, config{Upstream: m.URL, Brokers: []string{k.Addr}, Routes: pingRoutes("shadow"),
		Extra: "shadow:\n  diff_topic: " + diffTopic + "\n"})
	waitReady(t, p)
	const n = 40 // past the noise learner's warm-up of 20
	for range n {
		if _, b := get(t, p.URL+"/api/v1/ping"); implementation(t, b) != "php" {
			t.Fatalf("ping answered by %s, want PHP (the primary)", b)
		}
	}
	r := routeReport(t, p, "ping", n)
	if r.Stats.Counts.Mismatch == 0 {
		t.Fatalf("no mismatch reported: %+v", r.Stats.Counts)
	}
	recs := k.Consume(1, time.Second, 30*time.Second)
	for _, rec := range recs {
		var e struct {
			Route, Outcome, Method, URI string
			Diffs                       []struct{ Path, Primary, Candidate string }
		}
		if err := json.Unmarshal(rec.Value, &e); err != nil {
			t.Fatalf("diff event %s: %v", rec.Value, err)
		}
		if string(rec.Key) != "ping" || e.Route != "ping" || e.Outcome != "mismatch" || e.Method != "GET" || e.URI != "/api/v1/ping" {
			t.Fatalf("diff event %s (key %q)", rec.Value, rec.Key)
		}
		if len(e.Diffs) != 1 || e.Diffs[0].Path != "body.implementation" || e.Diffs[0].Primary != `"php"` || e.Diffs[0].Candidate != `"go"` {
			t.Fatalf("diff event %s: want the one known difference", rec.Value)
		}
	}
	if uint64(len(recs)) != r.Stats.Counts.Mismatch {
		t.Errorf("%d diff events for %d mismatches", len(recs), r.Stats.Counts.Mismatch)
	}
}

// The legacy side's events reach Kafka through the monolith's shipper (a
// log shipper in production); the shadow reads them from that topic with
// a consumer group of its own and compares each with what the Go
// candidate would have published. The route's capture records each
// event from the topic too, so that `strangler compare` offline compares
// the Go side's would-be events with them and says "ready".
func TestShadowSideEffectsFromTheTopic(t *testing.T) {
	k := kafkatest.Start(t, kafkatest.Options{Topic: "events.legacy", Extra: []kfake.Opt{kfake.SeedTopics(3, topic)}})
	m := startMonolith(t)
	sh, err := monolith.NewShipper(m.EventsFile, []string{k.Addr}, "events.legacy")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	shipped := make(chan error, 1)
	go func() { shipped <- sh.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-shipped; err != nil {
			t.Error(err)
		}
	}()
	capFile := filepath.Join(t.TempDir(), "capture.jsonl")
	p := start(t, config{Upstream: m.URL, Brokers: []string{k.Addr}, Routes: fmt.Sprintf(`  - name: events
    methods: [POST]
    path: /api/v1/events
    mode: shadow
    handler: events.ingest
    shadow: {legacy_events_topic: {topic: events.legacy, group: strangler-e2e, wait: 10s}}
    capture: {percent: 100, file: %q}
`, capFile)})
	waitReady(t, p)
	cmp := activeCampaign(t)
	c := client()
	post := func(i int) {
		if code, _, err := postEvent(c, p.URL, event(fmt.Sprintf("u_topic%04d", i), cmp)); err != nil || code != http.StatusAccepted {
			t.Fatalf("event %d: %d %v", i, code, err)
		}
	}
	// Until the group has joined, comparisons say their side effects were
	// not compared; then every one is.
	i := 0
	deadline := time.Now().Add(30 * time.Second)
	for {
		post(i)
		i++
		ev := routeReport(t, p, "events", uint64(i))
		if ev.Stats.SideEffects.Compared > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no side effect compared from the topic: %+v", ev.Stats.SideEffects)
		}
		time.Sleep(200 * time.Millisecond)
	}
	before := routeReport(t, p, "events", uint64(i)).Stats
	const n = 25
	for range n {
		post(i)
		i++
	}
	ev := routeReport(t, p, "events", uint64(i))
	deadline = time.Now().Add(30 * time.Second)
	for ev.Stats.Counts.Compared+ev.Stats.Counts.Pending < uint64(i) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		ev = routeReport(t, p, "events", uint64(i))
	}
	se := ev.Stats.SideEffects
	if se.Compared-before.SideEffects.Compared != n || se.Uncompared != before.SideEffects.Uncompared || ev.Stats.Counts.Mismatch != 0 {
		t.Fatalf("side effects %+v (before %+v), counts %+v, diffs %+v: want the last %d compared, no mismatch",
			se, before.SideEffects, ev.Stats.Counts, ev.Stats.TopDiffs, n)
	}

	// Every record is written once its event came from the topic, or the
	// wait ended (a request answered before the group joined): then it
	// says the event is unknown.
	waitLines(t, capFile, i)
	withEvent, unknown := 0, 0
	for _, l := range lines(t, capFile) {
		var rec capture.Record
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatal(err)
		}
		switch {
		case rec.PublishedUnknown:
			unknown++
		case bytes.Contains(rec.Published, []byte(`"email_sha256":`)):
			withEvent++
		}
	}
	if withEvent < n || withEvent+unknown != i {
		t.Fatalf("%d records with the event from the topic, %d unknown, of %d: want at least the last %d with theirs", withEvent, unknown, i, n)
	}
	out := filepath.Join(t.TempDir(), "report.html")
	cmd := exec.Command(binary, "compare", "-config", p.Config, "-capture", capFile, "-route", "events", "-out", out,
		"-target-mismatch-rate", fmt.Sprint(3.0/float64(withEvent)))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || !strings.Contains(stdout.String(), "verdict: ready to flip") ||
		(unknown > 0 && !strings.Contains(stdout.String(), fmt.Sprintf("skipped published_unknown: %d", unknown))) {
		t.Fatalf("compare: %v\n%s%s", err, stdout.String(), stderr.String())
	}
}
