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

// Forwarder sends requests to the monolith. It is safe for concurrent use.
type Forwarder struct {
	cfg     Config
	addr    string // Upstream's host:port
	trusted []netip.Prefix
	log     *zap.Logger
	metrics *metrics
	hc      *fasthttp.HostClient
	dial    dialFunc
	tunnels *tunnels // upgraded (websocket) connections, see tunnel.go

	scratch sync.Pool // *scratch
	bodies  sync.Pool // *responseBody
}

// Interface guard.
var _ routes.Handler = (*Forwarder)(nil)

// dialFunc opens a connection to addr; tests swap in an in-memory listener.
type dialFunc func(ctx context.Context, addr string) (net.Conn, error)

// New builds a Forwarder for cfg (defaults applied, then validated). log may
// be nil; reg nil means a private registry (metrics not exported). New does
// no I/O: the first request dials.
func New(cfg Config, log *zap.Logger, reg prometheus.Registerer) (*Forwarder, error) {
	return newForwarder(cfg, log, reg, nil)
}

func newForwarder(cfg Config, log *zap.Logger, reg prometheus.Registerer, dial dialFunc) (*Forwarder, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("legacy config: %w", err)
	}
	addr, _ := parseUpstream(cfg.Upstream)         // validated above
	trusted, _ := parseTrusted(cfg.TrustedProxies) // validated above
	if log == nil {
		log = zap.NewNop()
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	if dial == nil {
		var d net.Dialer
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	f := &Forwarder{
		cfg:     cfg,
		addr:    addr,
		trusted: trusted,
		log:     log.Named("legacy"),
		metrics: m,
		dial:    dial,
	}
	f.tunnels = newTunnels(cfg.MaxTunnels, cfg.TunnelIdleTimeout, f.log, m.tunnelsOpen)
	f.scratch.New = func() any { return new(scratch) }
	f.bodies.New = func() any { return new(responseBody) }
	f.hc = &fasthttp.HostClient{
		Addr:        addr,
		DialTimeout: f.dialUpstream,
		Transport:   transport{},
		// One retry, and only for what retryIf allows.
		MaxIdemponentCallAttempts: 2,
		RetryIfErr:                f.retryIf,

		MaxConns:            cfg.MaxConns,
		MaxConnWaitTimeout:  cfg.Timeout, // the exchange deadline cuts it shorter
		MaxIdleConnDuration: cfg.IdleConnTimeout,
		// The most recently used connection first: the one least likely to
		// be near Nginx's keepalive_timeout, and spare ones age out after a
		// burst instead of being kept warm in turn.
		ConnPoolStrategy: fasthttp.LIFO,
		ReadBufferSize:   cfg.MaxResponseHeaderBytes,
		// ReadTimeout and WriteTimeout stay zero: upstreamConn enforces the
		// idle timeouts, and the Do deadline bounds the rest.

		// Fidelity: names and targets as the client wrote them, nothing the
		// client did not send (no User-Agent), never a redirect followed.
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
		NoDefaultUserAgentHeader:      true,
		StreamResponseBody:            true,
		// fasthttp's messages would otherwise quote response heads.
		SecureErrorLogMessage: true,
	}
	return f, nil
}

// headSlack is room for interim 1xx heads in the response-head capture.
const headSlack = 1 << 10

// dialUpstream is the HostClient's dialer. timeout is what is left of the
// exchange; DialTimeout caps it.
func (f *Forwarder) dialUpstream(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := f.dialConn(addr, timeout)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (f *Forwarder) dialConn(addr string, timeout time.Duration) (*upstreamConn, error) {
	if timeout <= 0 || timeout > f.cfg.DialTimeout {
		timeout = f.cfg.DialTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := f.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	// Interim heads come before the final one, so the capture has room for
	// a few beyond fasthttp's limit on one head.
	return newUpstreamConn(c, f.cfg.ReadTimeout, f.cfg.WriteTimeout, f.cfg.MaxResponseHeaderBytes+headSlack), nil
}

// retryIf lets HostClient send a request a second time only when it is
// idempotent (RFC 9110 §9.2.2) and failed on a keep-alive connection the
// upstream had already closed, with nothing read back (transport marks those
// errStaleConn). A request with a streamed body is never retried: its body
// is gone (HostClient checks that too).
func (f *Forwarder) retryIf(req *fasthttp.Request, _ int, err error) (resetTimeout, retry bool) {
	var stale *errStaleConn
	if !errors.As(err, &stale) || !idempotent(req.Header.Method()) || req.IsBodyStream() {
		return false, false
	}
	f.metrics.retries.Inc()
	if ce := f.log.Check(zap.DebugLevel, "retrying on a fresh connection"); ce != nil {
		ce.Write(zap.ByteString("method", req.Header.Method()), zap.Error(err))
	}
	return false, true // the retry shares the exchange deadline
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
// client (the shadow engine keeps its copy of a sampled answer this way). observed reports whether obs will be called: false when Serve
// failed, when the answer has no body (HEAD, 204, 304) or when the request
// became a WebSocket tunnel.
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

	if isWebSocketUpgrade(&ctx.Request.Header) && servedConn(ctx) {
		return false, f.serveUpgrade(ctx, s)
	}

	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	f.buildRequest(ctx, req, s)

	resp := fasthttp.AcquireResponse()
	resp.Header.SetNoDefaultContentType(true) // else Content-Type reads as text/plain when absent
	if err := f.hc.DoDeadline(req, resp, deadline); err != nil {
		fasthttp.ReleaseResponse(resp)
		if s.body.err != nil {
			return false, fmt.Errorf("forward to %s: read request body: %w", f.addr, s.body.err)
		}
		return false, f.upstreamError(err)
	}

	stream := resp.BodyStream()
	if err := s.copyResponseHeader(&ctx.Response.Header, &resp.Header, stream == nil, f.cfg.MaxResponseHeaderBytes); err != nil {
		fasthttp.ReleaseResponse(resp) // closes the connection: the body is unread
		f.metrics.badResponse.Inc()
		return false, fmt.Errorf("forward to %s: %w: %w", f.addr, ErrBadUpstreamResponse, err)
	}
	if stream == nil { // HEAD, 1xx, 204, 304: the head is the whole answer
		fasthttp.ReleaseResponse(resp)
		return false, nil
	}
	n := resp.Header.ContentLength()
	if n < 0 {
		// Chunked, or until the upstream closes: chunked to the client. Such
		// bodies are often produced as they go, so the head goes out first.
		n = -1
		ctx.Response.ImmediateHeaderFlush = true
	}
	b := f.bodies.Get().(*responseBody)
	b.f, b.resp, b.r, b.want, b.obs = f, resp, stream, int64(n), obs
	b.id = append(b.id[:0], s.id...)
	ctx.Response.SetBodyStream(b, n)
	return obs != nil, nil
}

// buildRequest makes req the upstream copy of the request in ctx.
func (f *Forwarder) buildRequest(ctx *fasthttp.RequestCtx, req *fasthttp.Request, s *scratch) {
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
	s.copyRequestHeader(out, in, f.peer(ctx), n == -1, authority, f.addr)
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

// upstreamError classifies a failed exchange, counts it, and wraps it with
// the sentinel the front door maps to a status.
func (f *Forwarder) upstreamError(err error) error {
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
	return fmt.Errorf("forward to %s: %w: %w", f.addr, sentinel, err)
}

// Ping reports whether the upstream accepts a TCP connection within
// Config.DialTimeout (or ctx, if sooner), for /readyz. It does not reach
// PHP.
func (f *Forwarder) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.DialTimeout)
	defer cancel()
	c, err := f.dial(ctx, f.addr)
	if err != nil {
		return fmt.Errorf("ping %s: %w: %w", f.addr, ErrUpstreamUnreachable, err)
	}
	_ = c.Close()
	return nil
}

// Close closes the idle upstream connections, ends every websocket tunnel
// and waits for their goroutines, and refuses new tunnels from then on.
// Requests still streaming keep their connections until they end. fasthttp's
// idle-connection cleaner has no stop: it exits by itself within
// IdleConnTimeout once no connection is left. Calling Close again is
// harmless.
func (f *Forwarder) Close() {
	f.tunnels.closeAll()
	f.hc.CloseIdleConnections()
}

// metrics are the forwarder's Prometheus series; each error kind's counter
// is resolved once.
type metrics struct {
	dial, timeout, reset, badResponse, body prometheus.Counter
	retries                                 prometheus.Counter
	tunnelsOpen                             prometheus.Gauge
	tunnelsRefused                          prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strangler_upstream_errors_total",
		Help: "Failed exchanges with the monolith by kind: dial (connection refused or not opened in time), " +
			"timeout (no response head in time), reset (closed before an answer), bad_response (not HTTP, " +
			"head too large), body (cut off while streaming the body to the client).",
	}, []string{"kind"})
	retries := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "strangler_upstream_retries_total",
		Help: "Idempotent requests sent again after a kept-alive connection turned out closed.",
	})
	tunnelsOpen := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "strangler_upstream_tunnels_open",
		Help: "WebSocket connections passed through to the monolith and still open.",
	})
	tunnelsRefused := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "strangler_upstream_tunnels_refused_total",
		Help: "WebSocket upgrades answered 503 because legacy.max_tunnels were open.",
	})
	if err := promreg.Register(reg, "legacy", errs, retries, tunnelsOpen, tunnelsRefused); err != nil {
		return nil, err
	}
	return &metrics{
		dial:        errs.WithLabelValues("dial"),
		timeout:     errs.WithLabelValues("timeout"),
		reset:       errs.WithLabelValues("reset"),
		badResponse: errs.WithLabelValues("bad_response"),
		body:        errs.WithLabelValues("body"),
		retries:     retries,

		tunnelsOpen:    tunnelsOpen,
		tunnelsRefused: tunnelsRefused,
	}, nil
}
