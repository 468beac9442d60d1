package edge

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/internal/cidr"
	"github.com/strangler-proxy/strangler/internal/promreg"
)

// Edge is the public listener's layers, built once at start.
type Edge struct {
	tlsCfg  TLSConfig
	pp      ProxyProtocolConfig
	trusted []netip.Prefix
	certs   *certStore // nil without TLS
	tls     *tls.Config
	log     *zap.Logger
	m       metrics
}

type metrics struct {
	handshakeErrors prometheus.Counter
	ppUntrusted     prometheus.Counter
	ppInvalid       prometheus.Counter
	reloadOK        prometheus.Counter
	reloadErr       prometheus.Counter
}

// New builds the layers tlsCfg and pp ask for (both with defaults applied
// and validated); it reads the certificate files. log may be nil; reg nil
// keeps the metrics private.
func New(tlsCfg TLSConfig, pp ProxyProtocolConfig, log *zap.Logger, reg prometheus.Registerer) (*Edge, error) {
	if log == nil {
		log = zap.NewNop()
	}
	e := &Edge{tlsCfg: tlsCfg, pp: pp, log: log.Named("edge")}
	var err error
	if e.trusted, err = cidr.Parse("server.proxy_protocol.trusted", pp.Trusted); err != nil {
		return nil, err
	}
	if tlsCfg.Enabled() {
		if e.certs, err = newCertStore(tlsCfg.Certificates, e.log); err != nil {
			return nil, err
		}
		e.tls = &tls.Config{
			GetCertificate: e.certs.get,
			MinVersion:     tls.VersionTLS12,
			// fasthttp speaks HTTP/1.1 only: never advertise h2, or a
			// browser would send HTTP/2 frames fasthttp cannot read.
			NextProtos: []string{"http/1.1"},
		}
		if tlsCfg.MinVersion == "1.3" {
			e.tls.MinVersion = tls.VersionTLS13
		}
	}
	cs := e.newMetrics()
	if err := promreg.Register(reg, "edge", cs...); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Edge) newMetrics() []prometheus.Collector {
	hs := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "strangler_tls_handshake_errors_total",
		Help: "TLS handshakes on the public listener that failed (no shared version or cipher, plain HTTP to the TLS port, a client that gave up); the connection is closed without an answer.",
	})
	pp := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strangler_proxy_protocol_rejected_total",
		Help: "Connections closed for their PROXY protocol header: untrusted (a header from a peer not in server.proxy_protocol.trusted) or invalid (a malformed header from a trusted one).",
	}, []string{"reason"})
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strangler_tls_certificate_reloads_total",
		Help: "Reloads of changed certificate files, by result (ok, error: the previous certificates stay in use).",
	}, []string{"result"})
	e.m = metrics{
		handshakeErrors: hs,
		ppUntrusted:     pp.WithLabelValues("untrusted"),
		ppInvalid:       pp.WithLabelValues("invalid"),
		reloadOK:        reloads.WithLabelValues("ok"),
		reloadErr:       reloads.WithLabelValues("error"),
	}
	// A layer that is off exports nothing: a plain listener's zero
	// handshake errors would read as a healthy TLS front door.
	var cs []prometheus.Collector
	if e.certs != nil {
		cs = append(cs, hs, reloads, expiryCollector{e.certs})
	}
	if e.pp.Enabled() {
		cs = append(cs, pp)
	}
	return cs
}

// TLS reports whether the listener speaks TLS.
func (e *Edge) TLS() bool { return e.certs != nil }

// Wrap layers ln (the bound TCP listener): PROXY protocol when trusted
// peers are configured, then TLS when certificates are. Reading a PROXY
// header and the TLS handshake happen on the connection's first read, on
// the server's goroutine for it, never in Accept.
func (e *Edge) Wrap(ln net.Listener) net.Listener {
	if e.pp.Enabled() {
		ln = &ppListener{Listener: &proxyproto.Listener{
			Listener:          ln,
			ConnPolicy:        e.policy,
			ReadHeaderTimeout: e.pp.HeaderTimeout,
		}, e: e}
	}
	if e.tls != nil {
		ln = &tlsListener{Listener: ln, e: e}
	}
	return ln
}

// policy: a trusted peer's header is used (and a missing one is fine), any
// other peer's makes the first read fail.
func (e *Edge) policy(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
	if a, ok := o.Upstream.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && cidr.Contains(e.trusted, ip) {
			return proxyproto.USE, nil
		}
	}
	return proxyproto.REJECT, nil
}

