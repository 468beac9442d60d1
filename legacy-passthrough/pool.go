package legacy

import (
	"context"
	"crypto/tls"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/internal/jitter"
)

// Balancing: least outstanding requests per weight, between two backends
// drawn at random by weight ("power of two choices", Mitzenmacher 2001;
// Envoy's LEAST_REQUEST and Nginx's random two least_conn do the same).
//
// Why not round robin: a PHP-FPM backend has a fixed number of workers
// (pm = static), and one slow endpoint or a backend with a cold opcache
// ties them up. Round robin keeps sending that backend its share, so
// requests queue behind busy workers while another backend idles; counting
// outstanding requests steers around it within a request or two. Two random
// choices instead of the global minimum: no lock and no scan per request,
// and several proxy instances (or many requests arriving at once) do not
// all pile onto the one backend that looked idlest a moment ago. At no
// load every outstanding count is equal and the first draw wins, so traffic
// follows the weights exactly.

// maxAttempts bounds the backends one request is tried on (see
// Forwarder.exchange).
const maxAttempts = 3

// pool is the backends of one legacy section with their shared state:
// health, ejections and outstanding requests. The forwarder New builds owns
// it; a derived forwarder (Derive) shares it, so shadow traffic and client
// traffic see the same health and the same load.
type pool struct {
	backends []*backend
	byID     map[string]*backend // sticky cookie values
	cum      []int               // cumulative weights; nil when all are equal
	health   HealthConfig
	ej       EjectionConfig
	// maxEjected is how many backends may be ejected at once: never all.
	maxEjected int
	dialTCP    dialFunc
	log        *zap.Logger
	now        func() time.Time

	running atomic.Bool            // Run was called
	series  []prometheus.Collector // the per-backend metrics

	mu       sync.Mutex // guards nEjected, closed and the backends' eject fields
	nEjected int
	closed   bool
}

// backend is one monolith server. The atomics are read on every request;
// the eject fields change only under pool.mu.
type backend struct {
	target
	i      int
	weight int64
	id     string // its sticky cookie value
	tls    *tls.Config

	healthy     atomic.Bool // the active checks' verdict; true until one says otherwise
	checked     atomic.Bool // an active check has run
	ejected     atomic.Bool
	outstanding atomic.Int64 // sent and not finished (a streamed body counts until its end)
	fails       atomic.Int32 // consecutive failures on real requests

	// The health checker's streaks, owned by its goroutine.
	passes, failures int

	ejections  int       // ejections in a row, for the growing ejection time
	readmitted time.Time // end of the last ejection
	timer      *time.Timer

	requests, errors, ejectionsTotal prometheus.Counter
}

// newPool builds the pool for cfg (validated). Its metrics are in
// p.series, for the caller to register.
func newPool(cfg Config, dial dialFunc, log *zap.Logger) (*pool, error) {
	targets, err := cfg.backends()
	if err != nil {
		return nil, err
	}
	p := &pool{
		byID:    make(map[string]*backend, len(targets)),
		health:  cfg.Health,
		ej:      cfg.Ejection,
		dialTCP: dial,
		log:     log,
		now:     time.Now,
	}
	if n := len(targets); n > 1 {
		p.maxEjected = min(n-1, max(1, n*cfg.Ejection.MaxPercent/100))
	}
	var tlsBase *upstreamTLS
	for i, t := range targets {
		b := &backend{target: t, i: i, weight: int64(t.weight)}
		b.healthy.Store(true)
		if t.tls {
			if tlsBase == nil {
				if tlsBase, err = newUpstreamTLS(cfg.TLS, log); err != nil {
					return nil, err
				}
			}
			b.tls = tlsBase.forBackend(t.host)
		}
		b.id = backendID(t.addr)
		if _, dup := p.byID[b.id]; dup {
			b.id = "b" + strconv.Itoa(i)
		}
		p.byID[b.id] = b
		p.backends = append(p.backends, b)
	}
	if slices.ContainsFunc(p.backends, func(b *backend) bool { return b.weight != p.backends[0].weight }) {
		sum := 0
		for _, b := range p.backends {
			sum += int(b.weight)
			p.cum = append(p.cum, sum)
		}
	}
	p.series = p.newSeries()
	return p, nil
}

