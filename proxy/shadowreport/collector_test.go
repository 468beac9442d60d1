package shadowreport

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/routes"
)

const campaign = `{"id":"cmp_000042","status":"active","amount":29.70,"items":[{"sku":"a","qty":1},{"sku":"b","qty":2}]}`

func TestCollectorOutcomesMetricsAndLog(t *testing.T) {
	clk := newClock()
	core, logs := observer.New(zap.InfoLevel)
	s, reg := newStats(t, clk, func(o *Options) { o.Logger = zap.New(core) })
	c := s.Route("campaign")
	cmp := compare.MustCompile(compare.Rules{})
	p := jsonResponse(200, campaign, "Cache-Control", "max-age=60")

	want := map[compare.Outcome]int{}
	for i := range 40 {
		q := p
		if i%10 == 0 {
			q = jsonResponse(200, strings.Replace(campaign, "29.70", "29.7", 1), "Cache-Control", "max-age=60") // spelled otherwise
		}
		if i%20 == 5 {
			q = jsonResponse(200, strings.Replace(campaign, `"active"`, `"paused"`, 1), "Cache-Control", "max-age=60")
		}
		want[compareOnce(c, cmp, p, q)]++
	}
	c.Errored(Request{ID: "r"}, routes.SidePorted, errors.New("timeout"))
	c.Skipped("pool_full")
	c.Skipped("pool_full")
	want[compare.OutcomeError], want[compare.OutcomeSkipped] = 1, 2

	if want[compare.OutcomeMismatch] != 6 || want[compare.OutcomeMatch] != 34 {
		t.Fatalf("outcomes %v, want 34 match and 6 mismatch (4 number spellings, 2 statuses)", want)
	}
	for o, n := range want {
		if got := counterValue(t, reg, "strangler_shadow_comparisons_total", map[string]string{"route": "campaign", "outcome": string(o)}); got != float64(n) {
			t.Errorf("strangler_shadow_comparisons_total{outcome=%q} = %v, want %d", o, got, n)
		}
	}
	snap := c.Snapshot()
	wantCounts := Counts{Compared: 40, Match: 34, Mismatch: 6, Errors: 1, Skipped: 2}
	if snap.Counts != wantCounts || snap.SkipReasons["pool_full"] != 2 {
		t.Fatalf("counts %+v %v, want %+v", snap.Counts, snap.SkipReasons, wantCounts)
	}
	if snap.MatchRate != 34.0/40 {
		t.Fatalf("match rate %v", snap.MatchRate)
	}
	if last := snap.Timeline[len(snap.Timeline)-1]; last.Compared != 40 || last.Matched != 34 {
		t.Fatalf("current minute %+v", last)
	}
	// One log line per mismatch, naming the route and the path; the URI's
	// token is redacted.
	lines := logs.FilterMessage("shadow mismatch").All()
	if len(lines) != 6 {
		t.Fatalf("%d mismatch log lines, want 6", len(lines))
	}
	f := lines[1].ContextMap() // i = 5
	if f["route"] != "campaign" || fmt.Sprint(f["paths"]) != "[body.status]" || fmt.Sprint(f["kinds"]) != "[value]" || strings.Contains(fmt.Sprint(f["uri"]), "abc") {
		t.Fatalf("log fields %v", f)
	}
	if f := lines[0].ContextMap(); fmt.Sprint(f["paths"]) != "[body.amount]" || f["kind"] != "format" {
		t.Fatalf("log fields %v", f)
	}
	if len(snap.TopDiffs) != 2 || snap.TopDiffs[0].Template != "body.amount" || snap.TopDiffs[0].Count != 4 ||
		snap.TopDiffs[1].Template != "body.status" || snap.TopDiffs[1].Count != 2 {
		t.Fatalf("top diffs %+v", snap.TopDiffs)
	}
	// Retain drops removed routes and their series.
	s.Retain([]string{"other"})
	if s.Lookup("campaign") != nil || countSeries(t, reg, "strangler_shadow_comparisons_total") != 0 {
		t.Fatal("Retain kept the removed route")
	}
}

