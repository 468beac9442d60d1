package shadow

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/proxy/shadowreport"
	"github.com/strangler-proxy/strangler/routes"
)

// Job is one shadowed request, from Begin to the recorded outcome. The
// front door only calls Serve on it; the engine recycles it.
type Job struct {
	engine *Engine
	route  *Route
	safe   bool

	// req is the candidate's request: the head copied in Begin, the body
	// set from reqTee once the primary has read it.
	req    fasthttp.Request
	remote net.Addr
	reqTee requestTee
	orig   io.Reader // the client's body stream reqTee replaced

	// The primary's answer: head in primaryResp, body in primaryBody
	// (legacy) or primaryResp's own body (Go).
	primaryResp fasthttp.Response
	primaryBody []byte
	primaryOver bool                 // the primary's body is longer than the cap
	streaming   bool                 // the primary's body is still on its way to the client
	observer    bodyObserver         // the forwarder reports the body here
	scratch     *fasthttp.RequestCtx // the fallback's, until its tee closes
	rtee        responseTee
	dead        string // a skip reason found while the body still streams

	candBody, twinBody []byte

	// pStart and pEnd are when the primary was called and when its whole
	// answer was in: its time window for clock values, and its latency
	// measured as the candidate's is.
	pStart, pEnd time.Time

	// params are where the path parameters of the route the front door
	// matched are, recorded again on the candidate's ctx: routes.Param
	// reads them from the candidate's copy of the request.
	params routes.Params
	// heads holds the compared request and response heads' strings,
	// copied out of fasthttp's buffers into one buffer the job keeps
	// between uses; hdrs are the three answers' header lists. The
	// comparison sees views into them, valid until the job is recycled:
	// the collector copies what it keeps (a mismatch's example, a diff
	// log entry), and a match keeps nothing, so it allocates nothing.
	heads    []byte
	hdrs     [4][][2]string
	goTwinBd []byte
	reqText  []byte

	// dl bounds each call by the route's timeout; it outlives recycling.
	dl deadline

	// idem is the request's Idempotency-Key while the job holds it in the
	// engine's retry memory (keys.go), "" otherwise; first, when set, is
	// what done remembers of it: the windows of a first answer.
	idem  string
	first *firstAnswer
}

// Indexes of Job.hdrs.
const (
	hdrPrimary = iota
	hdrCandidate
	hdrTwin
	hdrGoTwin
)

// Begin decides whether the request in ctx is copied for the candidate and,
// if so, reserves a pool slot, copies the request head and puts a tee in
// front of its body. It never blocks. It returns nil and the skip reason
// when the request is not shadowed; the caller counts the reason.
func (e *Engine) Begin(ctx *fasthttp.RequestCtx, r *Route) (*Job, string) {
	if reason := e.check(ctx, r); reason != "" {
		return nil, reason
	}
	if !e.reserve() {
		return nil, SkipPoolFull
	}
	return e.begin(ctx, r), ""
}

// BeginWait is Begin for offline replays: it waits for a free slot (until
// wait ends) instead of skipping.
func (e *Engine) BeginWait(wait context.Context, ctx *fasthttp.RequestCtx, r *Route) (*Job, string) {
	if reason := e.check(ctx, r); reason != "" {
		return nil, reason
	}
	select {
	case e.slots <- struct{}{}:
	case <-wait.Done():
		return nil, SkipShutdown
	}
	return e.begin(ctx, r), ""
}

// check returns why the request in ctx may not be shadowed, or "".
func (e *Engine) check(ctx *fasthttp.RequestCtx, r *Route) string {
	if r.Candidate == nil {
		return SkipNoCandidate
	}
	if e.stuck() {
		return SkipStuck
	}
	if r.candidateSide() == routes.SideLegacy && !safeMethod(ctx) && !r.AllowUnsafe {
		return SkipUnsafeMethod
	}
	n := ctx.Request.Header.ContentLength()
	// Body reads a stream to its end: only an in-memory body is measured.
	if n > r.MaxBody || (!ctx.Request.IsBodyStream() && len(ctx.Request.Body()) > r.MaxBody) {
		return SkipBodyTooLarge
	}
	return ""
}

