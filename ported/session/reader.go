package session

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
)

// Session is one request's PHP session, decoded: $_SESSION as the
// monolith would see it. Its getters (String, Int, Bool, Float, Map, Get,
// Lookup, All) come from *Array. It is read-only; see Reader.Update to write.
// Like Value it prints and marshals as "[redacted]".
type Session struct {
	*Array
	id string
}

// Options configure New.
type Options struct {
	// Config is the `session:` section, defaults applied.
	Config Config
	// Store overrides the store Config names (tests). Nil: built from
	// Config; then Close closes it.
	Store Store
	// Logger gets one line per refused session or failed read. Nil: none.
	Logger *zap.Logger
	// Registerer takes strangler_session_* metrics. Nil: kept, not
	// exported.
	Registerer prometheus.Registerer
}

// Reader is the handlers' way to the monolith's sessions (their
// dependency, never a global). It is safe for concurrent use.
type Reader struct {
	cfg     Config
	lim     Limits
	store   Store
	owned   bool // Close closes store
	log     *zap.Logger
	m       *metrics
	handler string // for write permission; "" = the shared reader
	// readOnly: a shadow candidate's view, which never writes.
	readOnly bool
}

// New builds the reader and its store (which connects on first use, so a
// store that is away at start does not stop the process).
func New(o Options) (*Reader, error) {
	c := o.Config.WithDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	r := &Reader{cfg: c, lim: c.Limits(), store: o.Store, log: o.Logger, m: newMetrics(o.Registerer)}
	if r.log == nil {
		r.log = zap.NewNop()
	}
	r.log = r.log.Named("session")
	if r.store == nil && c.Enabled() {
		var err error
		if r.store, err = openStore(c); err != nil {
			return nil, err
		}
		r.owned = true
	}
	return r, nil
}

func openStore(c Config) (Store, error) {
	switch c.Backend {
	case BackendFiles:
		return NewFiles(c.SavePath)
	case BackendRedis:
		return NewRedis(RedisOptions{
			Addr: c.Address, Username: c.Username, Password: c.Password, DB: c.Database,
			Prefix: c.Prefix, DialTimeout: c.DialTimeout, Timeout: c.Timeout, PoolSize: c.PoolSize,
			Lock: c.Write.Lock, MaxLifetime: c.Write.MaxLifetime,
		}), nil
	case BackendMemcached:
		return NewMemcached(c.Address, c.Prefix, c.DialTimeout, c.Timeout, c.PoolSize), nil
	}
	return nil, fmt.Errorf("session: unknown backend %q", c.Backend)
}

// Close closes the store New opened.
func (r *Reader) Close() error {
	if r == nil || !r.owned || r.store == nil {
		return nil
	}
	return r.store.Close()
}

// Backend names the store ("" when none).
func (r *Reader) Backend() string { return r.cfg.Backend }

// Ping says whether the store answers, for readiness. Files always do.
func (r *Reader) Ping(ctx context.Context) error {
	p, ok := r.store.(interface{ Ping(context.Context) error })
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	return p.Ping(ctx)
}

// ReadOnly is the view a shadow candidate gets: the same store and
// sessions, and Update always refused.
func (r *Reader) ReadOnly() *Reader {
	v := *r
	v.readOnly, v.owned = true, false
	return &v
}

// For is the view the handler named name gets: it may Update when
// session.write.handlers lists name.
func (r *Reader) For(name string) *Reader {
	v := *r
	v.handler, v.owned = name, false
	return &v
}

// HasCookie reports whether the request carries the session cookie as a
// string, i.e. whether PHP's session_start would try to resume a session.
func (r *Reader) HasCookie(ctx *fasthttp.RequestCtx) bool {
	_, ok := cookieValue(&ctx.Request.Header, r.cfg.CookieName)
	return ok
}