// Watch reloads changed certificate files every tls.reload_interval until
// stop is closed. Without TLS it returns at once.
func (e *Edge) Watch(stop <-chan struct{}) {
	if e.certs == nil {
		return
	}
	t := time.NewTicker(e.tlsCfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		e.Reload()
	}
}

// Reload loads the certificate files again if they changed, and says so
// in a log line and a metric; on error the current certificates stay.
func (e *Edge) Reload() {
	switch err := e.certs.reload(); {
	case errors.Is(err, errUnchanged):
	case err != nil:
		e.m.reloadErr.Inc()
		e.log.Warn("certificate reload failed; still serving the previous certificates", zap.Error(err))
	default:
		e.m.reloadOK.Inc()
		fields := []zap.Field{}
		for f, na := range e.certs.notAfter() {
			fields = append(fields, zap.Time(f, na))
		}
		e.log.Info("certificates reloaded", zap.Dict("not_after", fields...))
	}
}

// ppListener hands out the PROXY protocol connections wrapped so that a
// header error closes the connection silently.
type ppListener struct {
	net.Listener
	e *Edge
}

func (l *ppListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if pc, ok := c.(*proxyproto.Conn); ok {
		return &ppConn{Conn: pc, e: l.e}, nil
	}
	return c, nil
}

// ppConn turns a failed PROXY header into a closed connection: the error
// surfaces on the first read, and io.EOF instead of it makes the HTTP
// server (or the TLS handshake) end without writing an answer.
type ppConn struct {
	*proxyproto.Conn
	e       *Edge
	checked bool // the header was dealt with: only read from here
}

func (c *ppConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.checked {
		return n, err
	}
	c.checked = true
	if err == nil || errors.Is(err, io.EOF) || isNetError(err) {
		return n, err
	}
	// Anything else is the header's: not allowed from this peer, or
	// malformed.
	if errors.Is(err, proxyproto.ErrSuperfluousProxyHeader) {
		c.e.m.ppUntrusted.Inc()
	} else {
		c.e.m.ppInvalid.Inc()
	}
	if ce := c.e.log.Check(zap.DebugLevel, "connection closed for its PROXY header"); ce != nil {
		ce.Write(zap.Stringer("peer", c.Conn.Raw().RemoteAddr()), zap.Error(err))
	}
	_ = c.Conn.Close()
	return 0, io.EOF
}

func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// tlsListener hands out TLS server connections.
type tlsListener struct {
	net.Listener
	e *Edge
}

func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tlsConn{Conn: tls.Server(c, l.e.tls), e: l.e}, nil
}

// tlsConn completes the handshake on the first read and, when it fails,
// closes the connection and reports io.EOF, so the HTTP server neither
// answers nor logs a bad request for what was never HTTP. It embeds
// *tls.Conn, so fasthttp still sees a TLS connection (ctx.IsTLS, and with
// it X-Forwarded-Proto: https).
type tlsConn struct {
	*tls.Conn
	e    *Edge
	done bool
}

func (c *tlsConn) Read(p []byte) (int, error) {
	if !c.done {
		c.done = true
		// The handshake runs under the read deadline fasthttp set for the
		// request (server.read_timeout).
		if err := c.Conn.Handshake(); err != nil {
			c.e.m.handshakeErrors.Inc()
			if ce := c.e.log.Check(zap.DebugLevel, "TLS handshake failed"); ce != nil {
				ce.Write(zap.Stringer("peer", c.Conn.RemoteAddr()), zap.Error(err))
			}
			_ = c.Conn.Close()
			return 0, io.EOF
		}
	}
	return c.Conn.Read(p)
}

// expiryCollector exports each certificate's expiry, read when scraped.
type expiryCollector struct{ s *certStore }

var descExpiry = prometheus.NewDesc("strangler_tls_certificate_expiry_timestamp_seconds",
	"When each served certificate expires (Unix time), by certificate file: alert well before it, in case renewals stopped.",
	[]string{"cert_file"}, nil)

func (c expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descExpiry }

func (c expiryCollector) Collect(ch chan<- prometheus.Metric) {
	for f, na := range c.s.notAfter() {
		ch <- prometheus.MustNewConstMetric(descExpiry, prometheus.GaugeValue, float64(na.Unix()), f)
	}
}
