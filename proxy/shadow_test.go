package proxy

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/legacy-passthrough"
	"github.com/strangler-proxy/strangler/ported/delivery"
	"github.com/strangler-proxy/strangler/proxy/control"
	"github.com/strangler-proxy/strangler/proxy/shadow"
	"github.com/strangler-proxy/strangler/proxy/shadowreport"
	"github.com/strangler-proxy/strangler/routes"
)

// waitFor polls cond until it holds or 10s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func pct(v float64) *float64 { return &v }

// snapshot waits until the route has recorded want outcomes (compared,
// errors and skipped) and returns its figures.
func (h *harness) snapshot(t testing.TB, route string, want uint64) shadowreport.Snapshot {
	t.Helper()
	var s shadowreport.Snapshot
	waitFor(t, fmt.Sprintf("%d shadow outcomes on %s", want, route), func() bool {
		c := h.srv.stats.Lookup(route)
		if c == nil {
			return false
		}
		s = c.Snapshot()
		return s.Counts.Compared+s.Counts.Errors+s.Counts.Skipped >= want
	})
	return s
}

// jsonAnswer writes a JSON answer.
func jsonAnswer(ctx *fasthttp.RequestCtx, status int, body string, header ...string) {
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentType("application/json")
	for i := 0; i+1 < len(header); i += 2 {
		ctx.Response.Header.Set(header[i], header[i+1])
	}
	ctx.SetBodyString(body)
}

// streamed answers like the legacy forwarder does: a chunked body stream
// that must be closed.
type streamed struct {
	r      io.Reader
	closed atomic.Bool
}

func (s *streamed) Read(p []byte) (int, error) { return s.r.Read(p) }
func (s *streamed) CloseWithError(error) error {
	s.closed.Store(true)
	return nil
}

func streamAnswer(ctx *fasthttp.RequestCtx, status int, body string, header ...string) *streamed {
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentType("application/json")
	for i := 0; i+1 < len(header); i += 2 {
		ctx.Response.Header.Set(header[i], header[i+1])
	}
	s := &streamed{r: strings.NewReader(body)}
	ctx.Response.SetBodyStream(s, -1)
	return s
}

// testUUID is a random version-4 UUID.
func testUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// campaignBody is what both sides answer for a lookup, with noisy fields.
func campaignBody(id, requestID string, at time.Time, mutate func(map[string]any)) string {
	m := map[string]any{
		"id": id, "status": "active", "countries": []string{"DE", "FR"}, "amount": 12.5,
		// A fixed number of fraction digits, as PHP prints them: with
		// RFC3339Nano's trimmed zeros the layout itself would vary.
		"trace": requestID, "generated_at": at.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		"items": []map[string]any{{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}},
	}
	if mutate != nil {
		mutate(m)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// drainBody reads the request body as a handler that uses it would.
func drainBody(ctx *fasthttp.RequestCtx) {
	if bs := ctx.RequestBodyStream(); bs != nil {
		_, _ = io.Copy(io.Discard, bs)
	}
}

// lookupSides builds a legacy side and a Go side answering the same
// lookup, each with a random trace id and its own timestamp (noise), and
// the Go side changed by mutate (a fault), goStatus and goHeaders (nil:
// the same Cache-Control as legacy).
func lookupSides(mutate func(map[string]any), goStatus int, goHeaders []string) (legacySide, goSide routes.Handler) {
	legacySide = routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		drainBody(ctx)
		streamAnswer(ctx, 200, campaignBody("cmp_1", randomID(), time.Now(), nil), "Cache-Control", "max-age=60")
		return nil
	})
	if goHeaders == nil {
		goHeaders = []string{"Cache-Control", "max-age=60"}
	}
	goSide = routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		drainBody(ctx)
		jsonAnswer(ctx, goStatus, campaignBody("cmp_1", randomID(), time.Now().Add(time.Millisecond), mutate), goHeaders...)
		return nil
	})
	return legacySide, goSide
}

func shadowRoute(name, path, method string, sc *routes.ShadowConfig) routes.RouteConfig {
	return routes.RouteConfig{Name: name, Methods: []string{method}, Path: path, Mode: routes.ModeShadow, Handler: "h", Shadow: sc}
}

// lookupHarness is a front door with one shadowed route "lookup" for
// method on /c/{id}: legacySide primary, goSide the candidate.
func lookupHarness(t *testing.T, method string, legacySide, goSide routes.Handler) *harness {
	t.Helper()
	return newHarness(t, harnessOptions{
		legacy: legacySide,
		routes: []routes.RouteConfig{shadowRoute("lookup", "/c/{id}", method, nil)},
		reg:    routes.Registry{"h": goSide},
		plane:  func(o *control.Options) { o.ShadowRegistry = routes.Registry{"h": goSide} },
	})
}

