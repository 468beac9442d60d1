package shadow

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
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

	// params are the path parameters the front door matched for the
	// primary (its ctx's user values), set again on the candidate's ctx.
	params []userValue
	// heads holds the compared request and response heads' strings,
	// copied out of fasthttp's buffers into one buffer the job keeps
	// between uses; hdrs are the three answers' header lists. The
	// comparison sees views into them, valid until the job is recycled:
	// the collector copies what it keeps (a mismatch's example, a diff
	// log entry), and a match keeps nothing, so it allocates nothing.
	heads []byte
	hdrs  [3][][2]string

	// dl bounds each call by the route's timeout; it outlives recycling.
	dl deadline
}

type userValue struct {
	key string
	val any
}

// Indexes of Job.hdrs.
const (
	hdrPrimary = iota
	hdrCandidate
	hdrTwin
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
	ctx.VisitUserValuesAll(func(k, v any) {
		if name, ok := k.(string); ok {
			j.params = append(j.params, userValue{name, v})
		}
	})
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
		j.engine.submit(j)
	}
}

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
	j.heads = keep(j.heads)
	clear(j.params)
	j.params = j.params[:0]
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

// run is the worker's part: call the candidate (and a twin on the noise
// sample), compare, record. It returns false when a call was abandoned
// past its deadline: the job is the timer's then (deadline.go).
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
	primary := j.head(&j.primaryResp.Header, j.primaryBody, hdrPrimary)

	cand, over, d, err := j.call(r.Candidate, candSide, &j.candBody, hdrCandidate)
	if err == errAbandoned {
		return false
	}
	c.Called(candSide, d, err != nil || cand.Status >= 500)
	if err != nil {
		c.Errored(req, candSide, err)
		return
	}
	if over {
		c.Skipped(SkipResponseTooBig)
		return
	}

	var self *compare.Result
	if twin, base, twinSide := j.twin(primary, cand); twin != nil && c.Noise().Sample() {
		second, over2, d2, err2 := j.call(twin, twinSide, &j.twinBody, hdrTwin)
		if err2 == errAbandoned {
			return false
		}
		c.Called(twinSide, d2, err2 != nil || second.Status >= 500)
		if twinSide == routes.SidePorted && e.recorded != nil {
			e.recorded.Take(eventID(second.Body)) // what the twin "published" is not compared
		}
		if err2 == nil && !over2 {
			res := r.Comparator.Diff(base, second)
			c.LearnNoise(res)
			self = &res
		}
	}

	res := r.Comparator.Diff(primary, cand)
	res.Diffs = append(res.Diffs, e.publishedDiffs(j, primary, cand)...)
	c.Compared(shadowreport.Comparison{
		Request: req, PrimarySide: r.Primary,
		Primary: primary, Candidate: cand, Result: res, Self: self,
	})
	return true
}

// twin picks the second call of the noise sample: the primary side's
// side-effect-free twin compared with the primary's answer, or, for an
// unsafe method with a legacy primary (the monolith must not run it twice),
// the candidate again compared with its first answer.
func (j *Job) twin(primary, cand compare.Response) (routes.Handler, compare.Response, routes.Side) {
	r := j.route
	if r.Primary == routes.SideLegacy && !j.safe {
		return r.Candidate, cand, routes.SidePorted
	}
	return r.Twin, primary, r.Primary
}

// call runs h (of side) on a fresh copy of the job's request, under the
// route's deadline, and returns its answer with the body copied into *buf
// (over: longer than the cap, not kept) and the head into j.hdrs[hdr]. It
// returns errAbandoned, having touched nothing of the job since the call
// began, when the deadline passed first.
func (j *Job) call(h routes.Handler, side routes.Side, buf *[]byte, hdr int) (resp compare.Response, over bool, d time.Duration, err error) {
	e := j.engine
	c := e.acquireCtx(&j.req, j.remote)
	defer e.releaseCtx(c)
	for _, p := range j.params {
		c.SetUserValue(p.key, p.val)
	}
	max := j.route.MaxBody
	b := (*buf)[:0]
	gen := j.arm(side, buf)
	start := e.now()
	err = h.Serve(c)
	d = e.now().Sub(start)
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
	if !j.disarm(gen) {
		e.left()
		return resp, false, d, errAbandoned
	}
	if err != nil {
		return resp, false, d, err
	}
	*buf = b
	if len(b) > max {
		return resp, true, d, nil
	}
	return j.head(&c.Response.Header, b, hdr), false, d, nil
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

// publishedDiffs compares what the two sides published for this request,
// when both sides' side effects are observable: the monolith's events file
// on the legacy side, the recording sink (Go candidate) or the tap (Go
// primary) on the Go side. Events are found by the event_id each side
// answered with. Paths are rooted at `published`.
func (e *Engine) publishedDiffs(j *Job, primary, cand compare.Response) []compare.Diff {
	r := j.route
	goSrc := e.recorded
	if r.Primary == routes.SidePorted {
		goSrc = e.tapped
	}
	legacy := r.LegacyEvents
	if goSrc == nil || legacy == nil {
		return nil
	}
	if o, ok := legacy.(interface{ Observable() bool }); ok && !o.Observable() {
		return nil
	}
	pid, cid := eventID(primary.Body), eventID(cand.Body)
	if pid == "" && cid == "" {
		return nil // neither side says it accepted an event
	}
	take := func(side routes.Side, id string) []byte {
		if id == "" {
			return nil
		}
		src := goSrc
		if side == routes.SideLegacy {
			src = legacy
		}
		v, _ := src.Take(id)
		return v
	}
	pv, cv := take(r.Primary, pid), take(r.candidateSide(), cid)
	const root = "published"
	switch {
	case pv == nil && cv == nil:
		return nil
	case cv == nil:
		return []compare.Diff{{Path: root, Template: root, Kind: compare.KindMissing, Primary: "event " + pid}}
	case pv == nil:
		return []compare.Diff{{Path: root, Template: root, Kind: compare.KindExtra, Candidate: "event " + cid}}
	}
	asJSON := func(b []byte) compare.Response { return compare.Response{Body: b, ContentType: "application/json"} }
	res := e.published.Diff(asJSON(pv), asJSON(cv))
	for i := range res.Diffs {
		d := &res.Diffs[i]
		d.Path = root + strings.TrimPrefix(d.Path, "body")
		d.Template = root + strings.TrimPrefix(d.Template, "body")
	}
	return res.Diffs
}

var eventIDKey = []byte(`"event_id"`)

// eventID is the top-level event_id of a JSON answer, "" if none.
func eventID(body []byte) string {
	if !bytes.Contains(body, eventIDKey) {
		return ""
	}
	var v struct {
		EventID string `json:"event_id"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	return v.EventID
}

// safeMethod: RFC 9110 §9.2.1.
func safeMethod(ctx *fasthttp.RequestCtx) bool {
	return ctx.IsGet() || ctx.IsHead() || ctx.IsOptions() || ctx.IsTrace()
}
