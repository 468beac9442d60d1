// Package events is the Go twin of the monolith's POST /api/v1/events: it
// validates an event against the business rules of
// examples/monolith/CONTRACT.md (## Event intake), normalises and enriches
// it, hands it to a delivery.Sink and answers 202 only once the sink has it.
// Answers and forwarded events are byte-identical to the PHP twin's
// (examples/monolith/src/events.php) apart from event_id; parity_test.go
// checks that against real Nginx + PHP-FPM.
package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/internal/ascii"
	"github.com/strangler-proxy/strangler/internal/promreg"
	"github.com/strangler-proxy/strangler/ported/campaign"
	"github.com/strangler-proxy/strangler/ported/delivery"
	"github.com/strangler-proxy/strangler/ported/phpjson"
)

// Name is the handler's name in the route table's `handler:` field.
const Name = "events.ingest"

// Options are New's dependencies.
type Options struct {
	// Config is the `events:` section; zero values take their defaults.
	Config Config
	// Campaigns answers the campaign rules. Required.
	Campaigns campaign.Lookup
	// Sink receives each accepted event before the 202. Required.
	Sink delivery.Sink
	// Keys remembers Idempotency-Keys (the spool). Nil means the header is
	// ignored: the shadow side, whose copies must not claim the live keys.
	Keys delivery.Keys
	// Now is the clock of the time-window rules and received_at. Nil means
	// time.Now.
	Now func() time.Time
	// NewID returns a fresh event_id. Nil means a random UUID v4.
	NewID func() string
	// Logger gets sink failures (Warn/Error) and rejections (Debug). Nil
	// means no logs.
	Logger *zap.Logger
	// Registerer gets the handler's metrics. Nil means they are kept but not
	// registered. A second handler (shadow) needs its own, e.g.
	// prometheus.WrapRegistererWith(prometheus.Labels{"side": "shadow"}, reg).
	Registerer prometheus.Registerer
}

// Handler serves POST /api/v1/events. It is safe for concurrent use.
type Handler struct {
	cfg       Config
	campaigns campaign.Lookup
	sink      delivery.Sink
	keys      delivery.Keys
	now       func() time.Time
	newID     func() string
	log       *zap.Logger
	m         *metrics
	pool      sync.Pool // *validator
}

// Interface guard: the handler has the routes.Handler shape.
var _ interface {
	Serve(*fasthttp.RequestCtx) error
} = (*Handler)(nil)

