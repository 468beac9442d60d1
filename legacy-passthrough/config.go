package legacy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Config is the `legacy:` section: where the monolith's Nginx listens and how
// the forwarder talks to it. None of it reloads live.
//
// Every zero value means "the default" (see WithDefaults), so a config file
// only names what it changes. There is no way to switch a timeout off: every
// network call here is bounded.
type Config struct {
	// Upstream is the monolith's Nginx as http://host:port. Required. Only
	// plain HTTP: the monolith sits on a private network next to the proxy.
	// A missing port means 80. No path: request targets are forwarded as the
	// client sent them.
	Upstream string `mapstructure:"upstream"`

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

	// MaxConns caps the connections open to Upstream, idle or busy. A
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

	// MaxResponseHeaderBytes caps the upstream's status line and headers;
	// past it the client gets 502. It is also the read buffer of each busy
	// upstream connection. Default 16384 (Nginx hands PHP's headers through
	// a 4k or 8k fastcgi_buffer_size, so they fit with room to spare).
	MaxResponseHeaderBytes int `mapstructure:"max_response_header_bytes"`
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

	if _, err := parseUpstream(c.Upstream); err != nil {
		add("upstream: %v", err)
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
	if c.MaxResponseHeaderBytes < minResponseHeaderBytes || c.MaxResponseHeaderBytes > maxResponseHeaderBytes {
		add("max_response_header_bytes: %d is outside %d..%d: leave it out for %d",
			c.MaxResponseHeaderBytes, minResponseHeaderBytes, maxResponseHeaderBytes, DefaultMaxResponseHeaderBytes)
	}
	return errors.Join(errs...)
}

// parseUpstream turns Upstream into the host:port to dial.
func parseUpstream(s string) (string, error) {
	const want = "write it like http://127.0.0.1:8081"
	if s == "" {
		return "", fmt.Errorf("missing: %s", want)
	}
	if !strings.Contains(s, "://") {
		return "", fmt.Errorf("%q has no http:// scheme: %s", s, want)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q does not parse (%v): %s", s, err, want)
	}
	switch {
	case u.Scheme == "https":
		return "", fmt.Errorf("%q: https to the monolith is not supported: use http:// on a private network", s)
	case u.Scheme != "http":
		return "", fmt.Errorf("%q has no http:// scheme: %s", s, want)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("%q has no host: %s", s, want)
	case u.User != nil:
		return "", fmt.Errorf("%q has user info: remove it", s)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("%q has a path or query: remove it, requests keep the path the client sent", s)
	}
	port := u.Port()
	if port == "" {
		port = "80"
	} else if p, err := parsePort(port); err != nil || p == 0 {
		return "", fmt.Errorf("%q: port %q is not 1..65535: %s", s, port, want)
	}
	return net.JoinHostPort(u.Hostname(), port), nil
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

// parseTrusted parses TrustedProxies. A single address stands for itself
// (/32 or /128). IPv4-mapped IPv6 forms are unmapped, so a v4 peer matches
// whichever way it is written.
func parseTrusted(list []string) ([]netip.Prefix, error) {
	var (
		out  []netip.Prefix
		errs []error
	)
	for i, s := range list {
		s = strings.TrimSpace(s)
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("trusted_proxies[%d]: %q is not a CIDR: write it like 10.0.0.0/8 or fd00::/8", i, s))
				continue
			}
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			errs = append(errs, fmt.Errorf("trusted_proxies[%d]: %q is not an address or CIDR: write it like 192.0.2.7 or 10.0.0.0/8", i, s))
			continue
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, errors.Join(errs...)
}
