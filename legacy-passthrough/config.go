package legacy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/strangler-proxy/strangler/internal/ascii"
	"github.com/strangler-proxy/strangler/internal/cidr"
)

// Config is the `legacy:` section: where the monolith's Nginx listens and how
// the forwarder talks to it. None of it reloads live.
//
// Every zero value means "the default" (see WithDefaults), so a config file
// only names what it changes. There is no way to switch a timeout off: every
// network call here is bounded.
type Config struct {
	// Upstream is the monolith's Nginx as http://host:port (or https://,
	// see TLS): the one-backend form. A missing port means 80 (443 for
	// https). No path: request targets are forwarded as the client sent
	// them. Set either Upstream or Upstreams.
	Upstream string `mapstructure:"upstream"`

	// Upstreams lists the monolith's backends when there is more than one,
	// each a URL like Upstream with an optional weight (default 1). Requests
	// are balanced by least outstanding requests per weight between two
	// backends drawn at random by weight (see pool.go); backends failing
	// active health checks (Health) or ejected for consecutive failures
	// (Ejection) get none while another is usable. Empty: Upstream is the
	// one backend.
	Upstreams []Backend `mapstructure:"upstreams"`

	// Health is the active health check each backend gets in the
	// background. Its verdict also makes /readyz: ready while at least one
	// backend is healthy.
	Health HealthConfig `mapstructure:"health"`

	// Ejection takes a backend out of rotation after consecutive failures
	// seen on real requests (passive ejection).
	Ejection EjectionConfig `mapstructure:"ejection"`

	// StickyCookie, when set, keeps a client on one backend: an answer to a
	// client without a valid cookie of this name gets Set-Cookie naming the
	// backend that served it, and later requests carrying it go there while
	// it is usable. For monoliths whose PHP sessions live on each backend's
	// disk. Default "": off, every request is balanced (right when sessions
	// are shared, in Redis or on a shared disk). The cookie is passed on to
	// PHP like any other.
	StickyCookie string `mapstructure:"sticky_cookie"`

	// TLS is how https:// backends are dialed. Unused for http://.
	TLS UpstreamTLS `mapstructure:"tls"`

	// Timeout bounds one exchange up to the response head: waiting for a
	// free connection, dialing, sending the request (body included), and
	// waiting for the status line and headers. Past it the client gets 504.
	// The response body is not under it: a long download is bounded by
	// ReadTimeout between two reads instead. Default 30s.
	Timeout time.Duration `mapstructure:"timeout"`

	// DialTimeout bounds opening a TCP connection to Upstream (never longer
	// than what is left of Timeout). Default 2s: Nginx on a private network
	// accepts within milliseconds or is down.
	DialTimeout time.Duration `mapstructure:"dial_timeout"`

	// ReadTimeout is the longest the upstream may stay silent while the
	// response body streams, between two reads (an idle timer, like Nginx's
	// proxy_read_timeout, not a cap on the whole download). Past it the
	// client connection is closed mid-body. Default 60s.
	ReadTimeout time.Duration `mapstructure:"read_timeout"`

	// WriteTimeout is the longest the upstream may stop reading while the
	// request body streams to it, between two writes (Nginx's
	// proxy_send_timeout). Timeout still caps the whole upload. Default 60s.
	WriteTimeout time.Duration `mapstructure:"write_timeout"`

	// IdleConnTimeout closes a keep-alive connection to Upstream after it
	// has been idle this long. It must stay below UpstreamKeepaliveTimeout:
	// when Nginx closes an idle connection first, a request the proxy sends
	// on it at that moment fails (a POST cannot be retried). Default 60s.
	IdleConnTimeout time.Duration `mapstructure:"idle_conn_timeout"`

	// UpstreamKeepaliveTimeout is the monolith Nginx's keepalive_timeout,
	// stated here so Validate can keep IdleConnTimeout below it. Change it
	// only together with Nginx's setting. Default 75s, Nginx's default.
	UpstreamKeepaliveTimeout time.Duration `mapstructure:"upstream_keepalive_timeout"`

	// MaxConns caps the connections open to each backend, idle or busy. A
	// request that finds them all busy waits for one within Timeout, then
	// gets 504. Default 1024.
	MaxConns int `mapstructure:"max_conns"`

	// TrustedProxies lists the peers (CIDRs like 10.0.0.0/8, or single
	// addresses) whose X-Forwarded-For chain, X-Forwarded-Proto/-Host/-Port/
	// -Prefix, Forwarded and X-Real-IP are believed and passed on. From any
	// other peer those headers are dropped and replaced with what the proxy
	// saw. Default empty: trust no one, which is right when clients connect
	// to the proxy directly.
	TrustedProxies []string `mapstructure:"trusted_proxies"`

	// TunnelIdleTimeout closes a websocket connection passed through to the
	// upstream when no byte has moved either way for this long (Nginx's
	// proxy_read_timeout plays this part for its websocket proxying).
	// Default 60s.
	TunnelIdleTimeout time.Duration `mapstructure:"tunnel_idle_timeout"`

	// MaxTunnels caps the websocket connections open through the proxy at
	// once; past it an upgrade is answered 503 with Retry-After. Each holds
	// two sockets and 64 KiB of buffers. Default 1024.
	MaxTunnels int `mapstructure:"max_tunnels"`
	// NoTunnels forwards a websocket handshake as an ordinary request
	// (Upgrade and Connection stripped like any hop-by-hop field) instead
	// of opening a tunnel. It is for forwarders whose requests are copies
	// with no client connection to hand over: the shadow side's, and the
	// offline compare's. Not a config.yaml key; main sets it. Zero value
	// (false): handshakes are tunnelled.
	NoTunnels bool `mapstructure:"-"`

	// MaxResponseHeaderBytes caps the upstream's status line and headers;
	// past it the client gets 502. It is also the read buffer of each busy
	// upstream connection. Default 16384 (Nginx hands PHP's headers through
	// a 4k or 8k fastcgi_buffer_size, so they fit with room to spare).
	MaxResponseHeaderBytes int `mapstructure:"max_response_header_bytes"`
}