// backendID is a backend's sticky cookie value: derived from its address,
// so reordering or adding backends does not move existing clients.
func backendID(addr string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(addr))
	return strconv.FormatUint(h.Sum64()&(1<<48-1), 36)
}

// usable: the backend may get new requests.
func (b *backend) usable() bool { return b.healthy.Load() && !b.ejected.Load() }

// lighter reports whether x has fewer outstanding requests per weight than
// y. A tie is not lighter: the first of the two random draws keeps it.
func lighter(x, y *backend) bool {
	return x.outstanding.Load()*y.weight < y.outstanding.Load()*x.weight
}

// pick chooses the backend for a new request.
func (p *pool) pick() *backend {
	bs := p.backends
	if len(bs) == 1 {
		return bs[0]
	}
	i, j := p.draw2()
	a, b := bs[i], bs[j]
	switch ua, ub := a.usable(), b.usable(); {
	case ua && ub:
		if lighter(b, a) {
			return b
		}
		return a
	case ua:
		return a
	case ub:
		return b
	}
	return p.fallback(nil)
}

// draw2 draws two different backends at random, by weight.
func (p *pool) draw2() (int, int) {
	n := len(p.backends)
	if p.cum == nil {
		i := rand.IntN(n)
		j := rand.IntN(n - 1)
		if j >= i {
			j++
		}
		return i, j
	}
	i := p.drawWeighted()
	for range 3 {
		if j := p.drawWeighted(); j != i {
			return i, j
		}
	}
	return i, (i + 1) % n // weights so skewed that the draws keep agreeing
}

func (p *pool) drawWeighted() int {
	r := rand.IntN(p.cum[len(p.cum)-1])
	i, _ := slices.BinarySearch(p.cum, r+1)
	return i
}

// fallback is the lightest backend not in tried: a usable one if there is
// one; else one not ejected (every health check failing may be the checks'
// fault, and a request may still get through: better than a certain 502);
// else any. Nil when every backend was tried.
func (p *pool) fallback(tried []*backend) *backend {
	var best [3]*backend // usable, not ejected, any
	for _, b := range p.backends {
		if slices.Contains(tried, b) {
			continue
		}
		k := 2
		switch {
		case b.usable():
			k = 0
		case !b.ejected.Load():
			k = 1
		}
		if best[k] == nil || lighter(b, best[k]) {
			best[k] = b
		}
	}
	for _, b := range best {
		if b != nil {
			return b
		}
	}
	return nil
}

// byCookie is the backend a sticky cookie names, if it is usable.
func (p *pool) byCookie(v []byte) *backend {
	if b := p.byID[string(v)]; b != nil && b.usable() {
		return b
	}
	return nil
}

// observe records how an exchange with b ended, for passive ejection.
func (p *pool) observe(b *backend, failed bool) {
	if !failed {
		// Most exchanges succeed: read before writing, so the backend's
		// cache line is not written on every request.
		if b.fails.Load() != 0 {
			b.fails.Store(0)
		}
		return
	}
	b.errors.Inc()
	if int(b.fails.Add(1)) >= p.ej.ConsecutiveFailures && p.maxEjected > 0 && !b.ejected.Load() {
		p.eject(b)
	}
}

// eject takes b out of rotation for a growing time, unless maxEjected are
// out already.
func (p *pool) eject(b *backend) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || b.ejected.Load() || p.nEjected >= p.maxEjected {
		return
	}
	now := p.now()
	var d time.Duration
	b.ejections, d = ejectionTime(p.ej, b.ejections, b.readmitted, now)
	// Up to a fifth shorter, never longer: proxies that ejected a backend
	// for the same outage do not all send it traffic again at one instant.
	d = jitter.Down(d, 0.2)
	b.ejected.Store(true)
	p.nEjected++
	b.ejectionsTotal.Inc()
	b.timer = time.AfterFunc(d, func() { p.readmit(b, "ejection time over") })
	p.log.Warn("backend ejected", zap.String("backend", b.addr),
		zap.Int32("consecutive_failures", b.fails.Load()), zap.Duration("for", d),
		zap.Int("ejected", p.nEjected), zap.Int("backends", len(p.backends)))
}