// Session reads and decodes the request's session. Errors: ErrNoSession
// (wrapped, with the reason) when PHP would not resume one, ErrUnavailable
// (wrapped) when the store did not answer within session.timeout. Go never
// creates, adopts, regenerates or extends a session: it only reads what
// PHP wrote.
func (r *Reader) Session(ctx *fasthttp.RequestCtx) (*Session, error) {
	raw, ok := cookieValue(&ctx.Request.Header, r.cfg.CookieName)
	if !ok {
		r.m.result(r.cfg.Backend, resultNoCookie)
		return nil, ErrNoSession
	}
	if !r.cfg.SID.Valid(raw) {
		// A forged or mangled cookie, or one PHP issued under other
		// sid_length/sid_bits_per_character settings.
		r.m.result(r.cfg.Backend, resultInvalidID)
		if ce := r.log.Check(zap.DebugLevel, "session cookie is not an id PHP issues; no session"); ce != nil {
			ce.Write(zap.Int("length", len(raw)), requestID(ctx))
		}
		return nil, fmt.Errorf("%w: cookie is not a session id", ErrNoSession)
	}
	if r.store == nil {
		r.m.result("", resultUnavailable)
		r.log.Error("session read: no session backend configured (session.backend)", requestID(ctx))
		return nil, fmt.Errorf("%w: no backend configured", ErrUnavailable)
	}
	return r.read(ctx, string(raw))
}

