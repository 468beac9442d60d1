// Package mutation is the shadow verdict's own mutation suite: it injects
// one kind of change at a time into a copy of the Go handlers (each in a
// build of its own, through go build -overlay), shadows the real PHP
// monolith with it under the shipped routes — no ignore or normalise rule
// — and checks that the report names the change by its path and kind,
// names no path the change does not explain, and says "not ready". The
// unchanged port must get zero mismatches and "ready".
//
// `make test` runs a fast subset (STRANGLER_MUTATION=fast, the default):
// the unchanged port over 400 requests per route, three mutations, and
// TestMutationsApply (every mutation still applies to the handlers). `make
// evidence` runs it all (STRANGLER_MUTATION=full): every mutation, and the
// unchanged port over 5,000 mixed requests per route.
package mutation

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/internal/monolith"
	"github.com/strangler-proxy/strangler/internal/monolith/monolithtest"
	"github.com/strangler-proxy/strangler/proxy/shadowreport"
)

// full reports whether the whole suite runs (make evidence).
func full() bool { return os.Getenv("STRANGLER_MUTATION") == "full" }

// mutation is one injected change: edits of one file of the Go side, the
// routes its workload drives, and the path the report must name.
//
// An edit is {old, new}: old must occur exactly once in the file, where
// any run of white space in old matches any run in the file (gofmt
// realigns a const block or a comment when a neighbour changes). When a
// handler's code changes, TestMutationsApply (in make test too) names the
// mutation and edit that no longer apply: rewrite old to the new code,
// keeping the change new injects.
type mutation struct {
	name  string
	file  string      // relative to the repository root
	edits [][2]string // each old text occurs exactly once
	route string      // events, campaign or campaigns
	path  string      // a template of the report's differing paths
	kind  string      // its kind, "" for any
	// also are the other templates the change may be named at (what
	// follows from it, such as a 422's errors with a changed status); the
	// report naming any other path is a failure: something besides the
	// change made a difference.
	also []string
	fast bool // part of make test's subset
	// n bounds the requests sent; the run stops once the report names path.
	n int
}

