package campaigns

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"

	"github.com/strangler-proxy/strangler/internal/monolith"
	"github.com/strangler-proxy/strangler/internal/monolith/monolithtest"
	"github.com/strangler-proxy/strangler/ported/campaign"
	"github.com/strangler-proxy/strangler/ported/campaign/campaigngen"
	"github.com/strangler-proxy/strangler/routes"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's process-wide Date header ticker never stops, and a
		// stopped server's idle-worker cleaner finishes its current sleep
		// (up to 10s) before it notices; neither belongs to these tests.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	)
}

// parityNow is the clock of both sides; mid-2026 gives "active" both answers.
var parityNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func shippedSet(t testing.TB) *campaign.Set {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "examples", "monolith", "data", "campaigns.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := campaign.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	set, err := campaign.NewSet(doc)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// startGo serves the Go handlers on 127.0.0.1 behind the lookup routes as
// config.yaml ships them, matched by the route table.
func startGo(t *testing.T, src Source) string {
	t.Helper()
	now := func() time.Time { return parityNow }
	table, err := routes.Compile(routes.Config{Routes: []routes.RouteConfig{
		{Name: "campaign", Methods: []string{"GET"}, Path: "/api/v1/campaigns/{id}", Mode: routes.ModePorted, Handler: GetName},
		{Name: "campaigns", Methods: []string{"GET"}, Path: "/api/v1/campaigns", Mode: routes.ModePorted, Handler: ListName},
	}}, routes.Registry{GetName: NewGet(src, now), ListName: NewList(src, now)})
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			var err error
			if m := table.Match(ctx); m.Route != nil {
				err = m.Route.Handler.Serve(ctx)
			} else {
				ctx.Error("no route", fasthttp.StatusNotFound)
			}
			// As the front door: an error whose answer is written stands.
			if a, ok := err.(interface{ Answered() bool }); err != nil && (!ok || !a.Answered()) {
				ctx.Error(err.Error(), fasthttp.StatusInternalServerError)
			}
		},
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
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

type parityCase struct {
	target    string // path and query, sent verbatim
	requestID string
}

// parityCorpus lists the lookups both sides must answer identically.
func parityCorpus(set *campaign.Set) []parityCase {
	var cs []parityCase
	add := func(target string) { cs = append(cs, parityCase{target: target}) }

	// By id: fixtures, a deterministic sample, and misses of every shape.
	rng := rand.New(rand.NewPCG(3, 4))
	all := set.Sorted("")
	for _, id := range []string{"cmp_000001", "cmp_000002", "cmp_000003", "cmp_000004", all[len(all)-1].ID} {
		add("/api/v1/campaigns/" + id)
	}
	for range 40 {
		add("/api/v1/campaigns/" + all[rng.IntN(len(all))].ID)
	}
	for _, id := range []string{"cmp_000000", "cmp_010001", "cmp_999999", "CMP_000001", "cmp_00001", "cmp_0000001",
		"nope", "cmp%5F000042", "cmp_000042%20", "%FF%FE", "caf%C3%A9", "a+b", "cmp_000042.json"} {
		add("/api/v1/campaigns/" + id)
	}
	cs = append(cs,
		parityCase{target: "/api/v1/campaigns/missing", requestID: "req-42:abc/DEF+=="},
		parityCase{target: "/api/v1/campaigns/missing", requestID: "has space"},
		parityCase{target: "/api/v1/campaigns?limit=0", requestID: "r-1"},
	)

	// Lists: every country, active both ways, case, limits, params.
	for i, cc := range campaigngen.Countries() {
		active := []string{"true", "false"}[i%2]
		add(fmt.Sprintf("/api/v1/campaigns?country=%s&active=%s&limit=5", cc, active))
	}
	for _, q := range []string{
		"", "?", "?active=true", "?active=false", "?country=de", "?country=De&active=true", "?country=ZZ", "?country=U%53",
		"?limit=1", "?limit=20", "?limit=100", "?limit=101", "?limit=0", "?limit=-1", "?limit=abc", "?limit=", "?limit=1e2",
		"?limit=007", "?limit=%31%30", "?limit=10&&", "?&limit=3&", "?country=USA", "?country=", "?country", "?country=u",
		"?active=TRUE", "?active=1", "?active=yes", "?cursor=", "?cursor=!!!", "?cursor=Y21wXzAwMDAxMA==", "?cursor=Y21wXzAwMDAxMA",
		"?cursor=Y21wXzAwMDAxMB", "?cursor=A", "?cursor=eno", "?cursor=em-_", "?cursor=Y21wXzAwMDAxMA&limit=3",
		"?sort=id", "?Country=US", "?page%5Bsize%5D=2", "?a+b=1", "?=1", "?_=12345", "?country=US&country=DE",
		"?limit=5&limit=6", "?limit=0&country=USA", "?country=USA&limit=0", "?x=1&limit=0", "?limit=2&x=1",
		"?country=US%0A", "?country=%55%53&active=%74rue&limit=%32",
	} {
		add("/api/v1/campaigns" + q)
	}
	return cs
}

type answer struct {
	status      int
	contentType string
	retryAfter  string
	body        []byte
}

func fetch(t *testing.T, client *http.Client, base string, c parityCase) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+c.target, nil)
	if err != nil {
		t.Fatalf("%s: %v", c.target, err)
	}
	if c.requestID != "" {
		req.Header.Set("X-Request-Id", c.requestID)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", base, c.target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", base, c.target, err)
	}
	return answer{resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Retry-After"), body}
}

