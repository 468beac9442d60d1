package proxy

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/proxy/control"
	"github.com/strangler-proxy/strangler/proxy/edge"
	"github.com/strangler-proxy/strangler/proxy/shadow"
	"github.com/strangler-proxy/strangler/proxy/shadowreport"
)

// Config is the front door's static configuration: the top-level keys
// `listen` and `admin_listen` and the `server:` section. None of it reloads
// live; a change needs a restart.
//
// Every zero value means "the default" (see WithDefaults), so a config file
// only names what it changes.
type Config struct {
	// Listen is the public address. Default ":8080".
	Listen string `mapstructure:"listen"`
	// AdminListen is the admin listener (metrics, health, route table).
	// Default "127.0.0.1:9901": keep it off the public interface.
	AdminListen string `mapstructure:"admin_listen"`
	// Server holds the front door's limits and timeouts.
	Server ServerConfig `mapstructure:"server"`
	// AdminToken, when set, is the bearer token the admin listener's
	// actions (POST /admin/routes/{name}/reenable) require. Empty: actions
	// are allowed only on a loopback admin_listen, and refused otherwise.
	// At least 16 characters; never logged.
	AdminToken string `mapstructure:"admin_token"`
	// Shadow holds the settings of shadow execution shared by every route
	// (each route's own are in its shadow block).
	Shadow ShadowConfig `mapstructure:"shadow"`
	// TLS, with certificates, makes Listen an HTTPS listener (see
	// edge.TLSConfig). Default: plain HTTP.
	TLS edge.TLSConfig `mapstructure:"tls"`
}

// ShadowConfig is the `shadow:` section: the pool candidates run on, the
// report's memory bounds, the diff log and the budget watcher.
type ShadowConfig struct {
	// Workers run candidate calls. Default 8.
	Workers int `mapstructure:"workers"`
	// Queue is how many copied requests may wait for a worker; past
	// Workers+Queue in flight, copies are skipped and counted (pool_full),
	// never waited for. Default 256.
	Queue int `mapstructure:"queue"`
	// WakeInterval is how long an awake worker waits for more copies
	// before it parks. Copies queued meanwhile wake no one, so under load
	// a worker wakes about once per interval instead of once per copy;
	// comparisons run up to this much later. Default 1ms, at most 1s.
	WakeInterval time.Duration `mapstructure:"wake_interval"`
	// LegacyTimeout bounds a legacy candidate call (and a second legacy
	// call for noise learning), head and body, on its own connection pool
	// of Workers connections, so shadow traffic never takes the monolith
	// connections clients need. The route's shadow.timeout applies as
	// well: past it the call is abandoned, and it ends within this bound.
	// Default 5s.
	LegacyTimeout time.Duration `mapstructure:"legacy_timeout"`
	// BudgetInterval is how often route budgets are checked. Default 10s.
	BudgetInterval time.Duration `mapstructure:"budget_interval"`
	// DiffLog is the JSONL log of every comparison that did not match.
	// An empty path means none.
	DiffLog shadowreport.DiffLogConfig `mapstructure:"diff_log"`
	// DiffTopic is a Kafka topic that gets the diff log's entries as JSON
	// events keyed by route, produced with the kafka section's settings
	// (brokers, auth, TLS) by a producer of its own. Empty: none.
	DiffTopic string `mapstructure:"diff_topic"`
	// Noise tunes noise learning (Diffy's thresholds by default).
	Noise compare.NoiseConfig `mapstructure:"noise"`
	// Store bounds the report's store of differing paths per route.
	Store shadowreport.StoreConfig `mapstructure:"store"`
}