// ejectionTime is the length of an ejection of a backend ejected prev
// times in a row and readmitted at readmitted (zero: never ejected): one
// BaseTime longer than the last, less one BaseTime for every BaseTime it
// has served since, capped at MaxTime. It returns the new count too.
func ejectionTime(c EjectionConfig, prev int, readmitted, now time.Time) (int, time.Duration) {
	if !readmitted.IsZero() {
		prev = max(0, prev-int(now.Sub(readmitted)/c.BaseTime))
	}
	n := min(prev+1, int(c.MaxTime/c.BaseTime)+1)
	return n, min(c.BaseTime*time.Duration(n), c.MaxTime)
}

// readmit puts an ejected b back in rotation.
func (p *pool) readmit(b *backend, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !b.ejected.Load() {
		return
	}
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.fails.Store(0)
	b.ejected.Store(false)
	p.nEjected--
	b.readmitted = p.now()
	if !p.closed {
		p.log.Info("backend readmitted", zap.String("backend", b.addr), zap.String("reason", reason))
	}
}

// close stops the ejection timers.
func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, b := range p.backends {
		if b.timer != nil {
			b.timer.Stop()
			b.timer = nil
		}
	}
}

// dial opens a connection to b: TCP, then the TLS handshake for an https
// backend. Nothing has been sent when it fails, so a request may go to
// another backend; a failed handshake is a dial error like a refused
// connection.
func (p *pool) dial(ctx context.Context, b *backend) (net.Conn, error) {
	c, err := p.dialTCP(ctx, b.addr)
	if err != nil || b.tls == nil {
		return c, err
	}
	tc := tls.Client(c, b.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: c.RemoteAddr(), Err: &handshakeError{err}}
	}
	return tc, nil
}

// handshakeError is a failed TLS handshake with a backend. It is a timeout
// when the handshake ran out of time (a 504, like a dial timeout).
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return "tls handshake: " + e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }
func (e *handshakeError) Timeout() bool {
	var ne net.Error
	return errors.Is(e.err, context.DeadlineExceeded) || errors.As(e.err, &ne) && ne.Timeout()
}

// newSeries makes the per-backend series.
func (p *pool) newSeries() []prometheus.Collector {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strangler_upstream_backend_requests_total",
		Help: "Requests sent to each monolith backend, retries on it included.",
	}, []string{"backend"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strangler_upstream_backend_errors_total",
		Help: "Failures of each monolith backend as passive ejection counts them: connection refused, reset " +
			"or timed out, a broken answer, or a 5xx status.",
	}, []string{"backend"})
	ejections := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strangler_upstream_backend_ejections_total",
		Help: "Times each monolith backend was ejected for consecutive failures.",
	}, []string{"backend"})
	for _, b := range p.backends {
		b.requests = requests.WithLabelValues(b.addr)
		b.errors = errs.WithLabelValues(b.addr)
		b.ejectionsTotal = ejections.WithLabelValues(b.addr)
	}
	return []prometheus.Collector{requests, errs, ejections, poolCollector{p}}
}

// poolCollector exports the backends' state, read when scraped.
type poolCollector struct{ p *pool }

var (
	descHealthy = prometheus.NewDesc("strangler_upstream_backend_healthy",
		"1 while the monolith backend passes its active health checks (legacy.health), else 0.", []string{"backend"}, nil)
	descEjected = prometheus.NewDesc("strangler_upstream_backend_ejected",
		"1 while the monolith backend is ejected for consecutive failures (legacy.ejection), else 0.", []string{"backend"}, nil)
	descOutstanding = prometheus.NewDesc("strangler_upstream_backend_outstanding",
		"Requests sent to the monolith backend and not finished (a streaming body counts until its end).", []string{"backend"}, nil)
)

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descHealthy
	ch <- descEjected
	ch <- descOutstanding
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, b := range c.p.backends {
		ch <- prometheus.MustNewConstMetric(descHealthy, prometheus.GaugeValue, boolValue(b.healthy.Load()), b.addr)
		ch <- prometheus.MustNewConstMetric(descEjected, prometheus.GaugeValue, boolValue(b.ejected.Load()), b.addr)
		ch <- prometheus.MustNewConstMetric(descOutstanding, prometheus.GaugeValue, float64(b.outstanding.Load()), b.addr)
	}
}

func boolValue(v bool) float64 {
	if v {
		return 1
	}
	return 0
}
