// Package proxy is Strangler's front door: the public fasthttp server that
// gives every request an id, looks its route up in the runtime its control
// plane published (proxy/control), hands it to the legacy forwarder or a
// ported handler as the route's mode says (dispatch.go: shadow copies
// through proxy/shadow, canary splits through proxy/canary, a route
// demoted by its budgets to legacy), maps a failure to one status, and
// records one access-log line and one metric sample per request. The
// control plane — building each table's runtime, budgets, the admin
// listener, the migration report — is proxy/control.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/strangler-proxy/strangler/internal/linelog"
	"github.com/strangler-proxy/strangler/proxy/control"
	"github.com/strangler-proxy/strangler/proxy/edge"
	"github.com/strangler-proxy/strangler/proxy/shadow"
	"github.com/strangler-proxy/strangler/proxy/shadowreport"
	"github.com/strangler-proxy/strangler/proxy/wirecheck"
	"github.com/strangler-proxy/strangler/routes"
)

var statusClientClosedText = []byte("Client Closed Request")

// Options are what New needs. Config is the only optional part besides the
// loggers, Registerer and Now, whose zero values are described per field.
type Options struct {
	// Config is the front door's configuration; zero fields take their
	// defaults (Config.WithDefaults).
	Config Config
	// Plane is the control plane: Load gives the runtime (route table,
	// splitters, shadow routes, captures) a request is served with, swapped
	// whole by Publish. It also holds the figures the front door records.
	// Required.
	Plane *control.Plane
	// Legacy serves legacy routes and every unmatched request. Required.
	Legacy routes.Handler
	// Logger receives error lines (one per failed request) and fasthttp's
	// own messages. Nil means no logging.
	Logger *zap.Logger
	// AccessLog receives one access line per request, every request (never
	// sampled), each in one Write: a JSON object in the shape of zap's
	// production encoder (level "info", ts, logger "access", msg
	// "request", then the fields) and a newline. The line is encoded here,
	// not by zap: zap's general encoder cost more than the rest of the
	// line's path (issue 14). Write must not keep p; an
	// internal/linelog.Writer buffers it off the request path. Nil means
	// no access log.
	AccessLog io.Writer
	// Registerer takes the front door's metrics. Nil means they are kept
	// in a private registry that nothing exports.
	Registerer prometheus.Registerer
	// Now is the clock for request durations. Nil means time.Now.
	Now func() time.Time

	// Recorded is what the shadow Go handlers published (their
	// RecordingSink), Tapped what the live ones published (a TapSink
	// around the live sink). Nil: that side's side effects are not compared.
	Recorded, Tapped shadow.Published
	// IdempotencyWindow is how long the shadow engine remembers the first
	// answer to an Idempotency-Key, to compare its retries: the live
	// spool's spool.idempotency_window. Zero:
	// shadow.DefaultIdempotencyWindow.
	IdempotencyWindow time.Duration
}

// Server is the front door. Create it with New, run it with Serve, stop it
// with Shutdown.
type Server struct {
	cfg     Config
	plane   *control.Plane
	legacy  routes.Handler
	log     *zap.Logger
	access  io.Writer // nil: no access log
	now     func() time.Time
	ids     *idSource
	limits  limits
	metrics *metrics
	srv     *fasthttp.Server
	edge    *edge.Edge       // PROXY protocol and TLS on the public listener
	redir   *fasthttp.Server // tls.redirect_listen's, built by ServeRedirect

	exchanges sync.Pool // *exchange, one per request in flight

	stats  *shadowreport.Stats // the plane's: unmatched paths, per-route figures
	engine *shadow.Engine

	mu       sync.Mutex // guards ln, stopping, redir and edgeStop, between Serve and Shutdown
	ln       net.Listener
	stopping bool
	edgeStop chan struct{}  // closed by Shutdown: stops the certificate reloads
	edgeDone sync.WaitGroup // the certificate reload loop
}