// Identical implementations whose answers carry noise (a random id and a
// timestamp) give no mismatch, with no rule written: the noise is learned
// from the legacy side's own answers across requests (a generated value,
// a clock value), and for GET also by asking the legacy side twice. The
// Go side is never its own noise twin; for a POST the legacy side is never
// asked twice.
func TestShadowLearnsNoiseWithoutRules(t *testing.T) {
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			legacySide, goSide := lookupSides(nil, 200, nil)
			var legacyCalls atomic.Int64
			counting := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
				legacyCalls.Add(1)
				return legacySide.Serve(ctx)
			})
			h := lookupHarness(t, method, counting, goSide)
			const n = 60
			req := get("/c/cmp_1")
			if method == "POST" {
				req = "POST /c/cmp_1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
			}
			for i := range n {
				r := h.roundTrip(t, req)
				if r.status != 200 {
					t.Fatalf("request %d: status %d", i, r.status)
				}
			}
			s := h.snapshot(t, "lookup", n)
			if s.Counts.Mismatch != 0 || s.Counts.Compared != n {
				t.Fatalf("counts %+v, want %d compared and no mismatch; diffs %+v; %s; profile %+v", s.Counts, n, s.TopDiffs, exampleDiffs(s.TopDiffs), s.Profile)
			}
			classes := map[string]string{}
			for _, f := range s.Profile {
				classes[f.Template] = f.Class
			}
			if classes["body.trace"] != "generated" || classes["body.generated_at"] != "clock" {
				t.Errorf("profile %+v, want body.trace generated and body.generated_at clock", s.Profile)
			}
			noisy := map[string]bool{}
			for _, f := range s.Noise {
				noisy[f.Template] = f.Noise
			}
			if method == "GET" && (!noisy["body.trace"] || !noisy["body.generated_at"]) {
				t.Errorf("noise fields %+v, want body.trace and body.generated_at shown as legacy-twin noise", s.Noise)
			}
			if method == "POST" && len(s.Noise) != 0 {
				t.Errorf("noise fields %+v learned for a POST: nothing may be asked twice but the Go side", s.Noise)
			}
			if s.Latency.Ported.Twins == 0 || s.Latency.Ported.Calls != n+s.Latency.Ported.Twins {
				t.Errorf("Go calls %+v: want %d candidate calls plus the determinism checks", s.Latency.Ported, n)
			}
			// PHP runs a POST once, whatever the sample: the monolith's
			// side effects must not happen twice.
			if method == "POST" && legacyCalls.Load() != n {
				t.Errorf("legacy called %d times for %d POSTs", legacyCalls.Load(), n)
			}
			if method == "GET" && legacyCalls.Load() <= n {
				t.Errorf("legacy called %d times for %d GETs: the noise sample never asked it twice", legacyCalls.Load(), n)
			}
		})
	}
}

// The candidate reads the route's path parameters from its own copy of the
// request, after the client's request has been answered and recycled: a
// Go side that answers for the id in the path agrees with legacy on every
// id, and one that got no id would answer 404.
func TestShadowCandidateReadsPathParameters(t *testing.T) {
	legacySide := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		id := strings.TrimPrefix(string(ctx.Path()), "/c/")
		streamAnswer(ctx, 200, campaignBody(id, randomID(), time.Now(), nil))
		return nil
	})
	goSide := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		id := routes.Param(ctx, "id")
		if id == "" {
			jsonAnswer(ctx, 404, `{"error":"not_found"}`)
			return nil
		}
		jsonAnswer(ctx, 200, campaignBody(id, randomID(), time.Now().Add(time.Millisecond), nil))
		return nil
	})
	h := lookupHarness(t, "GET", legacySide, goSide)
	const n = 30
	for i := range n {
		if r := h.roundTrip(t, get(fmt.Sprintf("/c/cmp_%06d", i))); r.status != 200 {
			t.Fatalf("request %d: status %d", i, r.status)
		}
	}
	s := h.snapshot(t, "lookup", n)
	if s.Counts.Compared != n || s.Counts.Mismatch != 0 {
		t.Fatalf("counts %+v, want %d compared and no mismatch; diffs %+v", s.Counts, n, s.TopDiffs)
	}
}

// Faults injected into the Go side are detected and pointed to by path.
func TestShadowDetectsFaultsByPath(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(map[string]any)
		status   int
		headers  []string
		template string
		kind     compare.Kind
	}{
		{name: "changed business rule", mutate: func(m map[string]any) { m["status"] = "paused" }, status: 200, template: "body.status", kind: compare.KindValue},
		{name: "rounding", mutate: func(m map[string]any) { m["amount"] = 12.49 }, status: 200, template: "body.amount", kind: compare.KindValue},
		{name: "different status", status: 404, template: "status", kind: compare.KindValue},
		{name: "missing header", status: 200, headers: []string{}, template: "header.Cache-Control", kind: compare.KindMissing},
		{name: "reordered array", mutate: func(m map[string]any) {
			m["items"] = []map[string]any{{"sku": "B", "qty": 2}, {"sku": "A", "qty": 1}}
		}, status: 200, template: "body.items", kind: compare.KindOrder},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			legacySide, goSide := lookupSides(tt.mutate, tt.status, tt.headers)
			h := lookupHarness(t, "GET", legacySide, goSide)
			const n = 30
			for range n {
				h.roundTrip(t, get("/c/cmp_1"))
			}
			s := h.snapshot(t, "lookup", n)
			if s.Counts.Mismatch != n {
				t.Fatalf("counts %+v, want %d mismatches", s.Counts, n)
			}
			if len(s.TopDiffs) == 0 || s.TopDiffs[0].Template != tt.template || s.TopDiffs[0].Kinds[tt.kind] == 0 {
				t.Fatalf("top differing paths %+v, want %s (%s) first", s.TopDiffs, tt.template, tt.kind)
			}
			for _, g := range s.TopDiffs {
				if g.Template == "body.trace" || g.Template == "body.generated_at" {
					t.Errorf("noise reported as a differing path: %s %+v", g.Template, g.Examples[0].Diffs)
				}
			}
			ex := s.TopDiffs[0].Examples[0]
			if ex.Primary.Side != routes.SideLegacy || ex.Candidate.Side != routes.SidePorted || ex.Method != "GET" {
				t.Errorf("example %+v", ex)
			}
		})
	}
}