var mutations = []mutation{
	{name: "rule boundary: 50 items become too many", file: "ported/events/rules.go",
		edits: [][2]string{{"maxItems = 50", "maxItems = 49"}}, route: "events", path: "status", kind: "value", n: 3000,
		// A 50-item event refused: a 422's body for a 202's, nothing published.
		also: []string{"body.status", "body.event_id", "body.received_at", "body.errors", "body.request_id", "published",
			"body.errors[*]", "body.errors[*].field", "body.errors[*].code", "body.errors[*].message"}},
	{name: "rounding: item prices lose their last digit", file: "ported/events/encode.go",
		edits: [][2]string{{"dst = appendMinor(dst, it.Price, e.MinorUnits)", "dst = appendMinor(dst, it.Price/10*10, e.MinorUnits)"}},
		route: "events", path: "published.items[*].price", kind: "value", fast: true, n: 1500},
	{name: "header: a charset on Content-Type", file: "ported/campaigns/campaigns.go",
		edits: [][2]string{{`const contentType = "application/json"`, `const contentType = "application/json; charset=utf-8"`}},
		route: "campaign", path: "header.Content-Type", kind: "value", n: 500},
	{name: "status: 201 for an accepted event", file: "ported/events/handler.go",
		edits: [][2]string{{"respond(ctx, fasthttp.StatusAccepted, v.buf)", "respond(ctx, fasthttp.StatusCreated, v.buf)"}},
		route: "events", path: "status", kind: "value", n: 500},
	{name: "array order: countries reversed", file: "ported/campaigns/encode.go",
		edits: [][2]string{{"for i, cc := range c.Countries {", "for i := range c.Countries {\n\t\tcc := c.Countries[len(c.Countries)-1-i]"}},
		route: "campaign", path: "body.countries", kind: "order", n: 800},
	{name: "error code: type_unknown renamed", file: "ported/events/rules.go",
		edits: [][2]string{{`CodeTypeUnknown     = "type_unknown"`, `CodeTypeUnknown     = "unknown_type"`}},
		route: "events", path: "body.errors[*].code", kind: "value", n: 3000},
	{name: "published field: email_sha256 dropped", file: "ported/events/encode.go",
		edits: [][2]string{{"dst = append(dst, `,\"email_sha256\":`...)\n\tdst = appendOptString(dst, e.EmailSHA256)\n", ""}},
		route: "events", path: "published.email_sha256", kind: "missing", fast: true, n: 1500},
	{name: "number spelling: budgets as 4580142000.0", file: "ported/campaigns/encode.go",
		edits: [][2]string{{"b = strconv.AppendInt(b, c.Budget.AmountMinor, 10)", "b = strconv.AppendInt(b, c.Budget.AmountMinor, 10)\n\tb = append(b, \".0\"...)"}},
		route: "campaign", path: "body.budget.amount_minor", kind: "format", n: 500},
	{name: "key order: status before name", file: "ported/campaigns/encode.go",
		edits: [][2]string{{"b = append(b, `,\"name\":`...)\n\tb = phpjson.AppendString(b, c.Name)\n\tb = append(b, `,\"status\":`...)\n\tb = phpjson.AppendString(b, c.Status)",
			"b = append(b, `,\"status\":`...)\n\tb = phpjson.AppendString(b, c.Status)\n\tb = append(b, `,\"name\":`...)\n\tb = phpjson.AppendString(b, c.Name)"}},
		route: "campaign", path: "body", kind: "key_order", n: 500},
	{name: "rare: ids ending in 999 answer another campaign (fewer than 1 request in 1,000)", file: "ported/campaigns/campaigns.go",
		edits: [][2]string{{"c, ok := set.Campaign(id)", "c, ok := set.Campaign(id)\n\tif ok && len(id) > 3 && id[len(id)-3:] == \"999\" {\n\t\tc = set.Sorted(\"\")[0]\n\t}"}},
		route: "campaign", path: "body.id", kind: "value", n: 6000,
		// Another campaign: any of its fields may differ.
		also: []string{"body.advertiser_id", "body.name", "body.status", "body.countries", "body.countries[*]", "body.starts_at",
			"body.ends_at", "body.budget.amount_minor", "body.budget.currency", "body.active"}},
	{name: "nondeterminism: the first two errors swapped at random", file: "ported/events/handler.go",
		edits: [][2]string{{"b := append(v.buf[:0], `{\"status\":\"rejected\",\"errors\":[`...)", "if len(v.errs) > 1 && time.Now().UnixNano()/1000%2 == 0 {\n\t\tv.errs[0], v.errs[1] = v.errs[1], v.errs[0]\n\t}\n\tb := append(v.buf[:0], `{\"status\":\"rejected\",\"errors\":[`...)"}},
		route: "events", path: "body.errors", kind: "nondeterministic", fast: true,
		// Only a sampled request is asked twice (shadow.noise: the first 20,
		// then 1 in 100), and it shows the change only when it has two
		// errors or more and the two calls' clocks differ in parity: about
		// 1 sampled request in 18 (314 of 5,750 answers differed from the
		// legacy ones over 20 runs). 3,000 requests (50 samples) miss it
		// about 1 run in 17; 24,000 (260 samples) miss it less than once in
		// a million. Most runs stop after the first 250.
		n: 24000},
	{name: "lookup field: advertiser_id is the campaign's id", file: "ported/campaigns/encode.go",
		edits: [][2]string{{"b = phpjson.AppendString(b, c.AdvertiserID)", "b = phpjson.AppendString(b, c.ID)"}},
		route: "campaigns", path: "body.data[*].advertiser_id", kind: "value", n: 500},
	{name: "case: Accepted", file: "ported/events/handler.go",
		edits: [][2]string{{"`{\"status\":\"accepted\",\"event_id\":`", "`{\"status\":\"Accepted\",\"event_id\":`"}},
		route: "events", path: "body.status", kind: "case", n: 500},
	{name: "retry: a replayed 202 with a fresh received_at", file: "ported/events/handler.go",
		edits: [][2]string{{"h.accepted(ctx, v, first.EventID, time.UnixMilli(first.ReceivedAt))", "h.accepted(ctx, v, first.EventID, now)"}},
		route: "events", path: "body.received_at", kind: "value", n: 3000},
	{name: "clock: received_at an hour early", file: "ported/events/handler.go",
		edits: [][2]string{{"b = appendMillis(b, receivedAt)", "b = appendMillis(b, receivedAt.Add(-time.Hour))"}},
		route: "events", path: "body.received_at", kind: "value", n: 500},
}

