package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/legacy-passthrough"
	"github.com/strangler-proxy/strangler/ported/hotcache"
	"github.com/strangler-proxy/strangler/proxy/capture"
	"github.com/strangler-proxy/strangler/proxy/control"
	"github.com/strangler-proxy/strangler/proxy/shadow"
	"github.com/strangler-proxy/strangler/proxy/shadowreport"
	"github.com/strangler-proxy/strangler/routes"
)

// compareSynopsis and compareAbout are the compare command's usage.
const (
	compareSynopsis = `-capture FILE -route NAME [-config config.yaml] [-out report.html]
                         [-concurrency N] [-target-mismatch-rate R] [-live [-legacy URL] [-allow-unsafe]]`
	compareAbout = `Replays a capture (written by a route's capture block) to the route's Go
handler (in process, with shadow dependencies: nothing is published) and
compares each answer, and what Go would have published, with the legacy
answer and message the capture recorded, as the shadow mode does: nothing is
sent to the monolith. With -live the monolith answers again instead (safe
methods only, unless -allow-unsafe: a replayed POST runs its side effects
again). Writes the HTML report and exits 0 when the route is ready to flip,
1 when it is not, 2 when the run itself failed.`
)

// compareFlags are the compare command's settings.
type compareFlags struct {
	config, capture, route, legacy, out string
	concurrency                         int
	targetRate                          float64
	live, allowUnsafe                   bool
}

func parseCompareFlags(args []string, stdout, stderr io.Writer) (compareFlags, int, bool) {
	var f compareFlags
	fs := flags("compare", compareSynopsis, compareAbout)
	fs.StringVar(&f.config, "config", defaultConfig, "config file: the route table, the legacy timeouts, the hot cache")
	fs.StringVar(&f.capture, "capture", "", "capture file (JSONL) to replay; required")
	fs.StringVar(&f.route, "route", "", "route to compare; required")
	fs.StringVar(&f.legacy, "legacy", "", "with -live: the monolith's base URL (default: the config's legacy.upstream or upstreams)")
	fs.BoolVar(&f.live, "live", false, "ask the monolith again instead of comparing with the recorded legacy answers")
	fs.BoolVar(&f.allowUnsafe, "allow-unsafe", false, "with -live: also send POST, PUT, PATCH, DELETE... to the monolith (their side effects happen again)")
	fs.StringVar(&f.out, "out", "report.html", "HTML report to write")
	fs.IntVar(&f.concurrency, "concurrency", 4, "requests replayed at once")
	fs.Float64Var(&f.targetRate, "target-mismatch-rate", 0, "override the route's verdict.target_mismatch_rate (0: keep it); ready needs 3/rate clean comparisons")
	if code, ok := parse(fs, args, stdout, stderr); !ok {
		return f, code, false
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "strangler compare: unexpected arguments %q\n", fs.Args())
	case f.capture == "" || f.route == "":
		fmt.Fprintln(stderr, "strangler compare: -capture and -route are required")
	case f.concurrency < 1:
		fmt.Fprintln(stderr, "strangler compare: -concurrency must be at least 1")
	case !f.live && (f.legacy != "" || f.allowUnsafe):
		fmt.Fprintln(stderr, "strangler compare: -legacy and -allow-unsafe go with -live")
	default:
		return f, 0, true
	}
	fs.SetOutput(stderr)
	fs.Usage()
	return f, exitUsage, false
}

// compareCmd runs `strangler compare`.
func compareCmd(args []string, stdout, stderr io.Writer) int {
	f, code, ok := parseCompareFlags(args, stdout, stderr)
	if !ok {
		return code
	}
	r, err := newReplay(f, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "strangler compare: %v\n", err)
		return exitRunError
	}
	defer r.close()
	if err := r.run(); err != nil {
		fmt.Fprintf(stderr, "strangler compare: %v\n", err)
		return exitRunError
	}
	return r.finish(stdout, stderr)
}

// replay is one compare run: the route's sides, the engine that compares
// them, the figures.
type replay struct {
	f       compareFlags
	stderr  io.Writer
	table   *routes.Table
	route   *routes.Route
	fwd     *legacy.Forwarder
	cache   *hotcache.Cache
	stats   *shadowreport.Stats
	engine  *shadow.Engine
	sr      *shadow.Route
	events  *shadow.EventsFile
	memory  *shadow.Memory // offline: what the capture recorded the legacy side published
	total   int
	th      shadowreport.Thresholds
	replays int
}