// begin copies the request for a job whose slot is reserved.
func (e *Engine) begin(ctx *fasthttp.RequestCtx, r *Route) *Job {
	n := ctx.Request.Header.ContentLength()
	stream := ctx.Request.IsBodyStream() && (n > 0 || n == -1)
	safe := safeMethod(ctx)
	j := e.jobPool.Get().(*Job)
	j.engine, j.route, j.safe = e, r, safe
	// The body stream is not copied; an in-memory body is.
	ctx.Request.CopyTo(&j.req)
	j.remote = ctx.RemoteAddr()
	j.params = routes.ParamsOf(ctx)
	if stream {
		j.orig = ctx.Request.BodyStream()
		j.reqTee = requestTee{r: j.orig, buf: j.reqTee.buf[:0], max: r.MaxBody, attached: true}
		ctx.Request.SetBodyStream(&j.reqTee, n)
	}
	return j
}

// Serve runs the primary side h on ctx as if no shadow existed, and queues
// the job (now, or once a streamed answer has reached the client). It
// returns h's error; on error the job is dropped, counted as an error of
// the primary side.
func (j *Job) Serve(ctx *fasthttp.RequestCtx, h routes.Handler) error {
	var err error
	if j.pStart.IsZero() {
		j.pStart = j.engine.now()
	}
	switch ob, ok := h.(ObservedServer); {
	case j.route.Primary != routes.SideLegacy:
		err = h.Serve(ctx)
	case ok:
		j.observer.j = j
		j.streaming, err = ob.ServeObserved(ctx, &j.observer)
		if err == nil {
			ctx.Response.Header.CopyTo(&j.primaryResp.Header)
			if !j.streaming && ctx.Request.Header.IsGet() && ctx.Response.StatusCode() == fasthttp.StatusSwitchingProtocols {
				j.dead = SkipUpgrade
			}
		}
	default:
		err = j.serveScratch(ctx, h)
	}
	if j.orig != nil {
		// Hand the client's stream back, so nothing of the job stays
		// reachable from the request once the job is recycled.
		ctx.Request.SetBodyStream(j.orig, ctx.Request.Header.ContentLength())
		j.orig = nil
	}
	if err != nil {
		j.route.Collector.Errored(j.request(), j.route.Primary, err)
		j.finishPrimary("", true)
		return err
	}
	reason := ""
	switch {
	case !j.reqTee.attached:
	case j.reqTee.over:
		reason = SkipBodyTooLarge
	case !j.reqTee.complete():
		reason = SkipBodyUnread
	default:
		j.req.SetBodyRaw(j.reqTee.buf)
	}
	if j.streaming {
		// A legacy body is still to stream: the job is queued or dropped
		// when fasthttp closes the stream (bodyDone).
		j.dead = reason
		return nil
	}
	if reason == "" {
		reason = j.dead
	}
	if reason == "" && j.route.Primary == routes.SidePorted {
		switch {
		case ctx.Response.IsBodyStream():
			reason = SkipPrimaryStreamed
		case len(ctx.Response.Body()) > j.route.MaxBody:
			reason = SkipResponseTooBig
		default:
			ctx.Response.CopyTo(&j.primaryResp)
			j.primaryBody = j.primaryResp.Body()
		}
	}
	j.finishPrimary(reason, false)
	return nil
}

// finishPrimary queues the job, or drops it with reason (counted unless
// quiet).
func (j *Job) finishPrimary(reason string, quiet bool) {
	switch {
	case quiet:
		j.engine.done(j)
	case reason != "":
		j.skip(reason)
	default:
		if j.pEnd.IsZero() {
			j.pEnd = j.engine.now()
		}
		j.engine.submit(j)
	}
}

// UseWindow sets the primary's time window instead of measuring it: an
// offline run's primary is a recorded answer, produced when it was
// captured. Call it before Serve.
func (j *Job) UseWindow(w compare.Window) { j.pStart, j.pEnd = w.Start, w.End }

// skip counts reason and recycles the job.
func (j *Job) skip(reason string) {
	j.route.Collector.Skipped(reason)
	j.engine.done(j)
}