// rawExchange sends raw on a fresh connection and returns every byte the
// server sent until it closed.
func (h *harness) rawExchange(t testing.TB, raw string) []byte {
	t.Helper()
	c, _ := h.dial(t)
	go func() { _, _ = io.WriteString(c, raw) }()
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

// The client gets the same answer with and without a shadow: a legacy
// primary streamed through the real forwarder (chunked, mixed-case and
// repeated headers, a request body), and a Go primary. "The same" is what
// a client can rely on: the status line, the header lines in their order
// and case, and the decoded body. Chunk boundaries are not part of it:
// chunking is hop-by-hop (RFC 9112 §7.1) and follows the upstream's write
// and read timing, so the upstream here writes its pages in one piece in
// the first pass and in flushed pieces in the second.
func TestShadowPrimaryAnswerIsUnchanged(t *testing.T) {
	var split atomic.Bool
	up := startUpstream(t, &split)
	fwd, err := legacy.New(legacy.Config{Upstream: "http://" + up}, zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fwd.Close)
	goSide := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		body := ctx.PostBody()
		if bs := ctx.RequestBodyStream(); bs != nil {
			body, _ = io.ReadAll(io.LimitReader(bs, 1<<20))
		}
		jsonAnswer(ctx, 201, fmt.Sprintf(`{"go":true,"len":%d}`, len(body)), "X-Mixed-CASE", "v")
		ctx.Response.Header.Add("Set-Cookie", "a=1; Path=/")
		return nil
	})
	reg := routes.Registry{"h": goSide}
	modes := func(shadowed bool) []routes.RouteConfig {
		mode := routes.ModeLegacy
		goMode := routes.ModePorted
		if shadowed {
			mode, goMode = routes.ModeShadow, routes.ModeShadow
		}
		return []routes.RouteConfig{
			{Name: "l", Path: "/up/*", Mode: mode, Handler: "h"},
			{Name: "g", Path: "/go", Mode: goMode, Handler: "h", Shadow: &routes.ShadowConfig{Primary: routes.SidePorted, AllowUnsafe: true}},
		}
	}
	h := newHarness(t, harnessOptions{
		legacy: fwd, routes: modes(false), reg: reg,
		plane: func(o *control.Options) { o.ShadowRegistry = reg },
	})
	body := strings.Repeat("0123456789", 300)
	requests := []string{
		"GET /up/page?q=1 HTTP/1.1\r\nHost: shop.example\r\nX-Request-Id: fixed-id-1\r\nx-lower: a\r\nCookie: s=1\r\nConnection: close\r\n\r\n",
		fmt.Sprintf("POST /up/echo HTTP/1.1\r\nHost: shop.example\r\nX-Request-Id: fixed-id-2\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body),
		"POST /up/echo HTTP/1.1\r\nHost: shop.example\r\nX-Request-Id: fixed-id-3\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
		"HEAD /up/page HTTP/1.1\r\nHost: shop.example\r\nX-Request-Id: fixed-id-4\r\nConnection: close\r\n\r\n",
		fmt.Sprintf("POST /go HTTP/1.1\r\nHost: shop.example\r\nX-Request-Id: fixed-id-5\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body),
	}
	var without []string
	for _, raw := range requests {
		without = append(without, clientView(t, raw, h.rawExchange(t, raw)))
	}
	split.Store(true)
	h.publish(t, compile(t, modes(true), false, reg))
	for i, raw := range requests {
		if with := clientView(t, raw, h.rawExchange(t, raw)); with != without[i] {
			t.Errorf("request %d: answer changed by the shadow:\nwithout: %q\nwith:    %q", i, without[i], with)
		}
	}
	// Every shadowed request was compared: the copies were complete.
	l := h.snapshot(t, "l", 4)
	g := h.snapshot(t, "g", 1)
	if l.Counts.Compared != 4 || g.Counts.Compared != 1 {
		t.Errorf("compared l=%+v g=%+v, want 4 and 1 with nothing skipped", l.Counts, g.Counts)
	}
}

// clientView is what a client can rely on in one answer to request (read
// until the server closed): the status line, the header lines as sent, and
// the body with its chunked framing removed, followed by any trailer lines.
// Bytes after the answer fail the test.
func clientView(t testing.TB, request string, answer []byte) string {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(answer))
	var view strings.Builder
	chunked := false
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("head of %q: %v", answer, err)
		}
		view.WriteString(l)
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, "Transfer-Encoding") {
			chunked = strings.EqualFold(strings.TrimSpace(v), "chunked")
		}
		if l == "\r\n" {
			break
		}
	}
	if strings.HasPrefix(request, "HEAD ") {
		chunked = false // no body follows, whatever the head says (RFC 9110 §9.3.2)
	} else if chunked {
		body, err := io.ReadAll(httputil.NewChunkedReader(br))
		if err != nil {
			t.Fatalf("chunked body of %q: %v", answer, err)
		}
		view.Write(body)
		for { // the trailer section, up to its empty line
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("trailer of %q: %v", answer, err)
			}
			view.WriteString(l)
			if l == "\r\n" {
				break
			}
		}
	}
	rest, _ := io.ReadAll(br)
	if chunked && len(rest) > 0 {
		t.Fatalf("%d bytes after the chunked answer: %q", len(rest), rest)
	}
	view.Write(rest) // a Content-Length or close-delimited body
	return view.String()
}