// New builds the front door. It validates o.Config and registers the
// metrics; it opens no socket.
func New(o Options) (*Server, error) {
	cfg := o.Config.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("proxy config: %w", err)
	}
	if o.Plane == nil || o.Legacy == nil {
		return nil, errors.New("proxy: Plane and Legacy are required")
	}
	s := &Server{
		cfg:    cfg,
		plane:  o.Plane,
		stats:  o.Plane.Stats(),
		legacy: o.Legacy,
		log:    o.Logger,
		access: o.AccessLog,
		now:    o.Now,
		ids:    newIDSource(),
		limits: limits{maxLine: cfg.Server.MaxHeaderLineBytes, maxBody: cfg.Server.MaxBodyBytes},
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.now == nil {
		s.now = time.Now
	}
	reg := o.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if s.edge, err = edge.New(cfg.TLS, cfg.Server.ProxyProtocol, s.log, reg); err != nil {
		return nil, err
	}
	s.exchanges.New = func() any { return new(exchange) }
	if err := s.newShadow(o, reg); err != nil {
		return nil, err
	}

	sc := cfg.Server
	s.srv = &fasthttp.Server{
		Handler:        s.handle,
		ErrorHandler:   s.parseError,
		HeaderReceived: s.headerReceived,
		ExpectHandler:  s.expect,
		Logger:         fastLogger{s.log.Named("fasthttp")},

		// Clients must not notice the proxy: header names keep their case,
		// and nothing the upstream did not send is added to a response.
		DisableHeaderNamesNormalizing: true,
		NoDefaultServerHeader:         true,
		NoDefaultDate:                 true,
		NoDefaultContentType:          true,
		// Bodies of any size stream through in bounded memory; multipart
		// uploads are forwarded as bytes, never parsed here.
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		MaxRequestBodySize:           int(sc.MaxBodyBytes),
		// The read buffer is what bounds the request head (431 past it).
		ReadBufferSize: sc.MaxHeaderBytes,

		ReadTimeout:   sc.ReadTimeout,
		WriteTimeout:  sc.WriteTimeout,
		IdleTimeout:   sc.IdleTimeout,
		MaxConnsPerIP: sc.MaxConnsPerIP,
		// server.concurrency is limitListener's (its 503 has Retry-After);
		// fasthttp's own limit stays out of its way.
		Concurrency: 2 * s.concurrency(),
		// A keep-alive client learns of a shutdown on its next response.
		CloseOnShutdown: true,
		// fasthttp's messages would otherwise quote request heads, cookies
		// included.
		SecureErrorLogMessage: true,
	}
	return s, nil
}

// concurrency is server.concurrency, or fasthttp's default for zero.
func (s *Server) concurrency() int {
	if n := s.cfg.Server.Concurrency; n > 0 {
		return n
	}
	return fasthttp.DefaultConcurrency
}

// Config is the configuration in force, defaults applied.
func (s *Server) Config() Config { return s.cfg }

// Serve answers connections from ln until Shutdown. It returns nil after a
// Shutdown and the listener's error otherwise.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	stopping := s.stopping
	s.mu.Unlock()
	if stopping {
		_ = ln.Close()
		return nil
	}
	s.startShadow()
	s.startEdge()
	// Outside in: wirecheck must read the plain HTTP/1.1 bytes (the TLS and
	// PROXY protocol listeners go inside it); the limit counts every TCP
	// connection, below TLS; lingerConn needs the TCP connection itself.
	l := &limitListener{Listener: lingerListener{ln}, s: s, max: int64(s.concurrency()), silent: s.edge.TLS()}
	if err := s.srv.Serve(wirecheck.Listener{Listener: s.edge.Wrap(l)}); err != nil {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// startEdge starts the certificate reload loop, once.
func (s *Server) startEdge() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping || s.edgeStop != nil || !s.edge.TLS() {
		return
	}
	stop := make(chan struct{})
	s.edgeStop = stop
	s.edgeDone.Go(func() { s.edge.Watch(stop) })
}