func normalise(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return v
}

// compare fails unless both answers agree on status, Content-Type and the
// JSON body; byte equality is required too, since both sides aim for it.
func compare(t *testing.T, target string, php, goa answer) {
	t.Helper()
	if php.status != goa.status || php.contentType != goa.contentType || php.retryAfter != goa.retryAfter {
		t.Errorf("%s: php %d %q Retry-After %q, go %d %q Retry-After %q\nphp %s\n go %s", target,
			php.status, php.contentType, php.retryAfter, goa.status, goa.contentType, goa.retryAfter, php.body, goa.body)
		return
	}
	if !reflect.DeepEqual(normalise(t, php.body), normalise(t, goa.body)) {
		t.Errorf("%s: bodies differ\nphp %s\n go %s", target, php.body, goa.body)
		return
	}
	if !bytes.Equal(php.body, goa.body) {
		t.Errorf("%s: same JSON, different bytes\nphp %s\n go %s", target, php.body, goa.body)
	}
}

func TestParityWithPHP(t *testing.T) {
	m := monolithtest.Start(t, monolith.Options{
		Workers: 2,
		Env:     map[string]string{"STRANGLER_FIXED_NOW": parityNow.Format(time.RFC3339)},
	})
	set := shippedSet(t)
	goURL := startGo(t, staticSource{set})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	corpus := parityCorpus(set)
	statuses := map[int]int{}
	for _, c := range corpus {
		php, goa := fetch(t, client, m.URL, c), fetch(t, client, goURL, c)
		compare(t, c.target, php, goa)
		statuses[goa.status]++
	}

	// Cursor walks to the end, following the cursors both sides hand out.
	walks := 0
	for _, q := range []string{"country=DE&limit=100", "country=jp&active=false&limit=37", "active=true&limit=100&country=SE", "limit=1&country=AE&active=true"} {
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 2000 {
				t.Fatalf("%s: walk does not end", q)
			}
			target := "/api/v1/campaigns?" + q
			if cursor != "" {
				target += "&cursor=" + cursor
			}
			c := parityCase{target: target}
			php, goa := fetch(t, client, m.URL, c), fetch(t, client, goURL, c)
			compare(t, target, php, goa)
			walks++
			var p struct {
				NextCursor *string `json:"next_cursor"`
			}
			if err := json.Unmarshal(goa.body, &p); err != nil || goa.status != 200 {
				t.Fatalf("%s: %d %s", target, goa.status, goa.body)
			}
			if p.NextCursor == nil {
				break
			}
			cursor = *p.NextCursor
		}
	}
	t.Logf("%d corpus lookups (statuses %v) and %d walk pages compared", len(corpus), statuses, walks)
	if len(corpus)+walks < 100 || statuses[200] == 0 || statuses[400] == 0 || statuses[404] == 0 {
		t.Fatalf("corpus too narrow: %d lookups, statuses %v", len(corpus)+walks, statuses)
	}
}

// Without data (PHP: the file cannot be read; Go: nothing loaded) both
// sides answer the same JSON 503 with Retry-After; a bad query is still
// the 400 it always is, checked first.
func TestParityWithoutData(t *testing.T) {
	m := monolithtest.Start(t, monolith.Options{
		Env: map[string]string{"STRANGLER_FIXED_NOW": parityNow.Format(time.RFC3339),
			"STRANGLER_CAMPAIGNS_FILE": filepath.Join(t.TempDir(), "missing.json")},
	})
	goURL := startGo(t, staticSource{})
	client := &http.Client{Timeout: 30 * time.Second}
	for _, c := range []parityCase{
		{target: "/api/v1/campaigns/cmp_000001", requestID: "r-1"},
		{target: "/api/v1/campaigns/nope"},
		{target: "/api/v1/campaigns?country=DE&active=true"},
		{target: "/api/v1/campaigns?limit=0"},
	} {
		php, goa := fetch(t, client, m.URL, c), fetch(t, client, goURL, c)
		compare(t, c.target, php, goa)
		if c.target != "/api/v1/campaigns?limit=0" && (goa.status != 503 || goa.retryAfter == "") {
			t.Errorf("%s: %d Retry-After %q, want 503 with Retry-After", c.target, goa.status, goa.retryAfter)
		}
	}
}