// root is the repository root.
func root(t testing.TB) string {
	t.Helper()
	r, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// apply returns m's file with its edits applied, or why an edit no
// longer applies.
func (m *mutation) apply(root string) ([]byte, error) {
	src, err := os.ReadFile(filepath.Join(root, m.file))
	if err != nil {
		return nil, err
	}
	for i, e := range m.edits {
		re := regexp.MustCompile(looseText(e[0]))
		locs := re.FindAllIndex(src, -1)
		if len(locs) != 1 {
			return nil, fmt.Errorf("mutation %q: edit %d's old text occurs %d times in %s, want once: the handler's code changed; "+
				"rewrite that edit in e2e/mutation/mutation_test.go to the new code, keeping the change it injects\nold text:\n%s",
				m.name, i+1, len(locs), m.file, e[0])
		}
		src = slices.Concat(src[:locs[0][0]], []byte(e[1]), src[locs[0][1]:])
	}
	return src, nil
}

// looseText is a pattern matching s literally, but for runs of white
// space, which match any run of white space.
func looseText(s string) string {
	var b strings.Builder
	for i, f := range strings.Fields(s) {
		if i > 0 {
			b.WriteString(`\s+`)
		}
		b.WriteString(regexp.QuoteMeta(f))
	}
	return b.String()
}

// Every mutation still applies to the handlers as they are now, and
// leaves a file that parses: a handler edit that breaks a mutation fails
// here, naming it, in make test, not only in make evidence.
func TestMutationsApply(t *testing.T) {
	for i := range mutations {
		m := &mutations[i]
		src, err := m.apply(root(t))
		if err != nil {
			t.Error(err)
			continue
		}
		if _, err := parser.ParseFile(token.NewFileSet(), m.file, src, parser.SkipObjectResolution); err != nil {
			t.Errorf("mutation %q: %s no longer parses once mutated: %v", m.name, m.file, err)
		}
	}
}

// build compiles cmd/strangler with m's edits applied to a copy of its
// file (go build -overlay: the tree stays as it is).
func build(t *testing.T, m *mutation) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "strangler")
	args := []string{"build", "-o", bin}
	if m != nil {
		orig := filepath.Join(root(t), m.file)
		src, err := m.apply(root(t))
		if err != nil {
			t.Fatal(err)
		}
		mutated := filepath.Join(dir, filepath.Base(m.file))
		if err := os.WriteFile(mutated, src, 0o644); err != nil {
			t.Fatal(err)
		}
		overlay, _ := json.Marshal(map[string]map[string]string{"Replace": {orig: mutated}})
		ov := filepath.Join(dir, "overlay.json")
		if err := os.WriteFile(ov, overlay, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-overlay", ov)
	}
	cmd := exec.Command("go", append(args, "github.com/strangler-proxy/strangler/cmd/strangler")...)
	cmd.Dir = root(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proxy is a running strangler in front of m with the shipped routes in
// shadow, legacy primary, every request copied, no ignore or normalise
// rule: what a new user tries first.
type proxy struct {
	url, admin string
	logs       *bytes.Buffer
}

func start(t *testing.T, bin string, m *monolith.Monolith) *proxy {
	t.Helper()
	dir := t.TempDir()
	p := &proxy{url: "http://" + freeAddr(t), admin: "http://" + freeAddr(t), logs: &bytes.Buffer{}}
	campaigns := filepath.Join(root(t), "examples", "monolith", "data", "campaigns.json")
	cfg := fmt.Sprintf(`listen: %q
admin_listen: %q
log: {level: warn}
legacy: {upstream: %q}
spool: {dir: %q}
hotcache: {source: %q}
routes:
  - name: events
    methods: [POST]
    path: /api/v1/events
    mode: shadow
    handler: events.ingest
    shadow: {legacy_events_file: %q}
  - {name: campaign, methods: [GET], path: "/api/v1/campaigns/{id}", mode: shadow, handler: campaigns.get}
  - {name: campaigns, methods: [GET], path: /api/v1/campaigns, mode: shadow, handler: campaigns.list}
`, strings.TrimPrefix(p.url, "http://"), strings.TrimPrefix(p.admin, "http://"), m.URL, filepath.Join(dir, "spool"), "file://"+campaigns, m.EventsFile)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "-config", path)
	cmd.Dir = dir
	var mu sync.Mutex
	cmd.Stdout, cmd.Stderr = lockedWriter{&mu, p.logs}, lockedWriter{&mu, p.logs}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
		if t.Failed() {
			mu.Lock()
			t.Logf("strangler logs:\n%s", p.logs.String())
			mu.Unlock()
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := http.Get(p.admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-done:
			t.Fatalf("strangler exited at start\n%s", p.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("strangler not ready within 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// drive sends reqs with 8 clients, in batches of batch; after each batch
// stop may end the run. A retry waits until retryDelay after its first
// request was sent. It returns how many were sent.
func (p *proxy) drive(t *testing.T, reqs []request, batch int, stop func() bool) int {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer c.CloseIdleConnections()
	var firstSent sync.Map // Idempotency-Key → time.Time
	sent := 0
	for sent < len(reqs) {
		end := min(sent+batch, len(reqs))
		work := make(chan request)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				for r := range work {
					if r.retry {
						if at, ok := firstSent.Load(r.key); ok {
							time.Sleep(time.Until(at.(time.Time).Add(retryDelay)))
						}
					} else if r.key != "" {
						firstSent.LoadOrStore(r.key, time.Now())
					}
					req, _ := http.NewRequest(r.method, p.url+r.path, strings.NewReader(r.body))
					if r.ctype != "" {
						req.Header.Set("Content-Type", r.ctype)
					}
					if r.key != "" {
						req.Header.Set("Idempotency-Key", r.key)
					}
					resp, err := c.Do(req)
					if err != nil {
						select {
						case errs <- err:
						default:
						}
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
		for _, r := range reqs[sent:end] {
			work <- r
		}
		close(work)
		wg.Wait()
		select {
		case err := <-errs:
			t.Fatalf("request: %v", err)
		default:
		}
		sent = end
		if stop != nil && stop() {
			break
		}
	}
	return sent
}

// report reads the shadow report once every request sent is judged, held
// or skipped.
func (p *proxy) report(t *testing.T, want map[string]uint64) map[string]shadowreport.RouteReport {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out := map[string]shadowreport.RouteReport{}
		resp, err := http.Get(p.admin + "/shadow.json")
		if err != nil {
			t.Fatal(err)
		}
		var rep shadowreport.Report
		err = json.NewDecoder(resp.Body).Decode(&rep)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		ok := true
		for _, r := range rep.Routes {
			out[r.Name] = r
			k := r.Stats.Counts
			ok = ok && k.Compared+k.Pending+k.Errors+k.Skipped >= want[r.Name]
		}
		if ok {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("the report never reached %v outcomes: %+v", want, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// names reports whether the route's differing paths include path (of kind).
func names(r shadowreport.RouteReport, path, kind string) bool {
	for _, g := range r.Stats.TopDiffs {
		if g.Template == path && (kind == "" || g.Kinds[compare.Kind(kind)] > 0) {
			return true
		}
	}
	return false
}

func startMonolith(t *testing.T) *monolith.Monolith {
	return monolithtest.Start(t, monolith.Options{Workers: 4})
}

// The unchanged port, shadowed with no rule at all: not one mismatch over
// the mixed workload (5,000 requests per route in the full suite), and a
// "ready" verdict for every route once 3,000 are clean.
func TestUnchangedPortIsReady(t *testing.T) {
	n := 400
	if full() {
		n = 5000
	}
	m := startMonolith(t)
	p := start(t, build(t, nil), m)
	reqs := workload(1, time.Now(), n, "events", "campaign", "campaigns")
	p.drive(t, reqs, len(reqs), nil)
	rep := p.report(t, map[string]uint64{"events": uint64(n), "campaign": uint64(n), "campaigns": uint64(n)})
	for _, name := range []string{"events", "campaign", "campaigns"} {
		r := rep[name]
		k := r.Stats.Counts
		t.Logf("%s: %+v; side effects %+v; verdict ready=%v: %s", name, k, r.Stats.SideEffects, r.Verdict.Ready, r.Verdict.Confidence)
		if k.Mismatch != 0 || k.Pending != 0 {
			var paths []string
			for _, g := range r.Stats.TopDiffs {
				paths = append(paths, fmt.Sprintf("%s %v", g.Template, g.Kinds))
			}
			t.Errorf("%s: %d mismatches, %d pending with no change to the port: %v", name, k.Mismatch, k.Pending, paths)
		}
		if k.Compared+k.Skipped+k.Errors != uint64(n) || k.Errors != 0 {
			t.Errorf("%s: %+v, want %d compared", name, k, n)
		}
		if name == "events" && r.Stats.SideEffects.Uncompared != 0 {
			t.Errorf("events: side effects %+v, want every one compared", r.Stats.SideEffects)
		}
		if full() && !r.Verdict.Ready {
			t.Errorf("%s: not ready over %d requests: %v", name, n, r.Verdict.Reasons)
		}
	}
}

// Every injected change is named by the report at its path, with its
// kind, and the verdict says "not ready".
func TestEveryMutationIsCaught(t *testing.T) {
	m := startMonolith(t)
	for i := range mutations {
		mu := &mutations[i]
		if !full() && !mu.fast {
			continue
		}
		t.Run(mu.name, func(t *testing.T) {
			p := start(t, build(t, mu), m)
			reqs := workload(uint64(100+i), time.Now(), mu.n, mu.route)
			if mu.route == "campaign" && strings.HasPrefix(mu.name, "rare") {
				hits := 0
				for _, r := range reqs {
					if strings.HasSuffix(r.path, "999") {
						hits++
					}
				}
				t.Logf("%d of %d lookups touch the change (1 in %d)", hits, len(reqs), len(reqs)/max(hits, 1))
				if hits == 0 || len(reqs)/hits < 1000 {
					t.Fatalf("%d hits in %d requests: the rare change is not rare, or never touched", hits, len(reqs))
				}
			}
			var last map[string]shadowreport.RouteReport
			caught := func() bool {
				last = p.report(t, nil)
				return names(last[mu.route], mu.path, mu.kind)
			}
			sent := p.drive(t, reqs, 250, caught)
			rep := p.report(t, map[string]uint64{mu.route: uint64(sent)})
			r := rep[mu.route]
			if !names(r, mu.path, mu.kind) {
				var paths []string
				for _, g := range r.Stats.TopDiffs {
					paths = append(paths, fmt.Sprintf("%s %v", g.Template, g.Kinds))
				}
				t.Fatalf("after %d requests the report does not name %s (%s): counts %+v, paths %v", sent, mu.path, mu.kind, r.Stats.Counts, paths)
			}
			if r.Verdict.Ready {
				t.Fatalf("verdict ready with the change in: %+v", r.Verdict)
			}
			for _, g := range r.Stats.TopDiffs {
				if g.Template != mu.path && !slices.Contains(mu.also, g.Template) {
					t.Errorf("the report also names %s %v (%d), which the change does not explain", g.Template, g.Kinds, g.Count)
				}
			}
			t.Logf("named %s (%s) after %d requests; verdict not ready: %s", mu.path, mu.kind, sent, strings.Join(r.Verdict.Reasons, "; "))
		})
	}
}