// Backend is one entry of Config.Upstreams. In YAML either a map
// ({url: "http://10.0.0.1:80", weight: 2}) or the URL alone.
type Backend struct {
	// URL is http://host:port or https://host:port, as Config.Upstream.
	URL string `mapstructure:"url"`
	// Weight is the backend's share of requests relative to the others,
	// 1 to 1000. Default 1.
	Weight int `mapstructure:"weight"`
}

// BackendFromString is a mapstructure decode hook that reads a bare URL in
// legacy.upstreams as a Backend of weight 1.
func BackendFromString(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[Backend]() || from.Kind() != reflect.String {
		return data, nil
	}
	return Backend{URL: data.(string)}, nil
}

// HealthConfig is legacy.health: each backend is checked every Interval,
// on a new connection each time.
type HealthConfig struct {
	// Path is the target of a GET each check sends; a 2xx or 3xx within
	// Timeout passes. Pick one that reaches PHP (the sample monolith's
	// /healthz-php does), or a dead PHP-FPM behind a live Nginx passes.
	// Default "": the check only opens a TCP connection (and the TLS
	// handshake, for https), which is what /readyz did before.
	Path string `mapstructure:"path"`
	// Host is the Host header of the check. Default "": the backend's
	// host:port.
	Host string `mapstructure:"host"`
	// Interval between two checks of one backend. Default 5s.
	Interval time.Duration `mapstructure:"interval"`
	// Timeout bounds one check, connection included. At most Interval.
	// Default 2s.
	Timeout time.Duration `mapstructure:"timeout"`
	// HealthyAfter is how many checks in a row must pass before an
	// unhealthy backend gets requests again. Default 2.
	HealthyAfter int `mapstructure:"healthy_after"`
	// UnhealthyAfter is how many checks in a row must fail before a
	// healthy backend gets no more requests. Default 3. A backend's first
	// check decides at once: a backend found down at start gets nothing.
	UnhealthyAfter int `mapstructure:"unhealthy_after"`
}

// EjectionConfig is legacy.ejection. A failure is a connection refused,
// reset or timed out, a broken answer, or a 5xx status; any other answer
// resets the count.
type EjectionConfig struct {
	// ConsecutiveFailures ejects a backend after this many failures in a
	// row. Default 5.
	ConsecutiveFailures int `mapstructure:"consecutive_failures"`
	// BaseTime is the first ejection's length; each ejection that follows
	// soon after lasts one BaseTime longer (the count drops by one for
	// every BaseTime the backend then serves without one). Each ejection is
	// drawn from 80-100 % of its length (jitter). An active check
	// that finds an ejected, unhealthy backend healthy again readmits it
	// early. Default 30s.
	BaseTime time.Duration `mapstructure:"base_time"`
	// MaxTime caps one ejection. Default 5m.
	MaxTime time.Duration `mapstructure:"max_time"`
	// MaxPercent caps the backends ejected at once, as a percentage of
	// them (rounded down, but at least one of two or more). Never all: a
	// lone backend is never ejected. 1 to 100. Default 50.
	MaxPercent int `mapstructure:"max_percent"`
}