// The cases, through the collector: identical noisy
// implementations report nothing; each injected fault is grouped at its
// path.
func TestCollectorNoiseAndFaults(t *testing.T) {
	answer := func(fault func(string) string) compare.Response {
		body := fmt.Sprintf(`{"status":"accepted","event_id":%q,"received_at":%q,"amount":19.99,"items":[1,2,3]}`,
			rand.Text(), time.Now().Format(time.RFC3339Nano))
		if fault != nil {
			body = fault(body)
		}
		return jsonResponse(202, body, "Cache-Control", "no-store")
	}
	tests := []struct {
		name  string
		fault func(string) string
		want  string // template of the group, "" for none
	}{
		{"identical", nil, ""},
		{"changed rule", func(b string) string { return strings.Replace(b, "accepted", "rejected", 1) }, "body.status"},
		{"rounding", func(b string) string { return strings.Replace(b, "19.99", "20", 1) }, "body.amount"},
		{"reordered", func(b string) string { return strings.Replace(b, "[1,2,3]", "[3,2,1]", 1) }, "body.items"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStats(t, newClock(), nil)
			c := s.Route("events")
			cmp := compare.MustCompile(compare.Rules{})
			for range 200 {
				p := answer(nil)
				var self *compare.Result
				if c.Noise().Sample() {
					r := cmp.Diff(p, answer(nil))
					c.LearnNoise(r)
					self = &r
				}
				q := answer(tt.fault)
				c.Compared(Comparison{PrimarySide: routes.SideLegacy, Primary: p, Candidate: q, Result: cmp.Diff(p, q), Self: self})
			}
			snap := c.Snapshot()
			var noise []string
			for _, f := range snap.Noise {
				if f.Noise {
					noise = append(noise, f.Template)
				}
			}
			if fmt.Sprint(noise) != "[body.event_id body.received_at]" {
				t.Fatalf("noise fields %v", noise)
			}
			if tt.want == "" {
				if snap.Counts.Mismatch != 0 || len(snap.TopDiffs) != 0 || snap.Counts.NoiseOnly != 200 {
					t.Fatalf("identical noisy implementations: %+v, groups %+v", snap.Counts, snap.TopDiffs)
				}
				return
			}
			if snap.Counts.Mismatch != 200 || len(snap.TopDiffs) != 1 || snap.TopDiffs[0].Template != tt.want {
				t.Fatalf("counts %+v, groups %+v, want all mismatches at %s", snap.Counts, snap.TopDiffs, tt.want)
			}
		})
	}
}

func TestStoreBoundsAndRedaction(t *testing.T) {
	s, _ := newStats(t, newClock(), func(o *Options) { o.Store = StoreConfig{Groups: 4, Examples: 2, MaxBody: 200} })
	c := s.Route("users")
	cmp := compare.MustCompile(compare.Rules{Headers: []string{"Set-Cookie"}})
	secretBody := `{"email":"alice@example.com","password":"hunter2","card":"4111111111111111","f%d":1,"pad":"` + strings.Repeat("x", 400) + `"}`
	// Fields f0 and f1 differ often, f2..f21 once each, interleaved: the
	// two frequent ones hold more than 1/4 of all mismatches each, so a
	// 4-group store must keep them, with counts within their error bound.
	var order []int
	for round := range 20 {
		order = append(order, 0, 0, 1, 1, round+2)
	}
	truth := map[string]uint64{}
	for _, k := range order {
		truth[fmt.Sprintf("body.f%d", k)]++
		p := jsonResponse(200, fmt.Sprintf(secretBody, k), "Set-Cookie", "PHPSESSID=s3cr3t; Path=/")
		q := jsonResponse(200, strings.Replace(fmt.Sprintf(secretBody, k), `1,"pad"`, `2,"pad"`, 1), "Set-Cookie", "PHPSESSID=0th3r; Path=/")
		if o := compareOnce(c, cmp, p, q); o != compare.OutcomeMismatch {
			t.Fatalf("outcome %s", o)
		}
	}
	snap := c.Snapshot()
	if len(snap.TopDiffs) != 4 {
		t.Fatalf("%d groups kept, want 4", len(snap.TopDiffs))
	}
	for i, g := range snap.TopDiffs[:2] {
		want := fmt.Sprintf("body.f%d", i)
		if g.Template != want || g.Count < truth[want] || g.Count > truth[want]+g.Error {
			t.Errorf("group %d = %s ×%d (±%d), want %s ×%d", i, g.Template, g.Count, g.Error, want, truth[want])
		}
	}
	for i, g := range snap.TopDiffs {
		// The frequent groups hold the 2 newest examples; a rare path
		// seen once since it entered holds its one.
		if want := 2; i >= 2 {
			want = 1
		} else if len(g.Examples) != want {
			t.Errorf("group %s keeps %d examples, want %d", g.Template, len(g.Examples), want)
		}
		for _, ex := range g.Examples {
			all := fmt.Sprint(ex.Primary, ex.Candidate, ex.Diffs, ex.URI)
			for _, secret := range []string{"alice@example.com", "hunter2", "4111111111111111", "s3cr3t", "0th3r", "token=abc"} {
				if strings.Contains(all, secret) {
					t.Errorf("example shows secret %q", secret)
				}
			}
			if len(ex.Primary.Body) > 300 {
				t.Errorf("example body is %d bytes, want it cut near 200", len(ex.Primary.Body))
			}
		}
	}
	if snap.EvictedGroups != 18 { // 22 paths, 4 places
		t.Errorf("evicted %d groups, want 18", snap.EvictedGroups)
	}
}