// ServeRedirect answers every request on ln (tls.redirect_listen) with a
// redirect to HTTPS (edge.Redirect), until Shutdown. It returns nil after
// a Shutdown and the listener's error otherwise.
func (s *Server) ServeRedirect(ln net.Listener) error {
	port := s.cfg.TLS.RedirectPort
	if port == 0 {
		_, p, _ := net.SplitHostPort(s.cfg.Listen) // validated
		port, _ = strconv.Atoi(p)
	}
	redirect, log := edge.Redirect(port), s.log.Named("redirect")
	srv := &fasthttp.Server{
		// The request id as on the front door: settled, echoed, and named
		// in the 400 a request without a valid Host gets.
		Handler: func(ctx *fasthttp.RequestCtx) {
			var buf [maxRequestIDLen]byte
			id := s.ids.assign(&ctx.Request.Header, buf[:0])
			redirect(ctx)
			ctx.Response.Header.SetBytesV(HeaderRequestID, id)
			if ctx.Response.StatusCode() == fasthttp.StatusBadRequest {
				if ce := log.Check(zap.DebugLevel, "redirect refused: no valid Host"); ce != nil {
					ce.Write(zap.ByteString("request_id", id), zap.ByteString("host", ctx.Request.Header.Host()))
				}
			}
		},
		// A head that does not parse: the front door's answer, with a fresh
		// id (the client's is in the head that did not parse).
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			var buf [maxRequestIDLen]byte
			id := s.ids.next(buf[:0])
			status := parseErrorStatus(err)
			clearResponse(&ctx.Response)
			ctx.SetStatusCode(status)
			ctx.Response.Header.SetBytesV(HeaderRequestID, id)
			ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
			ctx.Response.SetBodyString(http.StatusText(status) + " (request id " + string(id) + ")\n")
			ctx.SetConnectionClose()
			if ce := log.Check(zap.DebugLevel, "redirect refused: request does not parse"); ce != nil {
				ce.Write(zap.ByteString("request_id", id), zap.Int("status", status), zap.Error(err))
			}
		},
		Logger:                fastLogger{log},
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		NoDefaultContentType:  true,
		ReadTimeout:           s.cfg.Server.ReadTimeout,
		WriteTimeout:          s.cfg.Server.WriteTimeout,
		IdleTimeout:           s.cfg.Server.IdleTimeout,
		ReadBufferSize:        s.cfg.Server.MaxHeaderBytes,
		// A body is never read (the answer is the same without it) and the
		// connection closes after the redirect.
		StreamRequestBody: true,
		CloseOnShutdown:   true,
	}
	s.mu.Lock()
	stopping := s.stopping
	if !stopping {
		s.redir = srv
	}
	s.mu.Unlock()
	if stopping {
		_ = ln.Close()
		return nil
	}
	if err := srv.Serve(ln); err != nil {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// Shutdown closes the listener, closes idle keep-alive connections, and waits
// for in-flight requests to finish, for at most server.shutdown_timeout (or
// until ctx ends). Responses written during the wait carry Connection: close.
// It returns an error if requests were still running when it gave up.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.stopping = true
	ln, redir := s.ln, s.redir
	if s.edgeStop != nil {
		close(s.edgeStop)
	}
	s.mu.Unlock()
	s.edgeDone.Wait()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Server.ShutdownTimeout)
	defer cancel()
	if redir != nil {
		// Its answers are immediate: nothing to wait for.
		_ = redir.ShutdownWithContext(ctx)
	}
	err := s.srv.ShutdownWithContext(ctx)
	// fasthttp's Shutdown returns at once when its Serve has not registered
	// the listener yet; closing it here makes that Serve return instead of
	// serving forever. Usually fasthttp has closed it already.
	if ln != nil {
		_ = ln.Close()
	}
	if err != nil {
		err = fmt.Errorf("drain in-flight requests: %w", err)
	}
	// Every response is written now, so no shadow job is still waiting
	// for a primary body: drain the pool in what is left of the time. The
	// files the control plane opened are its to close, after this.
	return errors.Join(err, s.stopShadow(ctx))
}

// exchange is one request's bookkeeping, pooled. Nothing in it outlives the
// handler: the id bytes are copied into log lines as they are written.
type exchange struct {
	start   time.Time
	id      []byte
	route   string
	mode    string
	backend string
	body    *clientBody    // set when the request has a body
	rr      *control.Route // the matched route's runtime; nil when unmatched
	side    routes.Side    // who answered the client; "" when the proxy did
	legacy  routes.Handler // the legacy side for this request: the forwarder, or the capture around it
	idBuf   [maxRequestIDLen]byte
	remote  [64]byte     // the client address, formatted for the access log
	line    linelog.Line // the access line's buffer, kept with the exchange
}

func (s *Server) acquire() *exchange {
	x := s.exchanges.Get().(*exchange)
	x.start = s.now()
	x.route, x.mode, x.backend = routeUnmatched, modeNone, backendProxy
	x.body, x.rr, x.side, x.legacy = nil, nil, "", nil
	x.id = x.idBuf[:0]
	s.metrics.inFlight.Inc()
	return x
}

// handle is the fasthttp handler: recover → request id → limits → dispatch.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	x := s.acquire()
	defer s.finish(ctx, x) // recovers a panic from anything below
	x.id = s.ids.assign(&ctx.Request.Header, x.id)
	if err := s.limits.check(&ctx.Request.Header); err != nil {
		s.fail(ctx, x, err)
		return
	}
	if err := screen(ctx); err != nil { // hygiene.go: framing, Host, path
		s.fail(ctx, x, err)
		return
	}
	x.body = watchBody(&ctx.Request, s.limits.maxBody)
	if err := s.dispatch(ctx, x); err != nil {
		s.fail(ctx, x, err)
	}
}