// UpstreamTLS is legacy.tls, for https:// backends.
type UpstreamTLS struct {
	// CAFile is a PEM bundle of the CAs that sign the backends'
	// certificates, read at start (a new CA needs a restart). Default "":
	// the system roots.
	CAFile string `mapstructure:"ca_file"`
	// ServerName is checked against the backends' certificates and sent as
	// SNI. Default "": each backend's host from its URL.
	ServerName string `mapstructure:"server_name"`
	// CertFile and KeyFile are a client certificate and key (PEM) the
	// proxy presents, for backends that require one. Both or neither.
	// Reloaded when the files change (checked at each new connection to a
	// backend), so renewals need no restart; a pair that does not load
	// leaves the previous one in use.
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// InsecureSkipVerify accepts any certificate. For tests only: it lets
	// anyone on the path read and change the traffic.
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify"`
}

// Defaults of Config; see the field comments.
const (
	DefaultTimeout                  = 30 * time.Second
	DefaultDialTimeout              = 2 * time.Second
	DefaultReadTimeout              = 60 * time.Second
	DefaultWriteTimeout             = 60 * time.Second
	DefaultIdleConnTimeout          = 60 * time.Second
	DefaultUpstreamKeepaliveTimeout = 75 * time.Second
	DefaultMaxConns                 = 1024
	DefaultMaxResponseHeaderBytes   = 16 << 10
	DefaultTunnelIdleTimeout        = 60 * time.Second
	DefaultMaxTunnels               = 1024

	DefaultHealthInterval      = 5 * time.Second
	DefaultHealthTimeout       = 2 * time.Second
	DefaultHealthyAfter        = 2
	DefaultUnhealthyAfter      = 3
	DefaultConsecutiveFailures = 5
	DefaultEjectionBaseTime    = 30 * time.Second
	DefaultEjectionMaxTime     = 5 * time.Minute
	DefaultEjectionMaxPercent  = 50
	DefaultBackendWeight       = 1
)

// Upper bounds that catch a misplaced zero rather than limit anyone.
const (
	maxBackendWeight       = 1000
	maxHealthAfter         = 100
	maxConsecutiveFailures = 1000
)