// serveScratch runs the legacy primary h into a scratch RequestCtx and
// moves its answer into ctx: the head by copy, the body stream behind a
// tee (see the package doc for why).
func (j *Job) serveScratch(ctx *fasthttp.RequestCtx, h routes.Handler) error {
	e := j.engine
	sc := e.acquireCtx(&j.req, j.remote)
	if j.reqTee.attached {
		sc.Request.SetBodyStream(&j.reqTee, ctx.Request.Header.ContentLength())
	}
	// The front door's response settings (header case kept, no defaults).
	ctx.Response.Header.CopyTo(&sc.Response.Header)
	if err := h.Serve(sc); err != nil {
		e.releaseCtx(sc)
		return err
	}
	sc.Response.Header.CopyTo(&ctx.Response.Header)
	ctx.Response.ImmediateHeaderFlush = sc.Response.ImmediateHeaderFlush
	if bs := sc.Response.BodyStream(); bs != nil {
		j.scratch, j.streaming = sc, true
		j.rtee = responseTee{j: j, r: bs}
		ctx.Response.SetBodyStream(&j.rtee, sc.Response.Header.ContentLength())
		return nil
	}
	// A head-only answer (HEAD, 204, 304) or one built in memory.
	if b := sc.Response.Body(); len(b) > 0 {
		ctx.Response.SetBody(b)
		j.primaryBody = append(j.primaryBody[:0], b...)
	}
	sc.Response.Header.CopyTo(&j.primaryResp.Header)
	e.releaseCtx(sc)
	return nil
}

func (j *Job) releaseScratch() {
	if j.scratch != nil {
		j.engine.releaseCtx(j.scratch)
		j.scratch = nil
	}
}

// reset clears j for reuse, keeping its buffers unless one grew large.
func (j *Job) reset() {
	j.releaseScratch()
	j.req.Reset()
	j.primaryResp.Reset()
	keep := func(b []byte) []byte {
		if cap(b) > 4<<20 {
			return nil
		}
		return b[:0]
	}
	j.engine, j.route, j.safe, j.remote, j.orig, j.dead = nil, nil, false, nil, nil, ""
	j.primaryOver, j.streaming, j.observer = false, false, bodyObserver{}
	j.reqTee = requestTee{buf: keep(j.reqTee.buf)}
	j.rtee = responseTee{}
	j.primaryBody = keep(j.primaryBody)
	j.candBody = keep(j.candBody)
	j.twinBody = keep(j.twinBody)
	j.goTwinBd = keep(j.goTwinBd)
	j.reqText = keep(j.reqText)
	j.pStart, j.pEnd = time.Time{}, time.Time{}
	j.idem, j.first = "", nil
	j.heads = keep(j.heads)
	j.params = routes.Params{}
	for i := range j.hdrs {
		clear(j.hdrs[i])
		j.hdrs[i] = j.hdrs[i][:0]
	}
}

// request identifies the job in the report and the logs. Its strings view
// the job's copy of the request, which nothing writes until the job is
// recycled; the collector copies them when it keeps them.
func (j *Job) request() shadowreport.Request {
	h := &j.req.Header
	return shadowreport.Request{ID: view(h.Peek("X-Request-Id")), Method: view(h.Method()), URI: view(h.RequestURI())}
}