// startUpstream runs a stand-in for the monolith's Nginx on loopback: a
// chunked JSON page with repeated Set-Cookie and odd header case, and an
// echo of the request body's length. The page is written in one piece, or
// in flushed pieces while split is set.
func startUpstream(t testing.TB, split *atomic.Bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{
		NoDefaultDate: true, NoDefaultServerHeader: true, DisableHeaderNamesNormalizing: true,
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.Response.Header.Set("X-Powered-By", "PHP/8.2")
			ctx.Response.Header.Add("set-cookie", "PHPSESSID=abc; path=/; HttpOnly")
			ctx.Response.Header.Add("set-cookie", "lang=de; path=/")
			ctx.Response.Header.Set("x-Odd-Case", "1")
			ctx.SetContentType("application/json")
			if string(ctx.Path()) == "/up/echo" {
				ctx.SetBodyString(fmt.Sprintf(`{"len":%d,"rid":%q}`, len(ctx.PostBody()), ctx.Request.Header.Peek("X-Request-Id")))
				return
			}
			uri, xff := string(ctx.RequestURI()), string(ctx.Request.Header.Peek("X-Forwarded-For"))
			pieces := []string{fmt.Sprintf(`{"page":%q,`, uri), fmt.Sprintf(`"xff":%q,`, xff), `"tail":true}`}
			ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
				for _, p := range pieces {
					_, _ = w.WriteString(p)
					if split.Load() {
						// A pause makes separate reads at the forwarder likely,
						// hence other chunk boundaries; nothing depends on it.
						_ = w.Flush()
						time.Sleep(10 * time.Millisecond)
					}
				}
			})
		},
	}
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	return ln.Addr().String()
}

// A slow candidate never delays the primary: the client has its answer
// while the candidate still runs, further copies are skipped once the pool
// is full, and an answer within the route's timeout is compared.
func TestShadowSlowCandidateDoesNotDelayPrimary(t *testing.T) {
	release := make(chan struct{})
	var started atomic.Int64
	slow := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		// The first two calls hang until released; later ones (the
		// determinism check's second calls, the queued copy) answer at once.
		if started.Add(1) <= 2 {
			<-release
		}
		jsonAnswer(ctx, 200, `{"ok":true}`)
		return nil
	})
	reg := routes.Registry{"h": slow}
	cfg := Config{Shadow: ShadowConfig{Workers: 2, Queue: 1}}
	h := newHarness(t, harnessOptions{
		cfg: cfg, legacy: routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
			jsonAnswer(ctx, 200, `{"ok":true}`)
			return nil
		}),
		routes: []routes.RouteConfig{shadowRoute("s", "/s", "GET", &routes.ShadowConfig{Timeout: time.Hour})},
		reg:    reg,
		plane:  func(o *control.Options) { o.ShadowRegistry = reg },
	})
	defer close(release) // also on failure, so the pool can drain
	for i := range 10 {
		if r := h.roundTrip(t, get("/s")); r.status != 200 || r.body != `{"ok":true}` {
			t.Fatalf("request %d answered %d %q while the candidate hangs", i, r.status, r.body)
		}
	}
	waitFor(t, "both workers busy", func() bool { return started.Load() == 2 })
	s := h.snapshot(t, "s", 7)
	if s.SkipReasons[shadow.SkipPoolFull] != 7 || h.srv.engine.InFlight() != 3 {
		t.Errorf("skips %v in flight %d; want 7 pool_full with 2 running and 1 queued", s.SkipReasons, h.srv.engine.InFlight())
	}
	release <- struct{}{}
	release <- struct{}{}
	s = h.snapshot(t, "s", 10)
	if s.Counts.Match != 3 || s.Counts.Errors != 0 {
		t.Errorf("counts %+v, want the 2 answers within the timeout and the queued copy compared", s.Counts)
	}
}

// A candidate that hangs past the route's shadow.timeout is abandoned: the
// comparison is an error, its slot is free for the next copy, and the
// pool's worker is replaced. Abandoned calls are bounded: once as many
// hang as the pool has workers, copies are skipped (stuck_candidates)
// until one returns. The same holds for a legacy candidate.
func TestShadowHungCandidateFreesItsSlotAfterTheDeadline(t *testing.T) {
	ok := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		jsonAnswer(ctx, 200, `{"ok":true}`)
		return nil
	})
	for _, primary := range []routes.Side{routes.SideLegacy, routes.SidePorted} {
		t.Run("candidate "+string(map[routes.Side]routes.Side{routes.SideLegacy: routes.SidePorted, routes.SidePorted: routes.SideLegacy}[primary]), func(t *testing.T) {
			release := make(chan struct{})
			var entered, returned atomic.Int64
			hung := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
				entered.Add(1)
				defer returned.Add(1)
				<-release
				jsonAnswer(ctx, 200, `{"ok":true}`)
				return nil
			})
			// The hung side is the candidate; the primary answers.
			goSide, legacySide := routes.Handler(hung), routes.Handler(ok)
			if primary == routes.SidePorted {
				goSide, legacySide = ok, hung
			}
			reg := routes.Registry{"h": goSide}
			var diffs bytes.Buffer
			var diffsMu sync.Mutex
			dl := shadowreport.NewDiffLogWriter(lockedWriter{&diffsMu, &diffs}, 16, nil)
			h := newHarness(t, harnessOptions{
				cfg:    Config{Shadow: ShadowConfig{Workers: 1, Queue: 1}},
				legacy: ok,
				routes: []routes.RouteConfig{shadowRoute("s", "/s", "GET", &routes.ShadowConfig{Primary: primary, Timeout: 20 * time.Millisecond})},
				reg:    reg,
				plane: func(o *control.Options) {
					o.ShadowRegistry, o.ShadowLegacy, o.DiffLog = reg, legacySide, dl
				},
			})
			released := false
			free := func() {
				if !released {
					released = true
					close(release)
				}
			}
			defer free() // on failure too, so nothing stays hung
			eng := h.srv.engine

			// The first copy hangs; past the deadline it is abandoned and
			// its slot freed, though its goroutine still hangs.
			h.roundTrip(t, get("/s"))
			waitFor(t, "the first call abandoned", func() bool { return eng.Abandoned() == 1 && eng.InFlight() == 0 })
			if s := h.snapshot(t, "s", 1); s.Counts.Errors != 1 || s.Counts.Compared != 0 {
				t.Errorf("counts %+v, want the abandoned call as one error", s.Counts)
			}
			if returned.Load() != 0 {
				t.Fatal("the hung call returned: the test no longer shows a hang")
			}
			// One worker, one hung: the bound is reached, copies are skipped.
			h.roundTrip(t, get("/s"))
			if s := h.snapshot(t, "s", 2); s.SkipReasons[shadow.SkipStuck] != 1 {
				t.Errorf("skips %v, want one stuck_candidates", s.SkipReasons)
			}
			// Once the hung call returns, the replacement worker takes copies.
			free()
			waitFor(t, "the abandoned call to return", func() bool { return eng.Abandoned() == 0 })
			h.roundTrip(t, get("/s"))
			s := h.snapshot(t, "s", 3)
			// The hung side's calls: two candidates, and the noise sample's
			// second call of the third copy (the legacy twin for a legacy
			// candidate, the determinism check for a Go one).
			twins := s.Latency.Ported.Twins
			if primary == routes.SidePorted {
				twins = s.Latency.Legacy.Twins
			}
			if s.Counts.Match != 1 || s.Counts.Errors != 1 || entered.Load() != 2+int64(twins) {
				t.Errorf("counts %+v after %d calls (%d twins), want the third copy compared by the replacement worker", s.Counts, entered.Load(), twins)
			}
			if err := dl.Close(); err != nil {
				t.Fatal(err)
			}
			diffsMu.Lock()
			defer diffsMu.Unlock()
			if !strings.Contains(diffs.String(), "past shadow.timeout") {
				t.Errorf("diff log lacks the timeout: %s", diffs.String())
			}
		})
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