func TestLatencyQuantiles(t *testing.T) {
	s, _ := newStats(t, newClock(), nil)
	c := s.Route("campaign")
	for i := 1; i <= 1000; i++ {
		c.Served(routes.SideLegacy, time.Duration(i)*time.Millisecond, i%100 == 0)
		c.Timed(routes.SideLegacy, time.Duration(i)*time.Millisecond)
		c.Called(routes.SidePorted, time.Duration(i)*100*time.Microsecond, false)
	}
	l := c.Snapshot().Latency
	if l.Measure != MeasureCalls {
		t.Errorf("measure %q, want calls: both sides have timed calls", l.Measure)
	}
	within := func(got, want time.Duration) bool {
		return math.Abs(float64(got-want))/float64(want) <= 0.06
	}
	if !within(l.Legacy.P50, 500*time.Millisecond) || !within(l.Legacy.P99, 990*time.Millisecond) {
		t.Errorf("legacy p50 %v p99 %v, want about 500ms and 990ms", l.Legacy.P50, l.Legacy.P99)
	}
	if !within(l.Ported.P50, 50*time.Millisecond) || !within(l.Ported.P99, 99*time.Millisecond) {
		t.Errorf("Go p50 %v p99 %v, want about 50ms and 99ms", l.Ported.P50, l.Ported.P99)
	}
	if l.Legacy.Served != 1000 || l.Ported.Served != 0 || l.Ported.Calls != 1000 || l.Legacy.Errors != 10 || l.Legacy.ErrorRate != 0.01 {
		t.Errorf("side stats %+v", l)
	}
}

func TestCollectorConcurrent(t *testing.T) {
	s, _ := newStats(t, newClock(), nil)
	cmp := compare.MustCompile(compare.Rules{})
	p := jsonResponse(200, campaign)
	q := jsonResponse(200, strings.Replace(campaign, "active", "paused", 1))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			c := s.Route(fmt.Sprintf("r%d", g%2))
			for i := range 300 {
				c.Served(routes.SidePorted, time.Millisecond, false)
				if i%3 == 0 {
					compareOnce(c, cmp, p, q)
				} else {
					compareOnce(c, cmp, p, p)
				}
				s.Unmatched([]byte("GET"), fmt.Appendf(nil, "/users/%d", i))
				if i%100 == 0 {
					_ = c.Snapshot()
					_, _ = c.Breached(Budgets{MaxMismatchRate: 0.5})
				}
			}
		})
	}
	wg.Wait()
	for _, r := range []string{"r0", "r1"} {
		if n := s.Lookup(r).Snapshot().Counts; n.Compared != 1200 || n.Mismatch != 400 {
			t.Errorf("%s counts %+v", r, n)
		}
	}
	if top, total := s.UnmatchedTop(5); total != 2400 || len(top) != 1 || top[0].Template != "GET /users/{id}" || top[0].Count != 2400 {
		t.Errorf("unmatched %v %d", top, total)
	}
}