// fail answers the request from err: the status from StatusOf, a short text
// body naming the request id, and one log line (Error for 5xx, Debug below).
func (s *Server) fail(ctx *fasthttp.RequestCtx, x *exchange, err error) {
	if x.body != nil {
		// The client's side of the body decides, whatever the handler made
		// of the read error (legacy reports it without a sentinel).
		if st := x.body.status(); st != 0 {
			err = &StatusError{Code: st, Err: err}
		}
	}
	var status int
	if answered(err) {
		status = ctx.Response.StatusCode() // the handler's own answer stands
	} else {
		status = StatusOf(err)
		s.writeError(ctx, x, status)
	}
	lvl := zapcore.DebugLevel
	if status >= 500 {
		lvl = zapcore.ErrorLevel
	}
	if ce := s.log.Check(lvl, "request failed"); ce != nil {
		fields := []zap.Field{
			zap.ByteString("request_id", x.id),
			zap.Int("status", status),
			zap.String("route", x.route),
			zap.String("backend", x.backend),
			zap.ByteString("method", ctx.Method()),
			zap.ByteString("path", ctx.RequestURI()),
			zap.Error(err),
		}
		if lvl == zapcore.DebugLevel {
			fields = append(fields, zap.Strings("headers", redactedHeaders(&ctx.Request.Header)))
		}
		ce.Write(fields...)
	}
}

// writeError replaces whatever is in the response with the standard error
// answer: "<status text> (request id <id>)\n" as text/plain.
func (s *Server) writeError(ctx *fasthttp.RequestCtx, x *exchange, status int) {
	clearResponse(&ctx.Response)
	ctx.Response.SetStatusCode(status)
	if status == StatusClientClosedRequest {
		// Nobody is reading; the status is for the log and metrics. A client
		// that only half-closed still reads a status line, so it names the
		// code as Nginx's logs do rather than fasthttp's "Unknown Status Code".
		ctx.Response.Header.SetStatusMessage(statusClientClosedText)
		ctx.SetConnectionClose()
		return
	}
	if status == http.StatusRequestEntityTooLarge {
		// Draining the rest of a too-large body is the client's bandwidth
		// wasted and ours; Nginx closes too.
		ctx.Response.SetConnectionClose()
	}
	if status == http.StatusServiceUnavailable {
		// Every 503 of the front door says when to come back (RFC 9110
		// §10.2.3): what it reports is a passing state.
		ctx.Response.Header.Set("Retry-After", concurrencyRetryAfter)
	}
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.Response.AppendBodyString(http.StatusText(status))
	ctx.Response.AppendBodyString(" (request id ")
	ctx.Response.AppendBody(x.id)
	ctx.Response.AppendBodyString(")\n")
}

// clearResponse drops what a failed handler left in the response without
// Response.Reset, which would also switch fasthttp's default Date and
// Content-Type back on and header-name normalizing off.
func clearResponse(r *fasthttp.Response) {
	r.ResetBody()
	h := &r.Header
	closeConn := h.ConnectionClose()
	var keys []string
	for k := range h.All() {
		keys = append(keys, string(k))
	}
	for _, k := range keys {
		h.Del(k)
	}
	if closeConn {
		h.SetConnectionClose()
	}
}

// finish runs after every request, panicking or not: it turns a panic into a
// 500, echoes the request id, and records the access-log line and metrics.
func (s *Server) finish(ctx *fasthttp.RequestCtx, x *exchange) {
	if p := recover(); p != nil {
		s.panicked(ctx, x, p)
	}
	if len(x.id) == 0 {
		// A panic before the id was settled, or an early answer.
		x.id = s.ids.next(x.id)
	}
	ctx.Response.Header.SetBytesV(HeaderRequestID, x.id)
	status := ctx.Response.StatusCode()
	end := s.now()
	elapsed := end.Sub(x.start)
	s.metrics.inFlight.Dec()
	s.metrics.observe(x.route, x.mode, x.backend, status, elapsed.Seconds())
	if x.rr != nil && x.side != "" {
		x.rr.Collector.Served(x.side, elapsed, status >= 500)
	}
	s.logAccess(ctx, x, status, end, elapsed)
	x.body, x.rr, x.legacy = nil, nil, nil
	s.exchanges.Put(x)
}