// run is the worker's part: call the candidate, and on the noise sample
// each side a second time; learn from the legacy answer; compare the
// answers and what each side published; record. It returns false when a
// call was abandoned past its deadline: the job is the timer's then
// (deadline.go).
func (e *Engine) run(j *Job) (kept bool) {
	defer func() {
		if kept {
			e.done(j)
		}
	}()
	r := j.route
	c := r.Collector
	if e.stuck() {
		c.Skipped(SkipStuck)
		return true
	}
	req := j.request()
	candSide := r.candidateSide()
	// A request with an Idempotency-Key may be a retry (keys.go): one
	// job per key at a time, and the windows of its first answer.
	var first firstAnswer
	seen := false
	if raw := j.req.Header.Peek(IdempotencyKeyHeader); raw != nil {
		key := string(bytes.TrimSpace(raw))
		var busy bool
		first, seen, busy = e.retries.begin(r.Name, key)
		if busy {
			c.Skipped(SkipIdempotentInFlight)
			return true
		}
		j.idem = key
	}
	primary := j.head(&j.primaryResp.Header, j.primaryBody, hdrPrimary)
	pw := compare.Window{Start: j.pStart, End: j.pEnd}

	cand, over, cw, err := j.call(r.Candidate, candSide, &j.candBody, hdrCandidate)
	if err == errAbandoned {
		return false
	}
	d := cw.End.Sub(cw.Start)
	c.Called(candSide, d, err != nil || cand.Status >= 500)
	if err != nil {
		c.Errored(req, candSide, err)
		return true
	}
	if over {
		c.Skipped(SkipResponseTooBig)
		return true
	}
	c.Timed(r.Primary, pw.End.Sub(pw.Start))

	if r.Redact {
		// The primary is a recorded answer, redacted when captured: the
		// Go side's is redacted the same way before comparing.
		cand = compare.RedactAnswer(cand)
	}

	// Which answer is whose: noise is learned from the legacy side only.
	legacyResp, legacyWin, goResp, goWin := primary, pw, cand, cw
	if r.Primary == routes.SidePorted {
		legacyResp, legacyWin, goResp, goWin = cand, cw, primary, pw
	}
	profile := c.Profile()
	reqText := j.requestText()
	keyed := j.idem != ""
	unseen := false
	switch {
	case !keyed:
		profile.Observe(legacyResp, "body", legacyWin, reqText)
	case seen && first.replays(legacyResp):
		// A retry of a request compared earlier, answered as it was then:
		// each side's clock values lie in that request's windows, and the
		// legacy answer is no new evidence of anything.
		legacyWin, goWin = first.legacy, first.ported
		pw, cw = first.side(r.Primary), first.side(candSide)
	case profile.Replayed(legacyResp, "body", legacyWin):
		profile.ObserveReplay(legacyResp, "body", legacyWin)
		c.Skipped(SkipIdempotentReplay)
		return true
	default:
		unseen = !seen
		profile.ObserveKeyed(legacyResp, "body", legacyWin, reqText)
		if !seen && legacyResp.Status >= 200 && legacyResp.Status < 300 {
			j.first = &firstAnswer{legacy: legacyWin, ported: goWin, digest: answerDigest(legacyResp)}
		}
	}

	var self *compare.Result
	var goTwin *compare.Response
	var goTwinWin compare.Window
	// A keyed request asked again would be a retry: never twinned.
	if !keyed && ((r.LegacyTwin != nil && j.safe) || r.GoTwin != nil) {
		if c.Noise().Sample() {
			var abandoned bool
			if self, abandoned = j.legacyTwin(legacyResp); abandoned {
				return false
			}
			if goTwin, goTwinWin, abandoned = j.goTwin(); abandoned {
				return false
			}
			if goTwin != nil && r.Redact {
				red := compare.RedactAnswer(*goTwin)
				goTwin = &red
			}
		}
	}

	res := r.Comparator.DiffWith(primary, cand, compare.DiffOptions{Profile: profile, Windows: [2]compare.Window{pw, cw}})
	if goTwin != nil {
		nd := r.Comparator.DiffWith(goResp, *goTwin, compare.DiffOptions{Profile: profile, Windows: [2]compare.Window{goWin, goTwinWin}})
		res.Diffs = append(res.Diffs, nondeterministic(nd.Diffs)...)
	}
	cmp := shadowreport.Comparison{
		Request: req, PrimarySide: r.Primary,
		Primary: primary, Candidate: cand, Result: res, Self: self,
	}
	e.sideEffects(j, cmp, legacyResp, goResp, legacyWin, goWin, goTwin, goTwinWin, reqText, keyed, unseen)
	return true
}

// legacyTwin asks the legacy side again (a safe request only: it must
// have no side effect) and learns the noise of its two answers. abandoned
// says the call passed its deadline: the job is no longer the caller's.
func (j *Job) legacyTwin(first compare.Response) (_ *compare.Result, abandoned bool) {
	r := j.route
	if r.LegacyTwin == nil || !j.safe {
		return nil, false
	}
	second, over, w, err := j.call(r.LegacyTwin, routes.SideLegacy, &j.twinBody, hdrTwin)
	if err == errAbandoned {
		return nil, true
	}
	r.Collector.CalledTwin(routes.SideLegacy, w.End.Sub(w.Start), err != nil || second.Status >= 500)
	if err != nil || over {
		return nil, false
	}
	res := r.Comparator.Diff(first, second)
	r.Collector.LearnNoise(res)
	return &res, false
}