func newReplay(f compareFlags, stderr io.Writer) (_ *replay, err error) {
	c, v, err := loadConfig(f.config)
	if err != nil {
		return nil, errors.Join(append([]error{fmt.Errorf("config %s", f.config)}, toErrors(problems(err))...)...)
	}
	r := &replay{f: f, stderr: stderr}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if r.total, err = countRecords(f.capture, f.route); err != nil {
		return nil, err
	}
	log := zap.NewNop()
	r.cache, err = hotcache.New(context.Background(), hotcache.Options{Config: c.HotCache, Logger: log, Registerer: prometheus.NewRegistry()})
	if err != nil {
		return nil, fmt.Errorf("hot cache: %w", err)
	}
	rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.cache.Refresh(rctx); err != nil {
		return nil, fmt.Errorf("load campaigns from %s: %w", c.HotCache.Source, err)
	}
	rec := shadow.NewRecordingSink(0)
	reg, err := registry(handlerDeps{Events: c.Events, Sink: rec, Keys: rec.Keys(c.Spool.IdempotencyWindow), Campaigns: r.cache, Logger: log})
	if err != nil {
		return nil, err
	}
	if r.table, err = loadRoutes(v, reg); err != nil {
		return nil, errors.Join(append([]error{errors.New("routes")}, toErrors(problems(err))...)...)
	}
	for _, rt := range r.table.Routes() {
		if rt.Name == f.route {
			r.route = rt
		}
	}
	switch {
	case r.route == nil:
		return nil, fmt.Errorf("no route %q in %s", f.route, f.config)
	case r.route.Handler == nil:
		return nil, fmt.Errorf("route %q has no Go handler to compare", f.route)
	}

	if f.live {
		lc := c.Legacy
		if f.legacy != "" {
			lc.Upstream, lc.Upstreams = f.legacy, nil
		}
		lc.MaxConns = max(lc.MaxConns, 2*f.concurrency)
		lc.NoTunnels = true // replayed requests have no client connection to hand over
		if r.fwd, err = legacy.New(lc, log, prometheus.NewRegistry()); err != nil {
			return nil, fmt.Errorf("legacy: %w", err)
		}
	}
	if r.stats, err = shadowreport.New(shadowreport.Options{
		Registerer: prometheus.NewRegistry(), Noise: c.Proxy.Shadow.Noise, Store: c.Proxy.Shadow.Store,
	}); err != nil {
		return nil, err
	}
	if r.engine, err = shadow.New(shadow.Options{Workers: f.concurrency, Queue: f.concurrency, Recorded: rec, IdempotencyWindow: c.Spool.IdempotencyWindow}); err != nil {
		return nil, err
	}
	r.engine.Start()

	sh := r.route.Shadow
	if sh == nil {
		// No shadow block: compare with the defaults a shadow block has.
		sh = mustCompileShadow()
	}
	r.sr = &shadow.Route{
		Name: r.route.Name, Primary: routes.SideLegacy,
		Candidate: r.route.Handler, GoTwin: r.route.Handler, KeyPath: sh.KeyPath,
		Timeout: sh.Timeout, MaxBody: sh.MaxBodyBytes,
		Comparator: sh.Comparator(), Collector: r.stats.Route(r.route.Name),
	}
	r.sr.Collector.SetRules(shadowreport.RulesOf(sh.Comparator(), sh.Rules()))
	switch {
	case !f.live:
		// The capture's recorded answers, redacted when captured: the Go
		// side's are redacted alike before comparing.
		r.memory = shadow.NewMemory("the capture "+f.capture, 0)
		r.sr.LegacyEvents, r.sr.Redact = r.memory, true
	case sh.LegacyEventsFile != "":
		r.sr.LegacyTwin = r.fwd
		r.events = shadow.NewEventsFile(sh.LegacyEventsFile, sh.KeyPath, 0)
		r.sr.LegacyEvents = r.events
	default:
		r.sr.LegacyTwin = r.fwd
	}
	if v := r.route.Verdict; v != nil {
		r.th = control.ThresholdsOf(v)
	}
	if f.targetRate > 0 {
		r.th.TargetMismatchRate = f.targetRate
	}
	return r, nil
}

// mustCompileShadow is a shadow block with every default, compiled.
func mustCompileShadow() *routes.ShadowConfig {
	t, err := routes.Compile(routes.Config{Routes: []routes.RouteConfig{{Name: "x", Path: "/", Shadow: &routes.ShadowConfig{}}}}, nil)
	if err != nil {
		panic(err) // the defaults always compile
	}
	return t.Routes()[0].Shadow
}