// Bounds on MaxResponseHeaderBytes: below the lower one even a plain Nginx
// answer with one cookie may not fit; the upper one keeps a misplaced extra
// zero from costing a megabyte per busy connection.
const (
	minResponseHeaderBytes = 1 << 10
	maxResponseHeaderBytes = 1 << 20
)

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	setDefault(&c.Timeout, DefaultTimeout)
	setDefault(&c.DialTimeout, DefaultDialTimeout)
	setDefault(&c.ReadTimeout, DefaultReadTimeout)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.IdleConnTimeout, DefaultIdleConnTimeout)
	setDefault(&c.UpstreamKeepaliveTimeout, DefaultUpstreamKeepaliveTimeout)
	setDefault(&c.MaxConns, DefaultMaxConns)
	setDefault(&c.MaxResponseHeaderBytes, DefaultMaxResponseHeaderBytes)
	setDefault(&c.TunnelIdleTimeout, DefaultTunnelIdleTimeout)
	setDefault(&c.MaxTunnels, DefaultMaxTunnels)
	c.Upstreams = slices.Clone(c.Upstreams)
	for i := range c.Upstreams {
		setDefault(&c.Upstreams[i].Weight, DefaultBackendWeight)
	}
	h := &c.Health
	setDefault(&h.Interval, DefaultHealthInterval)
	setDefault(&h.Timeout, min(DefaultHealthTimeout, h.Interval))
	setDefault(&h.HealthyAfter, DefaultHealthyAfter)
	setDefault(&h.UnhealthyAfter, DefaultUnhealthyAfter)
	e := &c.Ejection
	setDefault(&e.ConsecutiveFailures, DefaultConsecutiveFailures)
	setDefault(&e.BaseTime, DefaultEjectionBaseTime)
	setDefault(&e.MaxTime, max(DefaultEjectionMaxTime, e.BaseTime))
	setDefault(&e.MaxPercent, DefaultEjectionMaxPercent)
	return c
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Validate reports every problem in c, joined, each naming the key and the
// fix. It does no I/O (no DNS either), so `strangler check` can run it
// anywhere. Call it on WithDefaults().
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if _, err := c.backends(); err != nil {
		errs = append(errs, err)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"timeout", c.Timeout},
		{"dial_timeout", c.DialTimeout},
		{"read_timeout", c.ReadTimeout},
		{"write_timeout", c.WriteTimeout},
		{"idle_conn_timeout", c.IdleConnTimeout},
		{"upstream_keepalive_timeout", c.UpstreamKeepaliveTimeout},
		{"tunnel_idle_timeout", c.TunnelIdleTimeout},
		{"health.interval", c.Health.Interval},
		{"health.timeout", c.Health.Timeout},
		{"ejection.base_time", c.Ejection.BaseTime},
		{"ejection.max_time", c.Ejection.MaxTime},
	} {
		if d.v <= 0 {
			add("%s: %s is not positive: write it like 30s, or leave it out for the default", d.key, d.v)
		}
	}
	// The proxy must give up an idle connection before Nginx does: Nginx
	// closes it without a word, and a request sent on it in that instant
	// fails after it may have been read (only idempotent ones are retried).
	if c.IdleConnTimeout > 0 && c.UpstreamKeepaliveTimeout > 0 && c.IdleConnTimeout >= c.UpstreamKeepaliveTimeout {
		add("idle_conn_timeout: %s is not below upstream_keepalive_timeout %s (Nginx's keepalive_timeout), "+
			"so the proxy could reuse a connection Nginx is closing: lower it, or raise upstream_keepalive_timeout "+
			"if Nginx's keepalive_timeout really is higher", c.IdleConnTimeout, c.UpstreamKeepaliveTimeout)
	}
	if c.MaxConns <= 0 {
		add("max_conns: %d is not positive: leave it out for %d", c.MaxConns, DefaultMaxConns)
	}
	if c.MaxTunnels <= 0 {
		add("max_tunnels: %d is not positive: leave it out for %d", c.MaxTunnels, DefaultMaxTunnels)
	}
	if _, err := parseTrusted(c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.Health.validate(), c.Ejection.validate(), c.TLS.validate())
	if !validCookieName(c.StickyCookie) {
		add("sticky_cookie: %q is not a cookie name (letters, digits and !#$%%&'*+-.^_`|~): write it like SRVID, or leave it out", c.StickyCookie)
	}
	if c.MaxResponseHeaderBytes < minResponseHeaderBytes || c.MaxResponseHeaderBytes > maxResponseHeaderBytes {
		add("max_response_header_bytes: %d is outside %d..%d: leave it out for %d",
			c.MaxResponseHeaderBytes, minResponseHeaderBytes, maxResponseHeaderBytes, DefaultMaxResponseHeaderBytes)
	}
	return errors.Join(errs...)
}

// Summary names the backends for logs and `strangler check`: the upstream
// URL, or the upstreams' URLs with their weights when not 1.
func (c Config) Summary() string {
	if len(c.Upstreams) == 0 {
		return c.Upstream
	}
	parts := make([]string, len(c.Upstreams))
	for i, b := range c.Upstreams {
		parts[i] = b.URL
		if b.Weight > 1 {
			parts[i] += " (weight " + strconv.Itoa(b.Weight) + ")"
		}
	}
	return strings.Join(parts, ", ")
}

// target is one backend as dialed.
type target struct {
	url    string // as configured
	addr   string // host:port
	host   string // the host alone, for TLS server names
	tls    bool
	weight int
}

// backends is Upstream or Upstreams, parsed. Exactly one must be set.
func (c Config) backends() ([]target, error) {
	switch {
	case c.Upstream != "" && len(c.Upstreams) > 0:
		return nil, errors.New("upstream and upstreams are both set: keep upstream for one backend, or list every backend under upstreams")
	case len(c.Upstreams) == 0:
		t, err := parseUpstream(c.Upstream)
		if err != nil {
			return nil, fmt.Errorf("upstream: %w", err)
		}
		t.weight = DefaultBackendWeight
		return []target{t}, nil
	}
	var (
		out  []target
		errs []error
		seen = map[string]int{}
	)
	for i, b := range c.Upstreams {
		t, err := parseUpstream(b.URL)
		if err != nil {
			errs = append(errs, fmt.Errorf("upstreams[%d]: %w", i, err))
			continue
		}
		if b.Weight < 1 || b.Weight > maxBackendWeight {
			errs = append(errs, fmt.Errorf("upstreams[%d]: weight %d is outside 1..%d", i, b.Weight, maxBackendWeight))
			continue
		}
		if j, dup := seen[t.addr]; dup {
			errs = append(errs, fmt.Errorf("upstreams[%d]: %s is upstreams[%d] again: list each backend once, with a weight", i, t.addr, j))
			continue
		}
		seen[t.addr] = i
		t.weight = b.Weight
		out = append(out, t)
	}
	return out, errors.Join(errs...)
}