// logAccess writes the request's access line: encoded into the exchange's
// own buffer, so it allocates nothing once the buffer has grown, and
// handed to the writer in one call.
func (s *Server) logAccess(ctx *fasthttp.RequestCtx, x *exchange, status int, end time.Time, elapsed time.Duration) {
	if s.access == nil {
		return
	}
	l := &x.line
	l.Begin("info", "access", "request", end)
	l.Bytes("request_id", x.id)
	l.Bytes("method", ctx.Method())
	l.Bytes("host", ctx.Request.Header.Host())
	l.Bytes("path", ctx.RequestURI())
	l.String("route", x.route)
	l.String("mode", x.mode)
	l.String("backend", x.backend)
	l.Int("status", int64(status))
	l.Seconds("duration", elapsed)
	l.Int("bytes_in", bytesIn(x))
	l.Int("bytes_out", bytesOut(&ctx.Response))
	l.Bytes("remote", appendIP(x.remote[:0], ctx.RemoteIP()))
	_, _ = s.access.Write(l.End()) // a log write failing must not fail the request
}

func (s *Server) panicked(ctx *fasthttp.RequestCtx, x *exchange, p any) {
	if len(x.id) == 0 {
		x.id = s.ids.next(x.id)
	}
	s.writeError(ctx, x, http.StatusInternalServerError)
	// The handler stopped at an unknown point, possibly mid-body.
	ctx.SetConnectionClose()
	s.log.Error("handler panicked",
		zap.ByteString("request_id", x.id),
		zap.String("route", x.route),
		zap.String("backend", x.backend),
		zap.ByteString("method", ctx.Method()),
		zap.ByteString("path", ctx.RequestURI()),
		zap.Any("panic", p),
		zap.Strings("headers", redactedHeaders(&ctx.Request.Header)),
		zap.Stack("stack"),
	)
}

// appendIP formats ip without allocating (net.IP.String allocates).
func appendIP(dst []byte, ip net.IP) []byte {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return dst
	}
	return a.Unmap().AppendTo(dst)
}

// bytesIn is the request body bytes the handler read from the client.
func bytesIn(x *exchange) int64 {
	if x.body != nil {
		return x.body.read
	}
	return 0
}

// bytesOut is the response body size: buffered, or declared for a streamed
// body (-1 when a streamed body is chunked: it is written after the log line).
func bytesOut(r *fasthttp.Response) int64 {
	if r.IsBodyStream() {
		return int64(r.Header.ContentLength())
	}
	return int64(len(r.Body()))
}

// headerReceived runs between the request head and its body. fasthttp v1.78
// pre-reads up to 8 KiB of a streamed body before calling the handler, even
// for a Content-Length over the limit, so a client that waits for an answer
// before sending its body would wait for the read timeout instead of a 413.
// Marking such a request as "Expect: 100-continue" routes it to expect,
// which answers 413 before any body byte is read, as Nginx does.
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if int64(h.ContentLength()) > s.limits.maxBody && h.IsHTTP11() {
		h.Set(fasthttp.HeaderExpect, "100-continue")
	}
	return fasthttp.RequestConfig{}
}

// expect answers "Expect: 100-continue" requests: 100 when the head is within
// limits, else the limit's status with the standard error body. fasthttp then
// closes the connection without reading the body. (ExpectHandler's doc says
// not to touch the response; v1.78 keeps it and only sets the status, which
// TestExpectContinue pins.)
func (s *Server) expect(ctx *fasthttp.RequestCtx) int {
	err := s.limits.check(&ctx.Request.Header)
	if err == nil {
		err = screen(ctx) // no 100 Continue for a head handle would refuse
	}
	if err == nil {
		return fasthttp.StatusContinue
	}
	x := s.acquire()
	defer s.finish(ctx, x)
	x.id = s.ids.assign(&ctx.Request.Header, x.id)
	s.fail(ctx, x, err)
	return ctx.Response.StatusCode()
}

// parseError answers a request fasthttp could not read: 431 for a head over
// server.max_header_bytes, 408 for a read timeout, 413 for a body over the
// limit, 400 for anything unparsable. The head may be partial, so the id is
// always a fresh one.
func (s *Server) parseError(ctx *fasthttp.RequestCtx, err error) {
	x := s.acquire()
	defer s.finish(ctx, x)
	x.id = s.ids.next(x.id)
	s.fail(ctx, x, &StatusError{Code: parseErrorStatus(err), Err: err})
}

func parseErrorStatus(err error) int {
	var small *fasthttp.ErrSmallBuffer
	var te timeouter
	switch {
	case errors.As(err, &small):
		return http.StatusRequestHeaderFieldsTooLarge
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.As(err, &te) && te.Timeout(), errors.Is(err, fasthttp.ErrTimeout):
		return http.StatusRequestTimeout
	default:
		return http.StatusBadRequest
	}
}