// The shadow engine hands Compared views into buffers it reuses for the
// next request: whatever the collector keeps must be its own copy.
func TestCollectorCopiesWhatItKeeps(t *testing.T) {
	var buf bytes.Buffer
	d := NewDiffLogWriter(&buf, 0, nil)
	s, _ := newStats(t, newClock(), func(o *Options) { o.DiffLog = d })
	c := s.Route("campaign")
	cmp := compare.MustCompile(compare.Rules{})

	scratch := []byte("req-7GET/api/v1/campaigns/cmp_000042X-Upstreamphp-aCache-Controlno-store")
	at := func(from, to int) string { return unsafe.String(&scratch[from], to-from) }
	req := Request{ID: at(0, 5), Method: at(5, 8), URI: at(8, 36)}
	// The legacy side sends a Cache-Control the Go side does not: the
	// difference renders the value as read, from the buffer.
	p := jsonResponse(200, campaign, at(36, 46), at(46, 51), at(51, 64), at(64, 72))
	q := jsonResponse(200, strings.Replace(campaign, `"active"`, `"paused"`, 1), at(36, 46), at(46, 51))
	res := cmp.Diff(p, q)
	if o := c.Compared(Comparison{Request: req, PrimarySide: routes.SideLegacy, Primary: p, Candidate: q, Result: res}); o != compare.OutcomeMismatch {
		t.Fatalf("outcome %s, want mismatch", o)
	}
	c.Errored(req, routes.SidePorted, errors.New("timeout"))
	// What a source whose messages arrive later keeps until they do, and
	// what the collector holds while a path learns.
	later := Comparison{Request: req, PrimarySide: routes.SideLegacy, Primary: p, Candidate: q, Result: res}.Clone()
	for i := range scratch { // the engine's next request
		scratch[i] = '#'
	}
	cacheControl := func(where string, diffs []compare.Diff) {
		t.Helper()
		for _, d := range diffs {
			if d.Path == "header.Cache-Control" {
				if d.Kind != compare.KindMissing || d.Primary != "no-store" {
					t.Errorf("%s: %s %s %q, want missing \"no-store\": changed with the caller's buffer", where, d.Path, d.Kind, d.Primary)
				}
				return
			}
		}
		t.Errorf("%s: no header.Cache-Control difference in %+v", where, diffs)
	}
	cacheControl("cloned comparison", later.Result.Diffs)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	snap := c.Snapshot()
	if len(snap.TopDiffs) != 2 || len(snap.TopDiffs[0].Examples) != 1 {
		t.Fatalf("top diffs %+v, want two groups (body.status, header.Cache-Control) with one example", snap.TopDiffs)
	}
	ex := snap.TopDiffs[0].Examples[0]
	if ex.ID != "req-7" || ex.Method != "GET" || ex.URI != "/api/v1/campaigns/cmp_000042" {
		t.Errorf("example request %+v changed with the caller's buffer", ex.Request)
	}
	if h := ex.Primary.Headers; len(h) != 3 || h[1] != [2]string{"X-Upstream", "php-a"} || h[2] != [2]string{"Cache-Control", "no-store"} {
		t.Errorf("example headers %q changed with the caller's buffer", h)
	}
	cacheControl("example", ex.Diffs)
	lines := readLines(t, buf.Bytes())
	if len(lines) != 2 {
		t.Fatalf("%d diff log lines, want 2", len(lines))
	}
	for _, e := range lines {
		if e.RequestID != "req-7" || e.Method != "GET" || e.URI != "/api/v1/campaigns/cmp_000042" {
			t.Errorf("diff log entry %+v changed with the caller's buffer", e)
		}
	}
	cacheControl("diff log", lines[0].Diffs)
}