func toErrors(msgs []string) []error {
	out := make([]error, len(msgs))
	for i, m := range msgs {
		out[i] = errors.New(m)
	}
	return out
}

// countRecords counts the route's records in a capture, for the progress
// bar; it also checks the whole file parses before anything is replayed.
func countRecords(path, route string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("capture: %w", err)
	}
	defer f.Close()
	n := 0
	err = capture.Read(bufio.NewReader(f), func(rec capture.Record) error {
		if rec.Route == "" || rec.Route == route {
			n++
		}
		return nil
	})
	return n, err
}

// run replays every record of the capture with f.concurrency workers and
// waits for every comparison.
func (r *replay) run() error {
	file, err := os.Open(r.f.capture)
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	defer file.Close()

	records := make(chan capture.Record, r.f.concurrency)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		done int
	)
	bar := newProgress(r.stderr, r.f.route, r.total)
	for range r.f.concurrency {
		wg.Go(func() {
			for rec := range records {
				r.one(rec)
				mu.Lock()
				done++
				bar.set(done)
				mu.Unlock()
			}
		})
	}
	readErr := capture.Read(bufio.NewReader(file), func(rec capture.Record) error {
		if rec.Route != "" && rec.Route != r.f.route {
			return nil // a file shared by routes
		}
		records <- rec
		return nil
	})
	close(records)
	wg.Wait()
	r.replays = done
	// Every job is queued now; Close waits for the comparisons.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	closeErr := r.engine.Close(ctx)
	bar.finish(done)
	return errors.Join(readErr, closeErr)
}

// Skip reasons of an offline run.
const (
	skipNoAnswer  = "no_recorded_answer" // the Go side answered when it was captured, or legacy failed
	skipUnsafe    = "unsafe_method"      // -live without -allow-unsafe
	skipPublished = "published_unknown"  // the legacy side's message did not arrive in time to be captured
)

// one replays a record through the same engine the shadow mode uses, the
// Go handler as the candidate: against the recorded legacy answer, or with
// -live against the monolith's answer now.
func (r *replay) one(rec capture.Record) {
	var req fasthttp.Request
	rec.Request(&req)
	var remote net.Addr = &net.TCPAddr{IP: net.ParseIP(rec.Remote)}
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(&req, remote, nil)
	ctx.Response.Header.DisableNormalizing()
	ctx.Response.Header.SetNoDefaultContentType(true)
	defer func() {
		ctx.Request.Reset()
		ctx.Response.Reset()
	}()
	// As at the front door: matching records the route, whose path
	// parameters the job's candidate reads from its copy of the request.
	r.table.Match(ctx)
	c := r.sr.Collector
	if !r.f.live {
		r.recorded(ctx, rec)
		return
	}
	if !safeRequest(ctx) && !r.f.allowUnsafe {
		c.Skipped(skipUnsafe)
		return
	}
	start := time.Now()
	job, reason := r.engine.BeginWait(context.Background(), ctx, r.sr)
	var err error
	if job == nil {
		c.Skipped(reason)
		err = r.fwd.Serve(ctx)
	} else {
		err = job.Serve(ctx, r.fwd)
	}
	status := ctx.Response.StatusCode()
	if err == nil {
		// Read the answer as a client would; closing the stream hands the
		// job to the pool.
		if bs := ctx.Response.BodyStream(); bs != nil {
			_, err = io.Copy(io.Discard, bs)
		}
	}
	_ = ctx.Response.CloseBodyStream()
	c.Served(routes.SideLegacy, time.Since(start), err != nil || status >= 500)
}

// recorded compares the Go side with the answer the capture recorded.
func (r *replay) recorded(ctx *fasthttp.RequestCtx, rec capture.Record) {
	c := r.sr.Collector
	a := rec.Answer
	switch {
	case a == nil:
		c.Skipped(skipNoAnswer)
		return
	case rec.PublishedUnknown:
		c.Skipped(skipPublished)
		return
	}
	if len(rec.Published) > 0 {
		if key, ok := compare.Lookup(a.BodyBytes(), r.sr.KeyPath); ok && key != "" {
			r.memory.Put(key, rec.Published)
		}
	}
	job, reason := r.engine.BeginWait(context.Background(), ctx, r.sr)
	if job == nil {
		c.Skipped(reason)
		return
	}
	job.UseWindow(compare.Window{Start: a.Start, End: a.End})
	err := job.Serve(ctx, recordedAnswer{a})
	c.Served(routes.SideLegacy, a.End.Sub(a.Start), err != nil || a.Status >= 500)
}