// Shadowing records what the Go candidate would have published and
// compares it with the line the monolith wrote to its events file; the
// event ids (UUIDs) and times of receipt are learned as generated and clock
// values from the legacy side's answers and lines, with no rule.
func TestShadowComparesPublishedEvents(t *testing.T) {
	dir := t.TempDir()
	eventsFile := filepath.Join(dir, "forwarded-events.jsonl")
	var mu sync.Mutex
	n := 0
	php := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		drainBody(ctx)
		mu.Lock()
		defer mu.Unlock()
		n++
		id := testUUID()
		f, err := os.OpenFile(eventsFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		fmt.Fprintf(f, `{"event_id":%q,"received_at":%q,"user_id":"u_1","amount":25.5}`+"\n", id, time.Now().UTC().Format("2006-01-02T15:04:05.000Z"))
		f.Close()
		jsonAnswer(ctx, 202, fmt.Sprintf(`{"status":"accepted","event_id":%q}`, id))
		return nil
	})
	tests := []struct {
		name   string
		amount string
		want   compare.Outcome
		path   string
	}{
		{"same event", "25.5", compare.OutcomeNoiseOnly, ""},
		{"different event", "25.49", compare.OutcomeMismatch, "published.amount"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := shadow.NewRecordingSink(0)
			var m atomic.Int64
			goIntake := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
				m.Add(1)
				id := testUUID()
				_ = rec.Publish(ctx, delivery.Message{EventID: id, Key: []byte("u_1"),
					Value: []byte(fmt.Sprintf(`{"event_id":%q,"received_at":%q,"user_id":"u_1","amount":%s}`, id, time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), tt.amount))})
				jsonAnswer(ctx, 202, fmt.Sprintf(`{"status":"accepted","event_id":%q}`, id))
				return nil
			})
			const reqs = 25
			s := shadowIntake(t, php, goIntake, rec, &routes.ShadowConfig{LegacyEventsFile: eventsFile}, reqs)
			switch tt.want {
			case compare.OutcomeNoiseOnly:
				if s.Counts.Mismatch != 0 || s.SideEffects.Compared != reqs {
					t.Errorf("counts %+v side effects %+v diffs %+v, want no mismatch and every message compared", s.Counts, s.SideEffects, s.TopDiffs)
				}
			case compare.OutcomeMismatch:
				if s.Counts.Mismatch != reqs || len(s.TopDiffs) == 0 || s.TopDiffs[0].Template != tt.path {
					t.Errorf("counts %+v diffs %+v, want every request a mismatch at %s", s.Counts, s.TopDiffs, tt.path)
				}
			}
		})
	}
}