func (r *Reader) read(ctx *fasthttp.RequestCtx, id string) (*Session, error) {
	start := time.Now()
	// Not ctx as the parent: a RequestCtx outside a server (a shadow
	// candidate's copy) has no Done channel to offer. The timeout bounds
	// the call either way.
	rctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
	data, err := r.store.Read(rctx, id, r.lim.MaxBytes)
	cancel()
	r.m.seconds.WithLabelValues(r.cfg.Backend).Observe(time.Since(start).Seconds())
	switch {
	case errors.Is(err, errNotFound):
		// Never issued, expired, or destroyed by PHP: a fixation attempt
		// with a made-up id lands here too.
		r.m.result(r.cfg.Backend, resultNotFound)
		return nil, fmt.Errorf("%w: not in the store", ErrNoSession)
	case errors.Is(err, ErrTooLarge), errors.Is(err, ErrMalformed):
		return nil, r.refuse(ctx, err)
	case err != nil:
		r.m.result(r.cfg.Backend, resultUnavailable)
		r.log.Error("session store unavailable", zap.String("backend", r.cfg.Backend), zap.Error(err), requestID(ctx))
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	top, err := Decode(r.cfg.SerializeHandler, data, r.lim)
	if err != nil {
		return nil, r.refuse(ctx, err)
	}
	if top.Len() == 0 {
		// What PHP has right after session_start for a new id: nothing to
		// read, and nothing that says who the user is.
		r.m.result(r.cfg.Backend, resultEmpty)
		return nil, fmt.Errorf("%w: empty session", ErrNoSession)
	}
	r.m.result(r.cfg.Backend, resultFound)
	return &Session{Array: top, id: id}, nil
}

// refuse logs data the decoder or the store refused (hostile or corrupt:
// one Warn line, which says why and where but holds none of the data) and
// makes it "no session".
func (r *Reader) refuse(ctx *fasthttp.RequestCtx, err error) error {
	r.m.result(r.cfg.Backend, resultRefused)
	r.log.Warn("session data refused; no session", zap.String("backend", r.cfg.Backend), zap.Error(err), requestID(ctx))
	return fmt.Errorf("%w: %w", ErrNoSession, err)
}

// ErrReadOnly: Update on a reader that may not write (a shadow candidate,
// or a handler session.write.handlers does not list).
var ErrReadOnly = errors.New("session is read-only for this handler")

// Update writes the session back: under PHP's lock it reads the current
// data again, calls fn with it, and stores what fn returns, encoded with
// session.serialize_handler. fn returning nil leaves the session as it is.
// It never creates a session (s came from Session) and never changes its
// id or lifetime beyond what PHP's own write does.
func (r *Reader) Update(_ *fasthttp.RequestCtx, s *Session, fn func(*Array) (*Array, error)) error {
	if r.readOnly || r.handler == "" || !slices.Contains(r.cfg.Write.Handlers, r.handler) {
		return ErrReadOnly
	}
	u, ok := r.store.(Updater)
	if !ok {
		return fmt.Errorf("%w: backend %s cannot write", ErrReadOnly, r.cfg.Backend)
	}
	// As in read: the timeout, not the RequestCtx, bounds the call.
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
	defer cancel()
	err := u.Update(ctx, s.id, r.lim.MaxBytes, func(old []byte) ([]byte, error) {
		top, err := Decode(r.cfg.SerializeHandler, old, r.lim)
		if err != nil {
			return nil, err
		}
		next, err := fn(top)
		if err != nil || next == nil {
			return nil, err
		}
		return Encode(r.cfg.SerializeHandler, next)
	})
	if errors.Is(err, errNotFound) {
		return fmt.Errorf("%w: gone before the write", ErrNoSession)
	}
	return err
}

// Require wraps next so that it runs only with a session. Without one the
// answer is the monolith's: 302 to session.login_url with PHP's default
// Content-Type and no body; with the store unavailable, 503 with
// Retry-After and a short body naming the request id. Whenever the request
// carries the session cookie, the answer has session.cache_limiter's
// headers, as PHP's session_start sends them.
func (r *Reader) Require(next func(*fasthttp.RequestCtx, *Session) error) Guarded {
	return Guarded{r: r, next: next}
}

// Guarded is a handler that requires a session (see Reader.Require). It
// has the routes' handler shape.
type Guarded struct {
	r    *Reader
	next func(*fasthttp.RequestCtx, *Session) error
}

// Serve implements the handler shape.
func (g Guarded) Serve(ctx *fasthttp.RequestCtx) error {
	s, err := g.r.Session(ctx)
	if g.r.HasCookie(ctx) {
		setCacheLimiter(&ctx.Response.Header, g.r.cfg.CacheLimiter)
	}
	switch {
	case err == nil:
		return g.next(ctx, s)
	case errors.Is(err, ErrUnavailable):
		g.r.Unavailable(ctx)
		return nil
	default:
		g.r.LoginRedirect(ctx)
		return nil
	}
}

// LoginRedirect answers as PHP does after header('Location: ...') on a
// 302 with no output: Content-Type is PHP's default_mimetype with its
// default_charset.
func (r *Reader) LoginRedirect(ctx *fasthttp.RequestCtx) {
	ctx.Response.ResetBody()
	ctx.SetStatusCode(fasthttp.StatusFound)
	ctx.Response.Header.Set("Location", r.cfg.LoginURL)
	ctx.Response.Header.SetContentType("text/html; charset=UTF-8")
}

// Unavailable answers 503 with Retry-After (whole seconds, at least 1) and
// a short text body naming the request id. The store's failure was logged
// when it happened.
func (r *Reader) Unavailable(ctx *fasthttp.RequestCtx) {
	ctx.Response.ResetBody()
	ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	ctx.Response.Header.Set("Retry-After", strconv.Itoa(int(max(1, math.Ceil(r.cfg.RetryAfter.Seconds())))))
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.Response.AppendBodyString("Service Unavailable: session store unavailable (request id ")
	ctx.Response.AppendBody(ctx.Request.Header.Peek("X-Request-Id"))
	ctx.Response.AppendBodyString(")\n")
}

// setCacheLimiter sends what php_session_cache_limiter sends for
// session.cache_limiter = nocache (ext/session/session.c). The other modes
// carry clock- and script-dependent Expires and Last-Modified headers and
// are not offered (Config.Validate).
func setCacheLimiter(h *fasthttp.ResponseHeader, mode string) {
	if mode != "nocache" {
		return
	}
	h.Set("Expires", "Thu, 19 Nov 1981 08:52:00 GMT")
	h.Set("Cache-Control", "no-store, no-cache, must-revalidate")
	h.Set("Pragma", "no-cache")
}

func requestID(ctx *fasthttp.RequestCtx) zap.Field {
	return zap.ByteString("request_id", ctx.Request.Header.Peek("X-Request-Id"))
}