// parseUpstream parses one backend URL.
func parseUpstream(s string) (target, error) {
	const want = "write it like http://127.0.0.1:8081"
	var t target
	if s == "" {
		return t, fmt.Errorf("missing: %s", want)
	}
	if !strings.Contains(s, "://") {
		return t, fmt.Errorf("%q has no http:// scheme: %s", s, want)
	}
	u, err := url.Parse(s)
	if err != nil {
		return t, fmt.Errorf("%q does not parse (%v): %s", s, err, want)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return t, fmt.Errorf("%q has no http:// or https:// scheme: %s", s, want)
	case u.Host == "" || u.Hostname() == "":
		return t, fmt.Errorf("%q has no host: %s", s, want)
	case u.User != nil:
		return t, fmt.Errorf("%q has user info: remove it", s)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return t, fmt.Errorf("%q has a path or query: remove it, requests keep the path the client sent", s)
	}
	t.tls = u.Scheme == "https"
	port := u.Port()
	switch {
	case port == "" && t.tls:
		port = "443"
	case port == "":
		port = "80"
	default:
		if p, err := parsePort(port); err != nil || p == 0 {
			return t, fmt.Errorf("%q: port %q is not 1..65535: %s", s, port, want)
		}
	}
	t.url, t.host, t.addr = s, u.Hostname(), net.JoinHostPort(u.Hostname(), port)
	return t, nil
}

func (h HealthConfig) validate() error {
	var errs []error
	if h.Path != "" && (h.Path[0] != '/' || strings.ContainsAny(h.Path, " \t\r\n#")) {
		errs = append(errs, fmt.Errorf("health.path: %q is not a request target: write it like /healthz, or leave it out for a TCP check", h.Path))
	}
	if strings.ContainsAny(h.Host, " \t\r\n/") {
		errs = append(errs, fmt.Errorf("health.host: %q is not a host name", h.Host))
	}
	if h.Timeout > h.Interval {
		errs = append(errs, fmt.Errorf("health.timeout: %s is longer than health.interval %s: checks would overlap", h.Timeout, h.Interval))
	}
	for _, n := range []struct {
		key string
		v   int
	}{{"health.healthy_after", h.HealthyAfter}, {"health.unhealthy_after", h.UnhealthyAfter}} {
		if n.v < 1 || n.v > maxHealthAfter {
			errs = append(errs, fmt.Errorf("%s: %d is outside 1..%d", n.key, n.v, maxHealthAfter))
		}
	}
	return errors.Join(errs...)
}

func (e EjectionConfig) validate() error {
	var errs []error
	if e.ConsecutiveFailures < 1 || e.ConsecutiveFailures > maxConsecutiveFailures {
		errs = append(errs, fmt.Errorf("ejection.consecutive_failures: %d is outside 1..%d", e.ConsecutiveFailures, maxConsecutiveFailures))
	}
	if e.MaxTime < e.BaseTime {
		errs = append(errs, fmt.Errorf("ejection.max_time: %s is below ejection.base_time %s", e.MaxTime, e.BaseTime))
	}
	if e.MaxPercent < 1 || e.MaxPercent > 100 {
		errs = append(errs, fmt.Errorf("ejection.max_percent: %d is outside 1..100", e.MaxPercent))
	}
	return errors.Join(errs...)
}

func (t UpstreamTLS) validate() error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return errors.New("tls: cert_file and key_file go together: set both for a client certificate, or neither")
	}
	return nil
}

// validCookieName: a cookie-name is an RFC 9110 token (RFC 6265 §4.1.1).
// Empty is valid: no sticky cookie.
func validCookieName(s string) bool {
	for i := 0; i < len(s); i++ {
		if !ascii.IsTokenChar(s[i]) {
			return false
		}
	}
	return true
}

func parsePort(s string) (int, error) {
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, errors.New("not a number")
		}
		n = n*10 + int(c-'0')
		if n > 65535 {
			return 0, errors.New("out of range")
		}
	}
	return n, nil
}

// parseTrusted parses TrustedProxies.
func parseTrusted(list []string) ([]netip.Prefix, error) { return cidr.Parse("trusted_proxies", list) }
