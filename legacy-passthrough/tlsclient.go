package legacy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/internal/filestamp"
)

// upstreamTLS is the client side of https:// backends: TLS 1.2 or later,
// HTTP/1.1 (the forwarder speaks nothing else), the CAs of CAFile or the
// system's, and the client certificate if one is configured. CAFile is
// read once, at start; the client certificate is reloaded when its files
// change (see clientCert).
type upstreamTLS struct {
	cfg  *tls.Config
	cert *clientCert // nil without a client certificate
}

func newUpstreamTLS(c UpstreamTLS, log *zap.Logger) (*upstreamTLS, error) {
	u := &upstreamTLS{cfg: &tls.Config{
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"http/1.1"},
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // documented as for tests only
	}}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("legacy.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("legacy.tls.ca_file: %s holds no PEM certificate", c.CAFile)
		}
		u.cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		var err error
		if u.cert, err = newClientCert(c.CertFile, c.KeyFile, log); err != nil {
			return nil, err
		}
		u.cfg.GetClientCertificate = u.cert.get
	}
	return u, nil
}

// forBackend is the config for the backend at host: its name checked
// unless server_name says otherwise, and a session cache of its own (a
// ticket from one backend is no use to another).
func (u *upstreamTLS) forBackend(host string) *tls.Config {
	c := u.cfg.Clone()
	if c.ServerName == "" {
		c.ServerName = host
	}
	c.ClientSessionCache = tls.NewLRUClientSessionCache(0)
	if u.cert != nil {
		c.ClientSessionCache = sessionCache{c.ClientSessionCache, u.cert}
	}
	return c
}

// sessionCache keeps the sessions of each client certificate apart. A
// resumed session presents no certificate, so the backend would go on
// seeing the old one after a renewal; this way the first connection after
// it makes a full handshake with the new one (the old sessions age out of
// the cache). A handshake under way during the reload may still file its
// session under the new certificate: one more resumption as the old one,
// at most per connection then opening.
type sessionCache struct {
	tls.ClientSessionCache
	cert *clientCert
}

// Get is asked before the handshake, which with a session to resume never
// asks for the certificate: the files are checked here too.
func (s sessionCache) Get(key string) (*tls.ClientSessionState, bool) {
	return s.ClientSessionCache.Get(s.cert.current().key(key))
}

func (s sessionCache) Put(key string, cs *tls.ClientSessionState) {
	s.ClientSessionCache.Put(s.cert.cur.Load().key(key), cs)
}

// clientCert is legacy.tls's client certificate, reloaded when its files
// change, so a renewal (cert-manager, certbot, a mesh's short-lived
// certificates) reaches new backend connections without a restart.
// Connections already open keep the certificate they were opened with.
//
// Each new connection's handshake stats the two files (two syscalls
// beside a handshake's cost; kept-alive connections shake hands once). A change loads the pair whole, under a lock only the
// reloading handshake takes: the others go on with the current pair. A
// pair that does not load (a renewal caught half-written: the new
// certificate beside the old key) leaves the current one in use, with one
// Warn line, and is tried again when the files change again.
type clientCert struct {
	certFile, keyFile string
	log               *zap.Logger
	cur               atomic.Pointer[certGen]

	mu       sync.Mutex // the reloading handshake's; guards the fields below
	failedAt [2]filestamp.Stamp
	failed   string // the last failure logged
}

// certGen is one loaded version of the pair.
type certGen struct {
	cert   *tls.Certificate
	stamps [2]filestamp.Stamp
	n      uint64 // 1 for the pair read at start, then one more per reload
}

// key is a session cache key for this version.
func (g *certGen) key(k string) string { return strconv.FormatUint(g.n, 10) + "|" + k }

func newClientCert(certFile, keyFile string, log *zap.Logger) (*clientCert, error) {
	c := &clientCert{certFile: certFile, keyFile: keyFile, log: log}
	g, err := c.load()
	if err != nil {
		return nil, err
	}
	g.n = 1
	c.cur.Store(g)
	return c, nil
}

func (c *clientCert) stamps() (st [2]filestamp.Stamp, err error) {
	for i, p := range []string{c.certFile, c.keyFile} {
		if st[i], err = filestamp.Of(p); err != nil {
			return st, err
		}
	}
	return st, nil
}

// load reads the pair. Stamps first: a file replaced while it is read is
// read again at the next handshake.
func (c *clientCert) load() (*certGen, error) {
	st, err := c.stamps()
	if err != nil {
		return nil, fmt.Errorf("legacy.tls.cert_file/key_file: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return nil, fmt.Errorf("legacy.tls.cert_file/key_file: %w", err)
	}
	return &certGen{cert: &cert, stamps: st}, nil
}

// get is tls.Config.GetClientCertificate.
func (c *clientCert) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return c.current().cert, nil
}

// current is the pair to use now, reloaded first if its files changed.
func (c *clientCert) current() *certGen {
	g := c.cur.Load()
	st, err := c.stamps()
	if err == nil && st == g.stamps {
		return g
	}
	if c.mu.TryLock() {
		defer c.mu.Unlock()
		g = c.reload(st, err)
	}
	return g
}

// reload loads the pair after its files changed (or could not be
// stat'ed), unless this version already failed to load. Under c.mu.
func (c *clientCert) reload(st [2]filestamp.Stamp, statErr error) *certGen {
	cur := c.cur.Load()
	if statErr == nil && (st == cur.stamps || st == c.failedAt) {
		return cur
	}
	g, err := c.load()
	if err != nil {
		if statErr == nil {
			c.failedAt = st
		}
		if msg := err.Error(); msg != c.failed {
			c.failed = msg
			c.log.Warn("backend client certificate reload failed; still using the previous one", zap.Error(err))
		}
		return cur
	}
	c.failed = ""
	g.n = cur.n + 1
	c.cur.Store(g)
	c.log.Info("backend client certificate reloaded", zap.String("cert_file", c.certFile),
		zap.Time("not_after", g.cert.Leaf.NotAfter))
	return g
}