// A budget breached sends the route to legacy: the Go side is no longer
// called, the route says so in metrics, logs and the report, and it stays
// there until re-enabled.
func TestBudgetBreachDemotesToLegacy(t *testing.T) {
	tests := []struct {
		name    string
		route   routes.RouteConfig
		goSide  routes.Handler
		request string
	}{
		{
			name:  "shadow mismatch rate",
			route: shadowRoute("r", "/r", "GET", nil),
			goSide: routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
				jsonAnswer(ctx, 200, `{"v":2}`)
				return nil
			}),
		},
		{
			name:  "canary error rate",
			route: routes.RouteConfig{Name: "r", Path: "/r", Mode: routes.ModeCanary, Handler: "h", Canary: &routes.CanaryConfig{Percent: pct(100)}},
			goSide: routes.HandlerFunc(func(*fasthttp.RequestCtx) error {
				return fmt.Errorf("go side broke")
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var goCalls atomic.Int64
			goSide := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
				goCalls.Add(1)
				return tt.goSide.Serve(ctx)
			})
			reg := routes.Registry{"h": goSide}
			rc := tt.route
			rc.Budgets = &routes.Budgets{MaxMismatchRate: 0.1, MaxErrorRate: 0.1, MinSamples: 5}
			h := newHarness(t, harnessOptions{
				cfg: Config{Shadow: ShadowConfig{BudgetInterval: 10 * time.Millisecond}},
				legacy: routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
					jsonAnswer(ctx, 200, `{"v":1}`)
					return nil
				}),
				routes: []routes.RouteConfig{rc}, reg: reg,
				plane: func(o *control.Options) { o.ShadowRegistry = reg },
			})
			for range 10 {
				h.roundTrip(t, get("/r"))
			}
			waitFor(t, "demotion", func() bool {
				return gaugeValue(t, h.reg, "strangler_route_demoted", map[string]string{"route": "r"}) == 1
			})
			h.access.take(t)
			waitFor(t, "the shadow pool to settle", func() bool { return h.srv.engine.InFlight() == 0 })
			before := goCalls.Load()
			for range 5 {
				if r := h.roundTrip(t, get("/r")); r.status != 200 || r.body != `{"v":1}` {
					t.Fatalf("demoted route answered %d %q, want legacy's", r.status, r.body)
				}
			}
			if goCalls.Load() != before {
				t.Errorf("Go side called %d times after the demotion", goCalls.Load()-before)
			}
			for _, l := range h.access.take(t) {
				if l["mode"] != modeDemoted || l["backend"] != backendLegacy {
					t.Errorf("access line mode=%v backend=%v, want demoted legacy", l["mode"], l["backend"])
				}
			}
			if !strings.Contains(h.logs.text(), "route demoted to legacy") {
				t.Error("no log line for the demotion")
			}
			rep := h.report(t)
			if st := rep.Routes[0]; !st.Demoted || st.EffectiveMode != routes.ModeLegacy || st.DemotedReason == "" {
				t.Errorf("report route %+v, want demoted with a reason", st.RouteStatus)
			}

			was, err := h.plane.Reenable("r")
			if err != nil || !was {
				t.Fatalf("Reenable = %v, %v", was, err)
			}
			if _, err := h.plane.Reenable("nope"); err == nil {
				t.Error("Reenable of an unknown route succeeded")
			}
			h.roundTrip(t, get("/r"))
			waitFor(t, "the Go side called again", func() bool { return goCalls.Load() > before })
			if g := gaugeValue(t, h.reg, "strangler_route_demoted", map[string]string{"route": "r"}); g != 0 {
				t.Errorf("demoted gauge %v after re-enable", g)
			}
		})
	}
}

// gaugeValue reads the gauge series of reg with these labels; -1 if none.
func gaugeValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	m := findMetric(t, reg, name, labels)
	if m == nil {
		return -1
	}
	return m.GetGauge().GetValue()
}

// counterValue reads the counter series of reg with these labels; -1 if
// none.
func counterValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	m := findMetric(t, reg, name, labels)
	if m == nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

func findMetric(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return m
		}
	}
	return nil
}

// Unmatched requests are counted by template for the report.
func TestUnmatchedPathsAreCounted(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for i := range 5 {
		h.roundTrip(t, get(fmt.Sprintf("/users/%d", 100+i)))
	}
	h.roundTrip(t, get("/about"))
	top, total := h.srv.stats.UnmatchedTop(5)
	if total != 6 || len(top) != 2 || top[0].Template != "GET /users/{id}" || top[0].Count != 5 {
		t.Errorf("unmatched %+v total %d", top, total)
	}
}

// A captured request is written redacted — credentials, secret query
// values, the body's e-mail addresses masked to the same form — with the
// legacy answer (its time window, secrets redacted) and the line the
// legacy side published for it, and reads back as the same request.
func TestCaptureWritesRedactedRequests(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "capture.jsonl")
	events := filepath.Join(dir, "forwarded.jsonl")
	var seen []string
	legacySide := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		b := ctx.PostBody()
		if bs := ctx.RequestBodyStream(); bs != nil {
			b, _ = io.ReadAll(bs)
		}
		seen = append(seen, string(b))
		if ctx.IsPost() {
			f, err := os.OpenFile(events, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			fmt.Fprintf(f, `{"event_id":"ev-%d","email_sha256":"h4sh","amount":1}`+"\n", len(seen))
			f.Close()
			streamAnswer(ctx, 202, fmt.Sprintf(`{"status":"accepted","event_id":"ev-%d","owner_token":"t0p"}`, len(seen)))
			return nil
		}
		ctx.SetBodyString("ok")
		return nil
	})
	h := newHarness(t, harnessOptions{
		legacy: legacySide,
		routes: []routes.RouteConfig{{Name: "events", Path: "/events", Capture: &routes.CaptureConfig{Percent: 100, File: file},
			Shadow: &routes.ShadowConfig{LegacyEventsFile: events}}},
	})
	body := `{"type":"purchase","email":"a@example.com"}`
	h.roundTrip(t, fmt.Sprintf("POST /events?token=s3cret&x=1 HTTP/1.1\r\nHost: shop.example\r\nCookie: PHPSESSID=qsess\r\nAuthorization: Bearer xyz\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
	h.roundTrip(t, get("/events"))
	h.roundTrip(t, get("/elsewhere"))
	if len(seen) != 3 || seen[0] != body {
		t.Fatalf("legacy saw bodies %q: the capture changed the request", seen)
	}
	recs := waitRecords(t, file, 2)
	r := recs[0]
	raw, _ := json.Marshal(r)
	// Every secret has a letter past f: the record's request id is hex
	// and must not spell one by chance.
	for _, secret := range []string{"qsess", "xyz", "s3cret", "a@example.com", "t0p", "h4sh"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("record %s holds the secret %q", raw, secret)
		}
	}
	masked := `{"type":"purchase","email":"x@xxxxxxx.xxx"}`
	if r.Route != "events" || r.Method != "POST" || r.Body != masked || !strings.Contains(r.URI, "x=1") {
		t.Errorf("record %+v", r)
	}
	a := r.Answer
	if a == nil || a.Status != 202 || a.Body != `{"status":"accepted","event_id":"ev-1","owner_token":"[redacted]"}` ||
		a.Start.IsZero() || a.End.Before(a.Start) || string(r.Published) != `{"event_id":"ev-1","email_sha256":"[redacted]","amount":1}` {
		t.Errorf("answer %+v published %s", a, r.Published)
	}
	var req fasthttp.Request
	r.Request(&req)
	if string(req.Body()) != masked || req.Header.ContentLength() != len(masked) || string(req.Header.Host()) != "shop.example" || string(req.Header.ContentType()) != "application/json" {
		t.Errorf("replayed request:\n%s", req.String())
	}
	if recs[1].Answer == nil || recs[1].Answer.Body != "ok" {
		t.Errorf("GET answer %+v", recs[1].Answer)
	}
}