// New builds a Handler.
func New(o Options) (*Handler, error) {
	cfg := o.Config.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Campaigns == nil || o.Sink == nil {
		return nil, errors.New("events: Campaigns and Sink are required")
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	h := &Handler{
		cfg:       cfg,
		campaigns: o.Campaigns,
		sink:      o.Sink,
		keys:      o.Keys,
		now:       o.Now,
		newID:     o.NewID,
		log:       o.Logger,
		m:         m,
		pool:      sync.Pool{New: func() any { return new(validator) }},
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.newID == nil {
		h.newID = NewUUID
	}
	if h.log == nil {
		h.log = zap.NewNop()
	}
	h.log = h.log.Named("events")
	return h, nil
}

// Serve answers one request. It writes every answer itself, sink failures
// included (503); it returns an error, having written nothing, only when the
// request body cannot be read.
func (h *Handler) Serve(ctx *fasthttp.RequestCtx) error {
	v := h.pool.Get().(*validator)
	defer h.release(v)
	rid := requestID(ctx)

	if !ctx.IsPost() {
		// The route table sends only POST here; this mirrors index.php's
		// answer in case a route is configured with more methods.
		h.m.outcome(outcomeMethod)
		ctx.Response.Header.Set("Allow", "POST")
		b := append(v.buf[:0], `{"error":"method_not_allowed","message":`...)
		b = phpjson.AppendString(b, string(ctx.Method())+" not allowed on /api/v1/events")
		v.buf = append(b, '}')
		respond(ctx, fasthttp.StatusMethodNotAllowed, v.buf)
		return nil
	}
	if !jsonContentType(ctx.Request.Header.ContentType()) {
		h.fail(ctx, v, outcomeMediaType, fasthttp.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json", rid)
		return nil
	}
	body, err := h.readBody(ctx, v)
	switch {
	case errors.Is(err, errTooLarge):
		h.fail(ctx, v, outcomeTooLarge, fasthttp.StatusRequestEntityTooLarge, "body_too_large", "request body is larger than the limit", rid)
		return nil
	case err != nil:
		return err // nothing written; the front door answers (client gone, timeout)
	}

	now := h.now()
	idem, done := h.idempotency(ctx, v, body, now, rid)
	if done {
		return nil
	}
	if idem != nil {
		// Every answer below but a publish drops the claim; a publish
		// hands it to the sink, which settles it.
		defer func() {
			if idem != nil {
				h.keys.Release(idem.Key)
			}
		}()
	}
	ev, err := v.run(body, now, h.campaigns)
	switch {
	case errors.Is(err, ErrInvalidUTF8):
		h.fail(ctx, v, outcomeMalformed, fasthttp.StatusBadRequest, "invalid_utf8", "request body is not valid UTF-8", rid)
		return nil
	case errors.Is(err, ErrNotObject):
		h.fail(ctx, v, outcomeMalformed, fasthttp.StatusBadRequest, "not_an_object", "request body must be a JSON object", rid)
		return nil
	case errors.Is(err, ErrNoCampaignData):
		retryAfter(ctx, h.campaignsRetryAfter())
		h.fail(ctx, v, outcomeNoCampaigns, fasthttp.StatusServiceUnavailable, "unavailable", "campaign data unavailable, retry later", rid)
		return nil
	case err != nil:
		h.fail(ctx, v, outcomeMalformed, fasthttp.StatusBadRequest, "malformed_json", "request body is not valid JSON", rid)
		return nil
	case len(v.errs) > 0:
		h.reject(ctx, v, rid)
		return nil
	}

	// The message owns fresh memory of exactly its size: the sink may keep
	// it (queued) after we return, while fasthttp recycles the request body
	// and v.buf goes back to the pool. Value and Key share one allocation,
	// capped so that neither can grow into the other.
	id := h.newID()
	v.buf = ev.AppendJSON(v.buf[:0], id, now)
	n := len(v.buf)
	buf := make([]byte, n+len(ev.UserID))
	copy(buf, v.buf)
	copy(buf[n:], ev.UserID)
	msg := delivery.Message{Key: buf[n:len(buf):len(buf)], Value: buf[:n:n], EventID: id, Idem: idem}
	idem = nil // the sink settles the claim now

	// Not derived from ctx: a graceful shutdown lets in-flight requests
	// finish, and an event half-published when the server stops accepting
	// would be answered 503 for nothing. PublishTimeout bounds the wait.
	start := time.Now()
	pctx, cancel := context.WithTimeout(context.Background(), h.cfg.PublishTimeout)
	err = h.sink.Publish(pctx, msg)
	cancel()
	h.m.publish.Observe(time.Since(start).Seconds())
	if err != nil {
		h.unavailable(ctx, v, err, id, rid)
		return nil
	}

	h.m.outcome(outcomeAccepted)
	h.accepted(ctx, v, id, now)
	return nil
}

// accepted writes the 202; a replay writes the same bytes again.
func (h *Handler) accepted(ctx *fasthttp.RequestCtx, v *validator, id string, receivedAt time.Time) {
	b := append(v.buf[:0], `{"status":"accepted","event_id":`...)
	b = phpjson.AppendString(b, id)
	b = append(b, `,"received_at":"`...)
	b = appendMillis(b, receivedAt)
	v.buf = append(b, `"}`...)
	respond(ctx, fasthttp.StatusAccepted, v.buf)
}

// idempotency handles the Idempotency-Key header (IETF httpapi
// idempotency-key draft): none, or no key store, and the request goes on
// unkeyed (nil, false). A key seen within the window with the same body is
// answered with the first 202 again and publishes nothing; with another
// body it is 422; one whose request is still in progress is 409 with
// Retry-After. done says the answer is written. Otherwise the caller holds
// the key's claim and gets the Idem to publish with.
func (h *Handler) idempotency(ctx *fasthttp.RequestCtx, v *validator, body []byte, now time.Time, rid []byte) (*delivery.Idem, bool) {
	raw := ctx.Request.Header.Peek(IdempotencyKeyHeader)
	if raw == nil || h.keys == nil {
		return nil, false
	}
	key, ok := ParseIdempotencyKey(raw)
	if !ok {
		h.fail(ctx, v, outcomeBadKey, fasthttp.StatusBadRequest, "invalid_idempotency_key",
			"Idempotency-Key must be 1 to 255 visible ASCII characters, or a quoted string of them", rid)
		return nil, true
	}
	idem := &delivery.Idem{Key: KeyDigest(key), Fingerprint: Fingerprint(body), ReceivedAt: now.UnixMilli()}
	first, found, err := h.keys.Claim(idem.Key)
	switch {
	case errors.Is(err, delivery.ErrKeyInFlight):
		retryAfter(ctx, time.Second)
		h.fail(ctx, v, outcomeKeyInUse, fasthttp.StatusConflict, "idempotency_key_in_use",
			"a request with this Idempotency-Key is in progress, retry later", rid)
		return nil, true
	case err != nil:
		h.unavailable(ctx, v, err, "", rid)
		return nil, true
	case found && first.Fingerprint == idem.Fingerprint:
		h.m.outcome(outcomeReplayed)
		h.accepted(ctx, v, first.EventID, time.UnixMilli(first.ReceivedAt))
		return nil, true
	case found:
		h.fail(ctx, v, outcomeKeyReused, fasthttp.StatusUnprocessableEntity, "idempotency_key_reused",
			"Idempotency-Key was already used with a different request body", rid)
		return nil, true
	}
	return idem, false
}

var errTooLarge = errors.New("body too large")

// readBody returns the request body, or errTooLarge past the limit. The
// front door streams request bodies (StreamRequestBody), and PostBody would
// then buffer a stream of any size, so a stream is read here, at most
// limit+1 bytes, into pooled memory.
func (h *Handler) readBody(ctx *fasthttp.RequestCtx, v *validator) ([]byte, error) {
	limit := h.cfg.MaxBodyBytes
	// What is left unread fasthttp drains (up to 256 KiB, keeping the
	// connection) or closes the connection on.
	if ctx.Request.Header.ContentLength() > limit {
		return nil, errTooLarge
	}
	if !ctx.Request.IsBodyStream() {
		b := ctx.PostBody()
		if len(b) > limit {
			return nil, errTooLarge
		}
		return b, nil
	}
	r := io.LimitReader(ctx.RequestBodyStream(), int64(limit)+1)
	b := v.body[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			v.body = b
			return nil, fmt.Errorf("read body: %w", err)
		}
	}
	v.body = b
	if len(b) > limit {
		return nil, errTooLarge
	}
	return b, nil
}

// release returns v to the pool without references into the request, and
// without the scratch a rare huge body grew: a 64 KiB body of tiny values
// needs a megabyte of nodes, which the pool should not keep.
func (h *Handler) release(v *validator) {
	const keep = 4096
	v.p.src = nil
	clear(v.keys)
	v.keys = v.keys[:0]
	v.campaigns = nil
	if cap(v.p.nodes) > keep {
		v.p.nodes = nil
	}
	if cap(v.keys) > keep {
		v.keys = nil
	}
	if cap(v.buf) > 16*keep {
		v.buf = nil
	}
	if cap(v.body) > 16*keep {
		v.body = nil
	}
	h.pool.Put(v)
}

func (h *Handler) reject(ctx *fasthttp.RequestCtx, v *validator, rid []byte) {
	h.m.outcome(outcomeRejected)
	b := append(v.buf[:0], `{"status":"rejected","errors":[`...)
	for i, e := range v.errs {
		h.m.violations.WithLabelValues(e.Code).Inc()
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"field":`...)
		b = phpjson.AppendString(b, e.Field)
		b = append(b, `,"code":`...)
		b = phpjson.AppendString(b, e.Code)
		b = append(b, `,"message":`...)
		b = phpjson.AppendString(b, e.Message)
		b = append(b, '}')
	}
	b = append(b, ']')
	v.buf = closeError(b, rid)
	if ce := h.log.Check(zap.DebugLevel, "event rejected"); ce != nil {
		ce.Write(zap.Int("violations", len(v.errs)), zap.String("first_code", v.errs[0].Code), zap.ByteString("request_id", rid))
	}
	respond(ctx, fasthttp.StatusUnprocessableEntity, v.buf)
}

// DefaultRetryAfter is the Retry-After of a 503 whose cause cannot say when
// to come back: a sink that is away (brokers unreachable with `delivery:
// direct`, no ack within publish_timeout), a failed spool, campaign data a
// lookup cannot schedule. Every 503 of the intake carries one, so that
// clients and load balancers retry rather than give up.
const DefaultRetryAfter = 5 * time.Second

// unavailable answers a sink failure with 503 and Retry-After. Passing
// states (a full spool, brokers away) are debug lines here: the sink logs
// its own state once when it changes, and a line per refused request
// would bury that. Anything else is an error of its own.
func (h *Handler) unavailable(ctx *fasthttp.RequestCtx, v *validator, err error, id string, rid []byte) {
	var bp interface{ RetryAfter() time.Duration }
	if errors.As(err, &bp) {
		if ce := h.log.Check(zap.DebugLevel, "sink full"); ce != nil {
			ce.Write(zap.Error(err), zap.String("event_id", id), zap.ByteString("request_id", rid))
		}
		retryAfter(ctx, bp.RetryAfter())
		h.fail(ctx, v, outcomeBackpressure, fasthttp.StatusServiceUnavailable, "backpressure", "event intake is over capacity, retry later", rid)
		return
	}
	lvl := zap.ErrorLevel
	if errors.Is(err, delivery.ErrUnavailable) {
		lvl = zap.DebugLevel
	}
	if ce := h.log.Check(lvl, "publish event"); ce != nil {
		ce.Write(zap.Error(err), zap.String("event_id", id), zap.ByteString("request_id", rid))
	}
	retryAfter(ctx, DefaultRetryAfter)
	h.fail(ctx, v, outcomeUnavailable, fasthttp.StatusServiceUnavailable, "unavailable", "event could not be stored, retry later", rid)
}

// campaignsRetryAfter is when campaign data may be there: the hot cache's
// next load attempt when it can tell.
func (h *Handler) campaignsRetryAfter() time.Duration {
	if r, ok := h.campaigns.(interface{ RetryAfter() time.Duration }); ok {
		return r.RetryAfter()
	}
	return DefaultRetryAfter
}

func retryAfter(ctx *fasthttp.RequestCtx, d time.Duration) {
	ctx.Response.Header.Set("Retry-After", strconv.Itoa(retryAfterSeconds(d)))
}

// retryAfterSeconds rounds up, so a client never retries before the sink
// said it could, and is at least 1 (Retry-After: 0 invites a tight loop).
func retryAfterSeconds(d time.Duration) int {
	s := math.Ceil(d.Seconds())
	switch {
	case s < 1:
		return 1
	case s > 86400:
		return 86400
	}
	return int(s)
}

// fail writes {"error":CODE,"message":TEXT[,"request_id":ID]}, the shape of
// every other error of the monolith (index.php, the campaign routes).
func (h *Handler) fail(ctx *fasthttp.RequestCtx, v *validator, o outcome, status int, code, msg string, rid []byte) {
	h.m.outcome(o)
	b := append(v.buf[:0], `{"error":`...)
	b = phpjson.AppendString(b, code)
	b = append(b, `,"message":`...)
	b = phpjson.AppendString(b, msg)
	v.buf = closeError(b, rid)
	respond(ctx, status, v.buf)
}

func closeError(b, rid []byte) []byte {
	if rid != nil {
		b = append(b, `,"request_id":`...)
		b = phpjson.AppendString(b, rid)
	}
	return append(b, '}')
}

func respond(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentType("application/json")
	ctx.SetBody(body) // copies
}

// requestID returns the X-Request-Id the front door set when it matches
// ^[A-Za-z0-9._:+/=-]{1,128}$ (the campaign routes' rule too); otherwise the
// bodies carry none. The PHP twin applies the same test to HTTP_X_REQUEST_ID.
func requestID(ctx *fasthttp.RequestCtx) []byte {
	id := ctx.Request.Header.Peek("X-Request-Id")
	if len(id) == 0 || len(id) > 128 || !all(id, requestIDByte) {
		return nil
	}
	return id
}

func requestIDByte(c byte) bool {
	switch c {
	case '.', '_', ':', '+', '/', '=', '-':
		return true
	}
	return alnum(c)
}

// jsonContentType accepts "application/json" (any case) with no parameter
// but an optional charset=utf-8 (any case, optionally quoted), with spaces
// or tabs around each part.
func jsonContentType(ct []byte) bool {
	media, rest, more := cut(ct, ';')
	if !ascii.EqualFold(trimOWS(media), "application/json") {
		return false
	}
	for more {
		var p []byte
		p, rest, more = cut(rest, ';')
		p = trimOWS(p)
		name, val, ok := cut(p, '=')
		if !ok || !ascii.EqualFold(name, "charset") {
			return false
		}
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = val[1 : len(val)-1]
		}
		if !ascii.EqualFold(val, "utf-8") {
			return false
		}
	}
	return true
}

func cut(s []byte, sep byte) (before, after []byte, found bool) {
	for i, c := range s {
		if c == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, nil, false
}

func trimOWS(s []byte) []byte {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// NewUUID returns a random RFC 9562 version 4 UUID in lower-case hex.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// outcome labels strangler_events_requests_total.
type outcome int

const (
	outcomeAccepted outcome = iota
	outcomeRejected
	outcomeMalformed
	outcomeTooLarge
	outcomeMediaType
	outcomeMethod
	outcomeBackpressure
	outcomeUnavailable
	outcomeNoCampaigns
	outcomeReplayed
	outcomeKeyReused
	outcomeKeyInUse
	outcomeBadKey
	numOutcomes
)

func (o outcome) String() string {
	switch o {
	case outcomeAccepted:
		return "accepted"
	case outcomeRejected:
		return "rejected"
	case outcomeMalformed:
		return "malformed"
	case outcomeTooLarge:
		return "too_large"
	case outcomeMediaType:
		return "unsupported_media_type"
	case outcomeMethod:
		return "method_not_allowed"
	case outcomeBackpressure:
		return "backpressure"
	case outcomeUnavailable:
		return "unavailable"
	case outcomeNoCampaigns:
		return "no_campaign_data"
	case outcomeReplayed:
		return "replayed"
	case outcomeKeyReused:
		return "idempotency_key_reused"
	case outcomeKeyInUse:
		return "idempotency_key_in_use"
	case outcomeBadKey:
		return "invalid_idempotency_key"
	}
	return "unknown"
}

type metrics struct {
	requests   [numOutcomes]prometheus.Counter // resolved once: no label hashing per request
	violations *prometheus.CounterVec
	publish    prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strangler_events_requests_total",
		Help: "Event intake requests by outcome.",
	}, []string{"outcome"})
	m := &metrics{
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strangler_events_violations_total",
			Help: "Business rule violations reported in 422 answers, by code.",
		}, []string{"code"}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "strangler_events_publish_seconds",
			Help:    "Time Sink.Publish took per accepted event, failures included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5ms .. ~4s
		}),
	}
	for o := range numOutcomes {
		m.requests[o] = requests.WithLabelValues(o.String())
	}
	if err := promreg.Register(reg, "events", requests, m.violations, m.publish); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) outcome(o outcome) { m.requests[o].Inc() }