// ServerConfig is the `server:` section. The defaults match what the
// monolith's Nginx allowed, so moving the hostname to Strangler changes no
// client-visible limit.
type ServerConfig struct {
	// ReadTimeout bounds reading one whole request, from its first byte to the
	// last byte of its body (the body streams to the handler while this runs,
	// so it also caps the duration of an upload). Default 30s.
	ReadTimeout time.Duration `mapstructure:"read_timeout"`
	// WriteTimeout bounds writing one whole response, from the moment the
	// handler returns to the last byte. A streamed download is written after
	// the handler returns, so this is also the longest a download may take:
	// 1.5 GiB at 60s needs ~26 MB/s. Unlike Nginx's send_timeout it is not an
	// idle timer between two writes. Default 60s.
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	// IdleTimeout is how long a keep-alive connection may wait for its next
	// request. Default 75s (Nginx's keepalive_timeout).
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
	// MaxHeaderLineBytes caps the request line and each header field line
	// (without CRLF). Past it: 414 for the request line, 431 for a header.
	// Default 8192, Nginx's large_client_header_buffers buffer size.
	MaxHeaderLineBytes int `mapstructure:"max_header_line_bytes"`
	// MaxHeaderBytes caps the whole request head (request line, fields, the
	// final CRLF); past it: 431. It is also each connection's read buffer,
	// so it is memory per open connection. Default 32768 (Nginx's 4 × 8k).
	MaxHeaderBytes int `mapstructure:"max_header_bytes"`
	// MaxBodyBytes caps a request body; past it: 413. A declared
	// Content-Length is checked before any body byte is read; a chunked body
	// is cut when it crosses the limit. Default 1.5 GiB.
	MaxBodyBytes int64 `mapstructure:"max_body_bytes"`
	// ShutdownTimeout bounds the whole shutdown after SIGTERM or SIGINT,
	// from the signal to the exit: ShutdownDelay, then in-flight requests
	// finishing, then the spool and the Kafka producers flushing. Default
	// 25s, within Kubernetes' default 30s grace period. Server.Shutdown
	// alone waits for in-flight requests at most this long.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	// ShutdownDelay is how long the listener keeps accepting after the
	// signal while /readyz already answers 503, so load balancers take the
	// instance out before connections are refused. Nil means 5s, or a
	// fifth of ShutdownTimeout when that is shorter; 0 closes the listener
	// at once. Must be below ShutdownTimeout.
	ShutdownDelay *time.Duration `mapstructure:"shutdown_delay"`
	// MaxConnsPerIP caps concurrent connections from one client address; a
	// connection over it is answered 429 and closed. Zero means unlimited.
	MaxConnsPerIP int `mapstructure:"max_conns_per_ip"`
	// Concurrency caps concurrent connections in total, WebSocket tunnels
	// included; a connection over it is answered 503 with Retry-After: 1 and
	// closed. Zero means 262144 (fasthttp's default).
	Concurrency int `mapstructure:"concurrency"`
	// ProxyProtocol reads PROXY protocol headers from trusted load
	// balancers (see edge.ProxyProtocolConfig). Default: off.
	ProxyProtocol edge.ProxyProtocolConfig `mapstructure:"proxy_protocol"`
}