// goTwin asks the Go side again, with shadow dependencies, for the
// determinism check. What it "published" is taken out of the recorder so
// it is not mistaken for the first call's; it is kept in the job for the
// check.
func (j *Job) goTwin() (_ *compare.Response, _ compare.Window, abandoned bool) {
	r := j.route
	if r.GoTwin == nil {
		return nil, compare.Window{}, false
	}
	second, over, w, err := j.call(r.GoTwin, routes.SidePorted, &j.goTwinBd, hdrGoTwin)
	if err == errAbandoned {
		return nil, compare.Window{}, true
	}
	r.Collector.CalledTwin(routes.SidePorted, w.End.Sub(w.Start), err != nil || second.Status >= 500)
	if err != nil || over {
		return nil, compare.Window{}, false
	}
	return &second, w, false
}

// nondeterministic turns the differences between two Go answers to one
// request into findings, leaving out what the legacy side's own noise
// explains (its generated and clock values).
func nondeterministic(diffs []compare.Diff) []compare.Diff {
	out := diffs[:0]
	for _, d := range diffs {
		if d.Noise {
			continue
		}
		note := "the Go side answered this request twice, differently (" + string(d.Kind) + ")"
		if d.Note != "" {
			note += ": " + d.Note
		}
		d.Kind, d.Note, d.Accepted = compare.KindNondeterministic, note, ""
		out = append(out, d)
	}
	return out
}

// requestText is the request as the echo check sees it: head and body,
// in a buffer the job keeps.
func (j *Job) requestText() []byte {
	j.reqText = j.req.Header.AppendBytes(j.reqText[:0])
	j.reqText = append(j.reqText, j.req.Body()...)
	return j.reqText
}

// call runs h (of side) on a fresh copy of the job's request, under the
// route's deadline, and returns its answer with the body copied into *buf
// (over: longer than the cap, not kept), the head into j.hdrs[hdr], and the
// window from calling h to having its whole answer. It returns
// errAbandoned, having touched nothing of the job since the call began,
// when the deadline passed first.
func (j *Job) call(h routes.Handler, side routes.Side, buf *[]byte, hdr int) (resp compare.Response, over bool, w compare.Window, err error) {
	e := j.engine
	c := e.acquireCtx(&j.req, j.remote)
	defer e.releaseCtx(c)
	routes.SetParams(c, j.params)
	max := j.route.MaxBody
	b := (*buf)[:0]
	gen := j.arm(side, buf, hdr != hdrCandidate)
	w.Start = e.now()
	err = h.Serve(c)
	if err == nil {
		if bs := c.Response.BodyStream(); bs != nil {
			b, err = readAtMost(b, bs, max+1)
			_ = c.Response.CloseBodyStream() // a body read to its end keeps the connection
			if err != nil {
				err = fmt.Errorf("read candidate body: %w", err)
			}
		} else {
			b = append(b, c.Response.Body()...)
		}
	}
	w.End = e.now()
	if !j.disarm(gen) {
		e.left()
		return resp, false, w, errAbandoned
	}
	if err != nil {
		return resp, false, w, err
	}
	*buf = b
	if len(b) > max {
		return resp, true, w, nil
	}
	return j.head(&c.Response.Header, b, hdr), false, w, nil
}