// A Go handler that returns its validation errors in a random order is
// not deterministic: a finding, counted as a mismatch, never learned as
// noise (the Go side is never its own noise twin).
func TestShadowNondeterministicGoIsAFinding(t *testing.T) {
	errs := []string{`{"field":"a","code":"x"}`, `{"field":"b","code":"y"}`, `{"field":"c","code":"z"}`}
	php := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		drainBody(ctx)
		jsonAnswer(ctx, 422, `{"status":"rejected","errors":[`+strings.Join(errs, ",")+`]}`)
		return nil
	})
	var n atomic.Int64
	goSide := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		e := slices.Clone(errs)
		if n.Add(1)%2 == 0 { // a map iteration's order, say
			e[0], e[2] = e[2], e[0]
		}
		jsonAnswer(ctx, 422, `{"status":"rejected","errors":[`+strings.Join(e, ",")+`]}`)
		return nil
	})
	reg := routes.Registry{"h": goSide}
	h := newHarness(t, harnessOptions{
		legacy: php,
		routes: []routes.RouteConfig{shadowRoute("events", "/events", "POST", nil)},
		reg:    reg,
		plane:  func(o *control.Options) { o.ShadowRegistry = reg },
	})
	const reqs = 40
	for range reqs {
		h.roundTrip(t, "POST /events HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
	}
	s := h.snapshot(t, "events", reqs)
	if s.Counts.NoiseOnly != 0 || s.Counts.Mismatch == 0 || len(s.Noise) != 0 {
		t.Fatalf("counts %+v noise %+v: the reordering must be a mismatch, never noise", s.Counts, s.Noise)
	}
	var nd bool
	for _, g := range s.TopDiffs {
		if g.Template == "body.errors" && g.Kinds[compare.KindNondeterministic] > 0 {
			nd = true
		}
	}
	if !nd {
		t.Fatalf("top diffs %+v, want body.errors found not deterministic", s.TopDiffs)
	}
}