// recordedAnswer answers with a captured legacy answer.
type recordedAnswer struct{ a *capture.Answer }

func (h recordedAnswer) Serve(ctx *fasthttp.RequestCtx) error {
	ctx.Response.SetStatusCode(h.a.Status)
	for _, kv := range h.a.Header {
		if strings.EqualFold(kv[0], "Content-Length") || strings.EqualFold(kv[0], "Transfer-Encoding") {
			continue // the body below frames itself
		}
		ctx.Response.Header.Add(kv[0], kv[1])
	}
	ctx.Response.SetBody(h.a.BodyBytes())
	return nil
}

// safeRequest: RFC 9110 §9.2.1.
func safeRequest(ctx *fasthttp.RequestCtx) bool {
	return ctx.IsGet() || ctx.IsHead() || ctx.IsOptions() || ctx.IsTrace()
}

// finish writes the report and prints the verdict; the exit code says it.
func (r *replay) finish(stdout, stderr io.Writer) int {
	src := replaySource{r}
	h := shadowreport.NewHandler(src, r.stats)
	var buf bytes.Buffer
	if err := h.WriteHTML(&buf, ""); err != nil {
		fmt.Fprintf(stderr, "strangler compare: %v\n", err)
		return exitRunError
	}
	if err := os.WriteFile(r.f.out, buf.Bytes(), 0o644); err != nil {
		fmt.Fprintf(stderr, "strangler compare: write report: %v\n", err)
		return exitRunError
	}
	snap := r.sr.Collector.Snapshot()
	v := snap.Verdict(r.th)
	k := snap.Counts
	against := "the recorded legacy answers"
	if r.f.live {
		against = "the monolith"
	}
	fmt.Fprintf(stdout, "%s: %d replayed against %s, %d compared: %d match, %d noise only, %d accepted, %d mismatch, %d pending, %d errors, %d skipped; match rate %s\n",
		r.f.route, r.replays, against, k.Compared, k.Match, k.NoiseOnly, k.Accepted, k.Mismatch, k.Pending, k.Errors, k.Skipped, shadowreport.Percent(snap.MatchRate))
	for reason, n := range snap.SkipReasons {
		fmt.Fprintf(stdout, "  skipped %s: %d\n", reason, n)
	}
	for i, g := range snap.TopDiffs {
		if i == 5 {
			break
		}
		fmt.Fprintf(stdout, "  %s: %d mismatches\n", g.Template, g.Count)
	}
	fmt.Fprintf(stdout, "report: %s\n", r.f.out)
	if !v.Ready {
		fmt.Fprintf(stdout, "verdict: NOT READY to flip: %s\n", strings.Join(v.Reasons, "; "))
		return exitFinding
	}
	fmt.Fprintf(stdout, "verdict: ready to flip: mismatch rate %s\n", v.Confidence)
	return exitOK
}

// replaySource shows the compared route alone.
type replaySource struct{ r *replay }

func (s replaySource) AllLegacy() bool { return false }

func (s replaySource) Routes() []shadowreport.RouteStatus {
	for i, ri := range s.r.table.Describe() {
		if s.r.table.Routes()[i] == s.r.route {
			return []shadowreport.RouteStatus{{RouteInfo: ri, Thresholds: s.r.th}}
		}
	}
	return nil
}

func (r *replay) close() {
	if r.fwd != nil {
		r.fwd.Close()
	}
	if r.events != nil {
		_ = r.events.Close()
	}
	if r.engine != nil {
		_ = r.engine.Close(context.Background())
	}
}

// progress draws a progress bar on a terminal line, at most every 100ms.
type progress struct {
	w     io.Writer
	label string
	total int
	last  time.Time
}

func newProgress(w io.Writer, label string, total int) *progress {
	p := &progress{w: w, label: label, total: total}
	p.draw(0)
	return p
}

func (p *progress) set(done int) {
	if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond || done == p.total {
		p.last = now
		p.draw(done)
	}
}

func (p *progress) draw(done int) {
	const width = 30
	frac := 1.0
	if p.total > 0 {
		frac = min(1, float64(done)/float64(p.total))
	}
	fill := int(frac * width)
	fmt.Fprintf(p.w, "\rcompare %s [%s%s] %d/%d %3.0f%%", p.label,
		strings.Repeat("=", fill), strings.Repeat(" ", width-fill), done, p.total, frac*100)
}

func (p *progress) finish(done int) {
	p.draw(done)
	fmt.Fprintln(p.w)
}

// Interface guard: replaySource is the report's view of the run.
var _ shadowreport.Source = replaySource{}
