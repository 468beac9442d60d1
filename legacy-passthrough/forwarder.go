// Package legacy forwards requests to the legacy monolith's Nginx so that
// neither the client nor PHP can tell a proxy stands in between: the request
// target byte for byte, header names in their case, repeated fields and
// cookies in order, bodies streamed both ways in bounded memory, and the
// answer (status, reason, Set-Cookie, redirects) as Nginx gave it. Only
// hop-by-hop fields are dropped and X-Forwarded-* are set, trusting an
// incoming chain only from configured proxies. An absolute-form target goes
// upstream in origin form with its authority as Host; a response head with
// ambiguous framing is a 502 and its connection is closed (framing.go);
// websocket handshakes are passed through and the connection spliced
// (tunnel.go).
//
// Failures are returned, never written: the front door maps
// ErrUpstreamUnreachable and ErrBadUpstreamResponse to 502 and
// ErrUpstreamTimeout to 504. (One answer is written here: the 503 of a
// websocket handshake past legacy.max_tunnels.)
package legacy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/internal/ascii"
	"github.com/strangler-proxy/strangler/internal/promreg"
	"github.com/strangler-proxy/strangler/routes"
)

// Errors Serve and Ping return, wrapped with the cause. Check with errors.Is.
var (
	// ErrUpstreamUnreachable: the connection to Nginx could not be opened,
	// or was closed or reset before an answer came. 502.
	ErrUpstreamUnreachable = errors.New("upstream unreachable")
	// ErrUpstreamTimeout: no response head within Config.Timeout (or no
	// connection within Config.DialTimeout). 504.
	ErrUpstreamTimeout = errors.New("upstream timed out")
	// ErrBadUpstreamResponse: Nginx answered something that is not HTTP/1.x,
	// or a head over Config.MaxResponseHeaderBytes. 502.
	ErrBadUpstreamResponse = errors.New("bad upstream response")
)

// Forwarder sends requests to the monolith's backends (pool.go). It is
// safe for concurrent use.
type Forwarder struct {
	cfg     Config
	pool    *pool
	owner   bool                   // New built the pool, and Close stops it
	clients []*fasthttp.HostClient // connections to each backend, by backend.i
	trusted []netip.Prefix
	log     *zap.Logger
	metrics *metrics
	tunnels *tunnels // upgraded (websocket) connections, see tunnel.go
	// setSticky: answers carry Config.StickyCookie. Never on a derived
	// forwarder, whose answers reach no client.
	setSticky bool

	scratch sync.Pool // *scratch
	bodies  sync.Pool // *responseBody
}

// Interface guard.
var _ routes.Handler = (*Forwarder)(nil)

// dialFunc opens a connection to addr; tests swap in an in-memory listener.
type dialFunc func(ctx context.Context, addr string) (net.Conn, error)

// New builds a Forwarder for cfg (defaults applied, then validated). log may
// be nil; reg nil means a private registry (metrics not exported). New does
// no network I/O (it reads legacy.tls's files): the first request dials,
// and Run starts the health checks.
func New(cfg Config, log *zap.Logger, reg prometheus.Registerer) (*Forwarder, error) {
	return newForwarder(cfg, log, reg, nil)
}