// Defaults of Config; see the field comments.
const (
	DefaultListen              = ":8080"
	DefaultAdminListen         = "127.0.0.1:9901"
	DefaultReadTimeout         = 30 * time.Second
	DefaultWriteTimeout        = 60 * time.Second
	DefaultIdleTimeout         = 75 * time.Second
	DefaultMaxHeaderLineBytes  = 8 << 10
	DefaultMaxHeaderBytes      = 32 << 10
	DefaultMaxBodyBytes        = 3 << 29 // 1.5 GiB
	DefaultShutdownTimeout     = 25 * time.Second
	DefaultShutdownDelay       = 5 * time.Second
	DefaultShadowLegacyTimeout = 5 * time.Second
	DefaultBudgetInterval      = control.DefaultBudgetInterval

	// maxWakeInterval bounds shadow.wake_interval: longer only delays
	// comparisons and holds pool slots.
	maxWakeInterval = time.Second
	minAdminToken   = 16
)

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	setDefault(&c.Listen, DefaultListen)
	setDefault(&c.AdminListen, DefaultAdminListen)
	s := &c.Server
	setDefault(&s.ReadTimeout, DefaultReadTimeout)
	setDefault(&s.WriteTimeout, DefaultWriteTimeout)
	setDefault(&s.IdleTimeout, DefaultIdleTimeout)
	setDefault(&s.MaxHeaderLineBytes, DefaultMaxHeaderLineBytes)
	setDefault(&s.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setDefault(&s.MaxBodyBytes, DefaultMaxBodyBytes)
	setDefault(&s.ShutdownTimeout, DefaultShutdownTimeout)
	if s.ShutdownDelay == nil {
		d := min(DefaultShutdownDelay, s.ShutdownTimeout/5)
		s.ShutdownDelay = &d
	}
	sh := &c.Shadow
	setDefault(&sh.Workers, shadow.DefaultWorkers)
	setDefault(&sh.Queue, shadow.DefaultQueue)
	setDefault(&sh.WakeInterval, shadow.DefaultWakeInterval)
	setDefault(&sh.LegacyTimeout, DefaultShadowLegacyTimeout)
	setDefault(&sh.BudgetInterval, DefaultBudgetInterval)
	c.TLS = c.TLS.WithDefaults()
	s.ProxyProtocol = s.ProxyProtocol.WithDefaults()
	return c
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Validate reports every problem in c, joined. It does no I/O, so
// `strangler check` can run it on any machine. Call it on WithDefaults().
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen: %q: %v", c.Listen, err)
	}
	if _, _, err := net.SplitHostPort(c.AdminListen); err != nil {
		add("admin_listen: %q: %v", c.AdminListen, err)
	} else if c.AdminListen == c.Listen {
		add("admin_listen: %q is also listen", c.AdminListen)
	}
	s := c.Server
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"read_timeout", s.ReadTimeout},
		{"write_timeout", s.WriteTimeout},
		{"idle_timeout", s.IdleTimeout},
		{"shutdown_timeout", s.ShutdownTimeout},
	} {
		if d.v < 0 {
			add("server.%s: %s is negative", d.key, d.v)
		}
	}
	if d := s.ShutdownDelay; d != nil && (*d < 0 || *d >= s.ShutdownTimeout) {
		add("server.shutdown_delay: %s: want at least 0 and below shutdown_timeout %s", *d, s.ShutdownTimeout)
	}
	if s.MaxHeaderLineBytes < 0 {
		add("server.max_header_line_bytes: %d is negative", s.MaxHeaderLineBytes)
	}
	// The head must hold at least one full-size line plus a request line.
	if s.MaxHeaderBytes < 0 {
		add("server.max_header_bytes: %d is negative", s.MaxHeaderBytes)
	} else if s.MaxHeaderBytes < s.MaxHeaderLineBytes {
		add("server.max_header_bytes: %d is below max_header_line_bytes %d", s.MaxHeaderBytes, s.MaxHeaderLineBytes)
	}
	if s.MaxBodyBytes < 0 || int64(int(s.MaxBodyBytes)) != s.MaxBodyBytes {
		add("server.max_body_bytes: %d is out of range", s.MaxBodyBytes)
	}
	if s.MaxConnsPerIP < 0 {
		add("server.max_conns_per_ip: %d is negative", s.MaxConnsPerIP)
	}
	if s.Concurrency < 0 {
		add("server.concurrency: %d is negative", s.Concurrency)
	}
	errs = append(errs, c.TLS.Validate(), s.ProxyProtocol.Validate())
	if r := c.TLS.RedirectListen; r != "" && (r == c.Listen || r == c.AdminListen) {
		add("tls.redirect_listen: %q is also listen or admin_listen", r)
	}
	if s.ProxyProtocol.Enabled() && s.MaxConnsPerIP > 0 {
		// fasthttp counts per IP in its accept loop, which would then wait
		// there for each connection's PROXY header.
		add("server.max_conns_per_ip: not with server.proxy_protocol: limit connections per client at the load balancer")
	}
	if n := len(c.AdminToken); n > 0 && n < minAdminToken {
		// The token is a secret: its length only.
		add("admin_token: too short (%d characters); use at least %d random characters", n, minAdminToken)
	}
	if err := checkAdminExposure(c); err != nil { // adminguard.go
		errs = append(errs, err)
	}
	sh := c.Shadow
	if sh.Workers < 0 || sh.Queue < 0 {
		add("shadow: workers %d and queue %d must not be negative", sh.Workers, sh.Queue)
	}
	if sh.WakeInterval < 0 || sh.WakeInterval > maxWakeInterval {
		add("shadow.wake_interval: %s is outside 0s..%s", sh.WakeInterval, maxWakeInterval)
	}
	if sh.LegacyTimeout < 0 {
		add("shadow.legacy_timeout: %s is negative", sh.LegacyTimeout)
	}
	if sh.BudgetInterval < 0 {
		add("shadow.budget_interval: %s is negative", sh.BudgetInterval)
	}
	if sh.DiffLog.MaxBytes < 0 || sh.DiffLog.Queue < 0 {
		add("shadow.diff_log: max_bytes %d and queue %d must not be negative", sh.DiffLog.MaxBytes, sh.DiffLog.Queue)
	}
	if n := sh.Noise; n.RelativeThreshold < 0 || n.AbsoluteThreshold < 0 || n.MinDiffs < 0 || n.MaxPaths < 0 || n.Warmup < 0 || n.Every < 0 ||
		n.SettleAfter < 0 || n.SettledEvery < 0 {
		add("shadow.noise: values must not be negative")
	}
	if st := sh.Store; st.Groups < 0 || st.Examples < 0 || st.MaxBody < 0 {
		add("shadow.store: values must not be negative")
	}
	return errors.Join(errs...)
}