// readAtMost appends up to n bytes of r to b.
func readAtMost(b []byte, r io.Reader, n int) ([]byte, error) {
	lr := io.LimitReader(r, int64(n))
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		m, err := lr.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// head copies a response head into the comparator's shape, its strings
// into j.heads and its list into j.hdrs[hdr]; body is used as is. Growing
// j.heads leaves the earlier strings on the old array, still intact.
func (j *Job) head(h *fasthttp.ResponseHeader, body []byte, hdr int) compare.Response {
	list := j.hdrs[hdr][:0]
	for k, v := range h.All() {
		start := len(j.heads)
		j.heads = append(j.heads, k...)
		j.heads = append(j.heads, v...)
		kv := j.heads[start:]
		list = append(list, [2]string{view(kv[:len(k)]), view(kv[len(k):])})
	}
	j.hdrs[hdr] = list
	return compare.Response{Status: h.StatusCode(), Body: body, Header: list}
}

// view is b as a string, without a copy: valid while b is not written.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// sideEffects compares what each side published for this request and
// records the comparison: at once when the legacy side's message is known
// (or cannot be), or, for a source whose messages arrive later (a topic),
// once it arrives or its wait is over, from a copy of the comparison.
//
// Messages are found by the route's key path: in the legacy answer and
// the legacy messages, and in the Go answer for what the Go side's
// recorder (candidate) or tap (primary) kept. Paths are rooted at
// `published`. Go published nothing and legacy accepted nothing: nothing
// to compare. Otherwise, without a working legacy source, the comparison
// says its side effects were not compared, and why.
//
// keyed says the request carries an Idempotency-Key, unseen that this
// process compared no earlier request with it: then a legacy answer whose
// message is nowhere to be found is a replay (the first request published
// it), and skipped rather than compared with a Go side that never saw
// that first request.
func (e *Engine) sideEffects(j *Job, cmp shadowreport.Comparison, legacyResp, goResp compare.Response,
	legacyWin, goWin compare.Window, goTwin *compare.Response, goTwinWin compare.Window, reqText []byte, keyed, unseen bool) {
	r := j.route
	c := r.Collector
	goSrc := e.recorded
	if r.Primary == routes.SidePorted {
		goSrc = e.tapped
	}
	keyPath := r.KeyPath
	if keyPath == "" {
		keyPath = DefaultKeyPath
	}
	take := func(src Published, resp compare.Response) []byte {
		if src == nil {
			return nil
		}
		if k, ok := compare.Lookup(resp.Body, keyPath); ok {
			v, _ := src.Take(k)
			if v != nil && r.Redact {
				v = compare.RedactAnswerBody(v, "application/json")
			}
			return v
		}
		return nil
	}
	goMsg := take(goSrc, goResp)
	var twinMsg []byte
	if goTwin != nil {
		// The recorder keeps the twin's message too: take it out, for the
		// determinism check below.
		twinMsg = take(e.recorded, *goTwin)
	}
	legacyKey, hasKey := compare.Lookup(legacyResp.Body, keyPath)
	hasKey = hasKey && legacyKey != ""
	if goMsg == nil && !hasKey {
		c.Compared(cmp)
		return
	}
	src := r.LegacyEvents
	switch {
	case goSrc == nil:
		cmp.SideEffectsUncompared = "what the Go side published is not observable in this process"
	case src == nil:
		cmp.SideEffectsUncompared = "no source of the legacy side's published messages is configured (shadow.legacy_events)"
	default:
		if h := src.Health(); h != "" {
			cmp.SideEffectsUncompared = src.Name() + " does not work: " + h
		}
	}
	if cmp.SideEffectsUncompared != "" {
		c.Compared(cmp)
		return
	}
	asJSON := func(b []byte) compare.Response { return compare.Response{Body: b, ContentType: "application/json"} }
	finish := func(cmp shadowreport.Comparison, legacyMsg []byte, found bool) {
		switch {
		case unseen && hasKey && !found:
			c.Skipped(SkipIdempotentReplay)
			return
		case unseen && hasKey && c.Profile().Replayed(asJSON(legacyMsg), compare.RootPublished, legacyWin):
			c.Profile().ObserveReplay(asJSON(legacyMsg), compare.RootPublished, legacyWin)
			c.Skipped(SkipIdempotentReplay)
			return
		case !found && hasKey && src.Found() == 0:
			cmp.SideEffectsUncompared = src.Name() + " has yielded none of the legacy side's messages yet, so a missing one proves nothing"
		default:
			cmp.SideEffectsCompared = true
			cmp.Result.Diffs = append(cmp.Result.Diffs, e.published(r, legacyMsg, goMsg, legacyWin, goWin, reqText, keyed)...)
			// The Go side's two messages are judged on what the legacy
			// side's messages showed, so only once one was seen.
			if goTwin != nil && legacyMsg != nil && (goMsg != nil || twinMsg != nil) {
				cmp.Result.Diffs = append(cmp.Result.Diffs, e.goMessages(r, goMsg, twinMsg, goWin, goTwinWin)...)
			}
		}
		c.Compared(cmp)
	}
	if !hasKey {
		finish(cmp, nil, false)
		return
	}
	if msg, ok := src.Take(legacyKey); ok {
		finish(cmp, msg, true)
		return
	}
	aw, ok := src.(Awaiter)
	if !ok {
		finish(cmp, nil, false)
		return
	}
	if since := aw.ReadySince(); since.IsZero() || legacyWin.Start.Before(since) {
		cmp.SideEffectsUncompared = src.Name() + " was not yet read in full when this request was answered"
		c.Compared(cmp)
		return
	}
	// The job's buffers are reused once run returns: wait on a copy.
	held := cmp.Clone()
	reqText = bytes.Clone(reqText)
	if !aw.Await(legacyKey, e.now().Add(aw.Wait()), func(msg []byte, ok bool) { finish(held, msg, ok) }) {
		cmp.SideEffectsUncompared = "too many comparisons wait for " + src.Name()
		c.Compared(cmp)
	}
}

// published compares the legacy side's message with the Go side's, after
// learning from the legacy one; either may be nil.
// keyed: see Profile.ObserveKeyed.
func (e *Engine) published(r *Route, legacyMsg, goMsg []byte, legacyWin, goWin compare.Window, reqText []byte, keyed bool) []compare.Diff {
	const root = compare.RootPublished
	lp, gp := r.Primary == routes.SideLegacy, r.Primary == routes.SidePorted
	switch {
	case legacyMsg == nil && goMsg == nil:
		return nil
	case legacyMsg == nil || goMsg == nil:
		// One side published, the other did not: missing from the
		// candidate, or extra in it.
		d := compare.Diff{Path: root, Template: root}
		hasPrimary := legacyMsg != nil && lp || goMsg != nil && gp
		if hasPrimary {
			d.Kind, d.Primary = compare.KindMissing, "a message"
		} else {
			d.Kind, d.Candidate = compare.KindExtra, "a message"
		}
		r.Comparator.AcceptDiff(&d)
		return []compare.Diff{d}
	}
	asJSON := func(b []byte) compare.Response { return compare.Response{Body: b, ContentType: "application/json"} }
	if keyed {
		r.Collector.Profile().ObserveKeyed(asJSON(legacyMsg), root, legacyWin, reqText)
	} else {
		r.Collector.Profile().Observe(asJSON(legacyMsg), root, legacyWin, reqText)
	}
	p, q, w := legacyMsg, goMsg, [2]compare.Window{legacyWin, goWin}
	if gp {
		p, q, w = goMsg, legacyMsg, [2]compare.Window{goWin, legacyWin}
	}
	return r.Comparator.DiffWith(asJSON(p), asJSON(q), compare.DiffOptions{Profile: r.Collector.Profile(), Windows: w, Root: root}).Diffs
}

// goMessages checks that the Go side published alike when asked twice.
func (e *Engine) goMessages(r *Route, first, second []byte, w1, w2 compare.Window) []compare.Diff {
	const root = compare.RootPublished
	if first == nil || second == nil {
		return []compare.Diff{{Path: root, Template: root, Kind: compare.KindNondeterministic,
			Note: "the Go side published a message for one of two identical requests only"}}
	}
	asJSON := func(b []byte) compare.Response { return compare.Response{Body: b, ContentType: "application/json"} }
	res := r.Comparator.DiffWith(asJSON(first), asJSON(second), compare.DiffOptions{Profile: r.Collector.Profile(), Windows: [2]compare.Window{w1, w2}, Root: root})
	return nondeterministic(res.Diffs)
}

// safeMethod: RFC 9110 §9.2.1.
func safeMethod(ctx *fasthttp.RequestCtx) bool {
	return ctx.IsGet() || ctx.IsHead() || ctx.IsOptions() || ctx.IsTrace()
}