func newForwarder(cfg Config, log *zap.Logger, reg prometheus.Registerer, dial dialFunc) (*Forwarder, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("legacy config: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	if dial == nil {
		var d net.Dialer
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	p, err := newPool(cfg, dial, log.Named("legacy"))
	if err != nil {
		return nil, err
	}
	f, err := build(cfg, p, log, reg, p.series...)
	if err != nil {
		return nil, err
	}
	f.owner, f.setSticky = true, cfg.StickyCookie != ""
	return f, nil
}

// Derive returns a forwarder to f's backends, sharing their health,
// ejections and outstanding counts (so its traffic and f's steer by the
// same load), with connections and limits of its own from cfg: timeouts,
// max_conns, max_tunnels, max_response_header_bytes, trusted_proxies.
// cfg's backends, health, ejection, tls and sticky_cookie are f's, whatever
// it says. It follows the sticky cookie but never sets one. The shadow
// engine's legacy calls use one. Close it before or after f.
func (f *Forwarder) Derive(cfg Config, log *zap.Logger, reg prometheus.Registerer) (*Forwarder, error) {
	cfg = cfg.WithDefaults()
	cfg.Upstream, cfg.Upstreams, cfg.Health, cfg.Ejection, cfg.TLS, cfg.StickyCookie =
		f.cfg.Upstream, f.cfg.Upstreams, f.cfg.Health, f.cfg.Ejection, f.cfg.TLS, f.cfg.StickyCookie
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("legacy config: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	return build(cfg, f.pool, log, reg)
}

// build makes a forwarder on p and registers its metrics (and more) with
// reg, all or none.
func build(cfg Config, p *pool, log *zap.Logger, reg prometheus.Registerer, more ...prometheus.Collector) (*Forwarder, error) {
	trusted, _ := parseTrusted(cfg.TrustedProxies) // validated by the caller
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, cs := newMetrics()
	if err := promreg.Register(reg, "legacy", append(cs, more...)...); err != nil {
		return nil, err
	}
	f := &Forwarder{
		cfg:     cfg,
		pool:    p,
		trusted: trusted,
		log:     log.Named("legacy"),
		metrics: m,
	}
	f.tunnels = newTunnels(cfg.MaxTunnels, cfg.TunnelIdleTimeout, f.log, m.tunnelsOpen)
	f.scratch.New = func() any { return new(scratch) }
	f.bodies.New = func() any { return new(responseBody) }
	for _, b := range p.backends {
		f.clients = append(f.clients, f.hostClient(b))
	}
	return f, nil
}

// hostClient is the connection pool to b.
func (f *Forwarder) hostClient(b *backend) *fasthttp.HostClient {
	cfg := f.cfg
	return &fasthttp.HostClient{
		Addr: b.addr,
		// timeout is what is left of the exchange; DialTimeout caps it.
		DialTimeout: func(_ string, timeout time.Duration) (net.Conn, error) {
			c, err := f.dialConn(b, timeout)
			if err != nil {
				return nil, err
			}
			return c, nil
		},
		Transport: transport{},
		// No retry in here: exchange retries, on another backend where
		// there is one.
		MaxIdemponentCallAttempts: 1,

		MaxConns:            cfg.MaxConns,
		MaxConnWaitTimeout:  cfg.Timeout, // the exchange deadline cuts it shorter
		MaxIdleConnDuration: cfg.IdleConnTimeout,
		// The most recently used connection first: the one least likely to
		// be near Nginx's keepalive_timeout, and spare ones age out after a
		// burst instead of being kept warm in turn.
		ConnPoolStrategy: fasthttp.LIFO,
		ReadBufferSize:   cfg.MaxResponseHeaderBytes,
		// ReadTimeout and WriteTimeout stay zero: upstreamConn enforces the
		// idle timeouts, and the Do deadline bounds the rest. TLS, for an
		// https backend, is the dialer's (pool.dial), under upstreamConn's
		// byte counts and head capture.

		// Fidelity: names and targets as the client wrote them, nothing the
		// client did not send (no User-Agent), never a redirect followed.
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
		NoDefaultUserAgentHeader:      true,
		StreamResponseBody:            true,
		// fasthttp's messages would otherwise quote response heads.
		SecureErrorLogMessage: true,
	}
}

// headSlack is room for interim 1xx heads in the response-head capture.
const headSlack = 1 << 10

func (f *Forwarder) dialConn(b *backend, timeout time.Duration) (*upstreamConn, error) {
	if timeout <= 0 || timeout > f.cfg.DialTimeout {
		timeout = f.cfg.DialTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := f.pool.dial(ctx, b)
	if err != nil {
		return nil, err
	}
	// Interim heads come before the final one, so the capture has room for
	// a few beyond fasthttp's limit on one head.
	return newUpstreamConn(c, f.cfg.ReadTimeout, f.cfg.WriteTimeout, f.cfg.MaxResponseHeaderBytes+headSlack), nil
}

// exchange sends req to b and returns the backend that answered, or the
// last one tried and its error. A request that never reached a backend is
// sent again, at most maxAttempts times in all, to another backend where
// there is one:
//
//   - a connection that could not be opened (refused, timed out, failed
//     TLS handshake): nothing was sent, so any method, body or not (Nginx's
//     proxy_next_upstream error does the same);
//   - a kept-alive connection the backend had closed, nothing read back
//     (transport marks those): idempotent requests (RFC 9110 §9.2.2)
//     without a streamed body, whose body would be gone; with one backend,
//     again to it on a fresh connection;
//   - a new connection closed or reset before a byte of the answer: the
//     same idempotent requests, to another backend only (this one may have
//     run it and crashed).
//
// A timeout is never retried: the backend may still be working on it.
func (f *Forwarder) exchange(b *backend, req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time, s *scratch) (*backend, error) {
	var tried [maxAttempts]*backend
	attempts := min(maxAttempts, max(2, len(f.pool.backends)))
	// Request.Write closes a body stream: read it before the first try.
	stream := req.IsBodyStream()
	for k := 0; ; k++ {
		tried[k] = b
		b.requests.Inc()
		b.outstanding.Add(1)
		err := f.clients[b.i].DoDeadline(req, resp, deadline)
		if err == nil {
			return b, nil
		}
		b.outstanding.Add(-1)
		if s.body.err != nil {
			return b, err // the client's side failed, not the backend
		}
		retry, same, failure := retryable(err, req.Header.Method(), stream)
		if failure {
			f.pool.observe(b, true)
		}
		if !retry || k+1 >= attempts {
			return b, err
		}
		next := f.pool.fallback(tried[:k+1])
		if next == nil {
			if !same {
				return b, err
			}
			next = b
		}
		f.metrics.retries.Inc()
		if ce := f.log.Check(zap.DebugLevel, "retrying"); ce != nil {
			ce.Write(zap.ByteString("method", req.Header.Method()), zap.String("failed", b.addr),
				zap.String("next", next.addr), zap.Error(err))
		}
		b = next
	}
}

// retryable says whether a failed exchange may be sent again (see
// exchange), whether to the same backend too, and whether the failure
// counts against the backend for passive ejection (a kept-alive connection
// closed under a request is the ordinary keep-alive race, and a full
// connection pool is this proxy's limit).
func retryable(err error, method []byte, stream bool) (retry, same, failure bool) {
	var (
		op *net.OpError
		na *errNoAnswer
	)
	switch {
	case errors.As(err, &op) && op.Op == "dial", errors.Is(err, fasthttp.ErrDialTimeout):
		return true, false, true
	case errors.As(err, &na):
		return idempotent(method) && !stream, na.reused, !na.reused
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return false, false, false
	}
	return false, false, true
}

// choose picks the backend for ctx: the one its sticky cookie names while
// that one is usable, else the balancer's. assign: the answer should set
// the cookie.
func (f *Forwarder) choose(ctx *fasthttp.RequestCtx) (b *backend, assign bool) {
	if f.cfg.StickyCookie == "" {
		return f.pool.pick(), false
	}
	if b := f.pool.byCookie(ctx.Request.Header.Cookie(f.cfg.StickyCookie)); b != nil {
		return b, false
	}
	return f.pool.pick(), true
}

// stickyField is the Set-Cookie line naming b. Secure when the client
// came over TLS; HttpOnly, since no script needs it.
func (f *Forwarder) stickyField(dst []byte, ctx *fasthttp.RequestCtx, b *backend) []byte {
	dst = append(dst, "Set-Cookie: "...)
	dst = append(dst, f.cfg.StickyCookie...)
	dst = append(dst, '=')
	dst = append(dst, b.id...)
	dst = append(dst, "; Path=/; HttpOnly; SameSite=Lax"...)
	if ctx.IsTLS() {
		dst = append(dst, "; Secure"...)
	}
	return append(dst, "\r\n"...)
}

// Serve forwards the request in ctx and puts the upstream's answer in
// ctx.Response, replacing its head; the body streams to the client after
// Serve returns. On error it writes nothing and returns an error wrapping
// one of the Err* values.
func (f *Forwarder) Serve(ctx *fasthttp.RequestCtx) error {
	_, err := f.serve(ctx, nil)
	return err
}

// ServeObserved is Serve with obs told about the body streamed to the
// client (the shadow engine keeps its copy of a sampled answer this way).
// observed reports whether obs will be called: false when Serve failed,
// when the answer has no body (HEAD, 204, 304) or when the request became a
// WebSocket tunnel. An observed answer never gets the sticky cookie: the
// comparison would see it as a difference (the client gets it from its
// next legacy answer that is not compared).
func (f *Forwarder) ServeObserved(ctx *fasthttp.RequestCtx, obs routes.BodyObserver) (observed bool, err error) {
	return f.serve(ctx, obs)
}

func (f *Forwarder) serve(ctx *fasthttp.RequestCtx, obs routes.BodyObserver) (bool, error) {
	deadline := time.Now().Add(f.cfg.Timeout)
	s := f.scratch.Get().(*scratch)
	defer func() {
		s.reset()
		f.scratch.Put(s)
	}()

	chosen, assign := f.choose(ctx)
	if !f.cfg.NoTunnels && isWebSocketUpgrade(&ctx.Request.Header) {
		return false, f.serveUpgrade(ctx, s, chosen)
	}

	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	f.buildRequest(ctx, req, s, chosen)

	resp := fasthttp.AcquireResponse()
	resp.Header.SetNoDefaultContentType(true) // else Content-Type reads as text/plain when absent
	b, err := f.exchange(chosen, req, resp, deadline, s)
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		if s.body.err != nil {
			return false, fmt.Errorf("forward to %s: read request body: %w", b.addr, s.body.err)
		}
		return false, f.upstreamError(b, err)
	}
	if f.setSticky && obs == nil && (assign || b != chosen) {
		s.extra = f.stickyField(s.extra, ctx, b)
	}

	stream := resp.BodyStream()
	if err := s.copyResponseHeader(&ctx.Response.Header, &resp.Header, stream == nil, f.cfg.MaxResponseHeaderBytes); err != nil {
		fasthttp.ReleaseResponse(resp) // closes the connection: the body is unread
		f.done(b, true)
		f.metrics.badResponse.Inc()
		return false, fmt.Errorf("forward to %s: %w: %w", b.addr, ErrBadUpstreamResponse, err)
	}
	failed := resp.StatusCode() >= fasthttp.StatusInternalServerError
	if stream == nil { // HEAD, 1xx, 204, 304: the head is the whole answer
		fasthttp.ReleaseResponse(resp)
		f.done(b, failed)
		return false, nil
	}
	f.pool.observe(b, failed)
	n := resp.Header.ContentLength()
	if n < 0 {
		// Chunked, or until the upstream closes: chunked to the client. Such
		// bodies are often produced as they go, so the head goes out first,
		// unless body bytes came with it: then the first chunk is at hand
		// and goes out in the same write as the head (one write(2) less per
		// answer, and one wake-up less for the client).
		n = -1
		if c := connOf(resp); c == nil || !c.bodyBuffered() {
			ctx.Response.ImmediateHeaderFlush = true
		}
	}
	rb := f.bodies.Get().(*responseBody)
	rb.f, rb.b, rb.resp, rb.r, rb.want, rb.obs = f, b, resp, stream, int64(n), obs
	rb.id = append(rb.id[:0], s.id...)
	ctx.Response.SetBodyStream(rb, n)
	return obs != nil, nil
}

// done ends an exchange with b whose answer is complete.
func (f *Forwarder) done(b *backend, failed bool) {
	f.pool.observe(b, failed)
	b.outstanding.Add(-1)
}

// buildRequest makes req the upstream copy of the request in ctx.
func (f *Forwarder) buildRequest(ctx *fasthttp.RequestCtx, req *fasthttp.Request, s *scratch, b *backend) {
	in := &ctx.Request.Header
	out := &req.Header
	out.DisableNormalizing()
	out.DisableSpecialHeader()
	out.SetNoDefaultContentType(true)
	out.SetMethodBytes(in.Method())
	// The target as received: no path cleaning, the query untouched
	// (transport keeps fasthttp from re-serializing it), only an absolute
	// form cut to its path and query. The protocol is HTTP/1.1, this hop's
	// own (RFC 9110 §6.2); the front door answers the client in the
	// client's version.
	target, authority := requestTarget(in.RequestURI())
	out.SetRequestURIBytes(target)

	n := in.ContentLength()
	s.copyRequestHeader(out, in, f.peer(ctx), n == -1, authority, b.addr)
	if n <= 0 && n != -1 {
		return // no body (or Content-Length: 0, framed by fasthttp)
	}
	if bs := ctx.RequestBodyStream(); bs != nil {
		s.body.r = bs
		req.SetBodyStream(&s.body, n)
		return
	}
	// A server without StreamRequestBody has the whole body in memory.
	req.SetBodyRaw(ctx.Request.Body())
}

// requestTarget is the target to send upstream for the client's target uri,
// and the authority the Host field must carry (nil: the client's Host).
//
// An absolute-form target ("http://host/path?q") is sent in origin form
// ("/path?q"), which is what a client must send to an origin server (RFC
// 9112 §3.2.1), and its authority replaces the client's Host: a server must
// ignore Host for an absolute target (§3.2.2) and the route table matched
// on the authority, while Nginx hands PHP the Host field as HTTP_HOST.
// Forwarding both unchanged would route on one host and let PHP see
// another. Userinfo is never forwarded (the front door refuses it).
func requestTarget(uri []byte) (target, authority []byte) {
	rest, ok := cutScheme(uri)
	if !ok {
		return uri, nil
	}
	end := len(rest)
	for i, c := range rest {
		if c == '/' || c == '?' || c == '#' {
			end = i
			break
		}
	}
	authority, target = rest[:end], rest[end:]
	if i := bytes.LastIndexByte(authority, '@'); i >= 0 {
		authority = authority[i+1:]
	}
	if len(target) == 0 || target[0] != '/' {
		// "http://h" or "http://h?q": the path is "/" (RFC 9112 §3.2.1).
		target = append([]byte{'/'}, target...)
	}
	return target, authority
}

// cutScheme returns uri after "http://" or "https://" (any case), and
// whether it had one.
func cutScheme(uri []byte) ([]byte, bool) {
	for _, scheme := range []string{"http://", "https://"} {
		if len(uri) >= len(scheme) && ascii.EqualFold(uri[:len(scheme)], scheme) {
			return uri[len(scheme):], true
		}
	}
	return uri, false
}

func (f *Forwarder) peer(ctx *fasthttp.RequestCtx) peer {
	a, _ := netip.AddrFromSlice(ctx.RemoteIP())
	a = a.Unmap()
	p := peer{addr: a, tls: ctx.IsTLS()}
	for _, pfx := range f.trusted {
		if pfx.Contains(a) {
			p.trusted = true
			break
		}
	}
	return p
}

// upstreamError classifies a failed exchange with b, counts it, and wraps
// it with the sentinel the front door maps to a status.
func (f *Forwarder) upstreamError(b *backend, err error) error {
	var (
		op       *net.OpError
		ne       net.Error
		sentinel error
		c        prometheus.Counter
	)
	switch {
	case errors.As(err, &op) && op.Op == "dial":
		c, sentinel = f.metrics.dial, ErrUpstreamUnreachable
		if op.Timeout() {
			// Nginx answers 504 for proxy_connect_timeout too.
			sentinel = ErrUpstreamTimeout
		}
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.Is(err, fasthttp.ErrNoFreeConns), errors.As(err, &ne) && ne.Timeout():
		c, sentinel = f.metrics.timeout, ErrUpstreamTimeout
	case closedByPeer(err), errors.As(err, &ne):
		c, sentinel = f.metrics.reset, ErrUpstreamUnreachable
	default:
		c, sentinel = f.metrics.badResponse, ErrBadUpstreamResponse
	}
	c.Inc()
	return fmt.Errorf("forward to %s: %w: %w", b.addr, sentinel, err)
}

// Close closes the idle upstream connections, ends every websocket tunnel
// and waits for their goroutines, and refuses new tunnels from then on; the
// forwarder New built also stops its ejection timers. Requests still
// streaming keep their connections until they end. fasthttp's
// idle-connection cleaner has no stop: it exits by itself within
// IdleConnTimeout once no connection is left. Calling Close again is
// harmless.
func (f *Forwarder) Close() {
	f.tunnels.closeAll()
	for _, hc := range f.clients {
		hc.CloseIdleConnections()
	}
	if f.owner {
		f.pool.close()
	}
}

// metrics are the forwarder's Prometheus series; each error kind's counter
// is resolved once.
type metrics struct {
	dial, timeout, reset, badResponse, body prometheus.Counter
	retries                                 prometheus.Counter
	tunnelsOpen                             prometheus.Gauge
	tunnelsRefused                          prometheus.Counter
}

// newMetrics makes the forwarder's series, and the collectors to register.
func newMetrics() (*metrics, []prometheus.Collector) {
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strangler_upstream_errors_total",
		Help: "Failed exchanges with the monolith, after retries, by kind: dial (connection refused or not opened in time), " +
			"timeout (no response head in time), reset (closed before an answer), bad_response (not HTTP, " +
			"head too large), body (cut off while streaming the body to the client).",
	}, []string{"kind"})
	retries := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "strangler_upstream_retries_total",
		Help: "Requests sent again (to another backend where there is one) after they never reached one: " +
			"a connection not opened, or, for idempotent requests, closed before any answer.",
	})
	tunnelsOpen := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "strangler_upstream_tunnels_open",
		Help: "WebSocket connections passed through to the monolith and still open.",
	})
	tunnelsRefused := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "strangler_upstream_tunnels_refused_total",
		Help: "WebSocket upgrades answered 503 because legacy.max_tunnels were open.",
	})
	return &metrics{
		dial:        errs.WithLabelValues("dial"),
		timeout:     errs.WithLabelValues("timeout"),
		reset:       errs.WithLabelValues("reset"),
		badResponse: errs.WithLabelValues("bad_response"),
		body:        errs.WithLabelValues("body"),
		retries:     retries,

		tunnelsOpen:    tunnelsOpen,
		tunnelsRefused: tunnelsRefused,
	}, []prometheus.Collector{errs, retries, tunnelsOpen, tunnelsRefused}
}