// The intake's generated id and clock value are learned from the legacy
// answers: the first comparisons wait while the paths learn, then settle
// as noise; none is ever counted a mismatch.
func TestCollectorHoldsWhileLearning(t *testing.T) {
	clk := newClock()
	s, reg := newStats(t, clk, nil)
	c := s.Route("events")
	cmp := compare.MustCompile(compare.Rules{})
	answer := func(at time.Time) compare.Response {
		return jsonResponse(202, fmt.Sprintf(`{"status":"accepted","event_id":%q,"received_at":%q}`,
			uuid(), at.UTC().Format("2006-01-02T15:04:05.000Z")))
	}
	var pendingSeen bool
	for i := range 100 {
		clk.Add(time.Second)
		start := clk.Now()
		wl := compare.Window{Start: start, End: start.Add(2 * time.Millisecond)}
		wg := compare.Window{Start: start.Add(3 * time.Millisecond), End: start.Add(4 * time.Millisecond)}
		p, q := answer(start.Add(time.Millisecond)), answer(start.Add(3*time.Millisecond))
		c.Profile().Observe(p, "body", wl, nil)
		res := cmp.DiffWith(p, q, compare.DiffOptions{Profile: c.Profile(), Windows: [2]compare.Window{wl, wg}})
		o := c.Compared(Comparison{PrimarySide: routes.SideLegacy, Primary: p, Candidate: q, Result: res})
		if o == compare.OutcomePending {
			pendingSeen = true
		} else if o != compare.OutcomeNoiseOnly {
			t.Fatalf("request %d: outcome %s", i, o)
		}
	}
	snap := c.Snapshot()
	if !pendingSeen || snap.Counts.Pending != 0 || snap.Counts.NoiseOnly != 100 || snap.Counts.Mismatch != 0 {
		t.Fatalf("counts %+v (pending seen %v)", snap.Counts, pendingSeen)
	}
	if got := counterValue(t, reg, "strangler_shadow_comparisons_total", map[string]string{"route": "events", "outcome": "noise_only"}); got != 100 {
		t.Fatalf("noise_only counter %v", got)
	}
	classes := map[string]string{}
	for _, f := range snap.Profile {
		classes[f.Template] = f.Class
	}
	if classes["body.event_id"] != "generated" || classes["body.received_at"] != "clock" {
		t.Fatalf("profile %+v", snap.Profile)
	}
}

// New rules start a new epoch; the old one stays, superseded.
func TestCollectorEpochs(t *testing.T) {
	s, _ := newStats(t, newClock(), nil)
	c := s.Route("campaign")
	a := compare.MustCompile(compare.Rules{})
	p := jsonResponse(200, campaign)
	q := jsonResponse(200, strings.Replace(campaign, `"active"`, `"paused"`, 1))
	c.SetRules(RulesOf(a, compare.Rules{}))
	compareOnce(c, a, p, q)
	compareOnce(c, a, p, p)
	c.SetRules(RulesOf(a, compare.Rules{})) // the same rules: the same epoch
	if snap := c.Snapshot(); snap.Epoch.Number != 1 || snap.Counts.Compared != 2 {
		t.Fatalf("same rules: %+v %+v", snap.Epoch, snap.Counts)
	}
	rules := compare.Rules{Ignore: []string{"body.status"}}
	b := compare.MustCompile(rules)
	c.SetRules(RulesOf(b, rules))
	compareOnce(c, b, p, q)
	snap := c.Snapshot()
	if snap.Epoch.Number != 2 || snap.Counts != (Counts{Compared: 1, Match: 1}) || len(snap.TopDiffs) != 0 {
		t.Fatalf("new epoch: %+v %+v %+v", snap.Epoch, snap.Counts, snap.TopDiffs)
	}
	if len(snap.Superseded) != 1 || snap.Superseded[0].Counts.Mismatch != 1 || snap.Superseded[0].Ended.IsZero() ||
		snap.Superseded[0].Rules.Fingerprint != a.Fingerprint() || snap.Epoch.Rules.Ignore[0] != "body.status" {
		t.Fatalf("superseded %+v", snap.Superseded)
	}
}

// The mismatch lines go to the mismatch logger, never to a sampled one.
func TestCollectorMismatchLog(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	sampled, sampledLogs := observer.New(zap.InfoLevel)
	s, _ := newStats(t, newClock(), func(o *Options) { o.Logger, o.MismatchLog = zap.New(sampled), zap.New(core) })
	c := s.Route("campaign")
	cmp := compare.MustCompile(compare.Rules{})
	p := jsonResponse(200, campaign)
	q := jsonResponse(200, strings.Replace(campaign, `"active"`, `"paused"`, 1))
	for range 500 {
		compareOnce(c, cmp, p, q)
	}
	if n := logs.FilterMessage("shadow mismatch").Len(); n != 500 {
		t.Fatalf("%d mismatch lines, want 500", n)
	}
	if n := sampledLogs.FilterMessage("shadow mismatch").Len(); n != 0 {
		t.Fatalf("%d mismatch lines on the general logger", n)
	}
}

func uuid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := fmt.Sprintf("%x", b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