// A Go intake that publishes, with no working source of what the legacy
// side published: the report says its side effects were not compared,
// and the verdict is "not ready". A stale events file that never holds
// the legacy side's lines says so too, instead of flagging every event.
func TestShadowSideEffectsNotCompared(t *testing.T) {
	stale := filepath.Join(t.TempDir(), "stale.jsonl")
	if err := os.WriteFile(stale, []byte(`{"event_id":"old-1"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, file, reason string
	}{
		{"no source", "", "no source of the legacy side's published messages"},
		{"missing file", filepath.Join(t.TempDir(), "typo.jsonl"), "no such file"},
		{"stale file", stale, "has yielded none"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			php := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
				drainBody(ctx)
				jsonAnswer(ctx, 202, fmt.Sprintf(`{"status":"accepted","event_id":%q}`, testUUID()))
				return nil
			})
			rec := shadow.NewRecordingSink(0)
			goIntake := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
				id := testUUID()
				_ = rec.Publish(ctx, delivery.Message{EventID: id, Value: []byte(fmt.Sprintf(`{"event_id":%q}`, id))})
				jsonAnswer(ctx, 202, fmt.Sprintf(`{"status":"accepted","event_id":%q}`, id))
				return nil
			})
			const reqs = 25
			s := shadowIntake(t, php, goIntake, rec, &routes.ShadowConfig{LegacyEventsFile: tt.file}, reqs)
			if s.SideEffects.Uncompared != reqs || !strings.Contains(s.SideEffects.Reason, tt.reason) || s.Counts.Mismatch != 0 {
				t.Fatalf("side effects %+v counts %+v, want %d uncompared because %q", s.SideEffects, s.Counts, reqs, tt.reason)
			}
			v := s.Verdict(shadowreport.Thresholds{TargetMismatchRate: 0.5})
			if v.Ready || !strings.Contains(strings.Join(v.Reasons, ";"), "side effects not compared") {
				t.Fatalf("verdict %+v, want not ready for the side effects", v)
			}
			if v := s.Verdict(shadowreport.Thresholds{TargetMismatchRate: 0.5, AllowUncomparedSideEffects: true}); !slices.ContainsFunc(v.Checks, func(c shadowreport.Check) bool { return c.Name == "side effects" && c.OK }) {
				t.Fatalf("verdict %+v, want the side-effects check to pass when allowed", v)
			}
		})
	}
}

// shadowIntake shadows an intake route (legacy php, Go goIntake
// publishing into rec) under sc, posts reqs events and returns the
// route's figures once every one is judged.
func shadowIntake(t *testing.T, php, goIntake routes.Handler, rec *shadow.RecordingSink, sc *routes.ShadowConfig, reqs uint64) shadowreport.Snapshot {
	t.Helper()
	reg := routes.Registry{"h": goIntake}
	h := newHarness(t, harnessOptions{
		legacy: php,
		routes: []routes.RouteConfig{shadowRoute("events", "/events", "POST", sc)},
		reg:    reg,
		mod:    func(o *Options) { o.Recorded = rec },
		plane:  func(o *control.Options) { o.ShadowRegistry = reg },
	})
	for range reqs {
		h.roundTrip(t, "POST /events HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
	}
	return h.snapshot(t, "events", reqs)
}

// lateTopic is a topic source whose messages arrive after the answer, as
// a log shipper publishes them.
type lateTopic struct {
	mu      sync.Mutex
	waiting map[string]func([]byte, bool)
	found   atomic.Uint64
	since   time.Time
}

func (l *lateTopic) Take(string) ([]byte, bool) { return nil, false }
func (l *lateTopic) Health() string             { return "" }
func (l *lateTopic) Found() uint64              { return l.found.Load() }
func (l *lateTopic) Name() string               { return "the test topic" }
func (l *lateTopic) Close() error               { return nil }
func (l *lateTopic) Wait() time.Duration        { return 5 * time.Second }
func (l *lateTopic) ReadySince() time.Time      { return l.since }
func (l *lateTopic) Await(key string, _ time.Time, fn func([]byte, bool)) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waiting[key] = fn
	return true
}

// deliver publishes the message of key, as the shipper would, later.
func (l *lateTopic) deliver(key string, msg []byte) bool {
	l.mu.Lock()
	fn := l.waiting[key]
	delete(l.waiting, key)
	l.mu.Unlock()
	if fn == nil {
		return false
	}
	l.found.Add(1)
	fn(msg, true)
	return true
}

// With the legacy side's messages on a topic, a comparison waits for its
// message, off the worker pool, and is recorded when it arrives.
func TestShadowWaitsForTheLegacyTopic(t *testing.T) {
	topic := &lateTopic{waiting: map[string]func([]byte, bool){}, since: time.Now()}
	var mu sync.Mutex
	sent := map[string][]byte{}
	php := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		drainBody(ctx)
		id := testUUID()
		mu.Lock()
		sent[id] = []byte(fmt.Sprintf(`{"event_id":%q,"amount":1}`, id))
		mu.Unlock()
		jsonAnswer(ctx, 202, fmt.Sprintf(`{"status":"accepted","event_id":%q}`, id))
		return nil
	})
	rec := shadow.NewRecordingSink(0)
	goIntake := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		id := testUUID()
		_ = rec.Publish(ctx, delivery.Message{EventID: id, Value: []byte(fmt.Sprintf(`{"event_id":%q,"amount":2}`, id))})
		jsonAnswer(ctx, 202, fmt.Sprintf(`{"status":"accepted","event_id":%q}`, id))
		return nil
	})
	reg := routes.Registry{"h": goIntake}
	h := newHarness(t, harnessOptions{
		legacy: php,
		routes: []routes.RouteConfig{shadowRoute("events", "/events", "POST", &routes.ShadowConfig{LegacyEventsTopic: &routes.LegacyTopic{Topic: "legacy"}})},
		reg:    reg,
		mod:    func(o *Options) { o.Recorded = rec },
		plane: func(o *control.Options) {
			o.ShadowRegistry = reg
			o.LegacyTopic = func(routes.LegacyTopic, string) (control.LegacySource, error) { return topic, nil }
		},
	})
	const reqs = 25
	for range reqs {
		h.roundTrip(t, "POST /events HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
	}
	waitFor(t, "every comparison waiting", func() bool {
		topic.mu.Lock()
		defer topic.mu.Unlock()
		return len(topic.waiting) == reqs
	})
	if c := h.srv.stats.Lookup("events").Snapshot().Counts; c.Compared+c.Pending != 0 {
		t.Fatalf("counts %+v before any message arrived", c)
	}
	mu.Lock()
	for id, msg := range sent {
		if !topic.deliver(id, msg) {
			t.Errorf("nobody waited for %s", id)
		}
	}
	mu.Unlock()
	s := h.snapshot(t, "events", reqs)
	if s.SideEffects.Compared != reqs || len(s.TopDiffs) == 0 || s.TopDiffs[0].Template != "published.amount" {
		t.Fatalf("side effects %+v, top diffs %+v: want every message compared and amount differing", s.SideEffects, s.TopDiffs)
	}
}

// exampleDiffs renders the differences of each group's examples, with
// what explained or did not explain them, for a failure message.
func exampleDiffs(groups []shadowreport.Group) string {
	var b strings.Builder
	for _, g := range groups {
		for _, ex := range g.Examples {
			fmt.Fprintf(&b, "example %s:", ex.Time.Format(time.RFC3339Nano))
			for _, d := range ex.Diffs {
				fmt.Fprintf(&b, " [%s %s noise=%v by=%q pending=%v note=%q]", d.Template, d.Kind, d.Noise, d.NoiseBy, d.Pending, d.Note)
			}
		}
	}
	return b.String()
}
