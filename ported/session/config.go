package session

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Config is the `session:` section: where the monolith's PHP sessions
// live and how to read them. Every field must match the monolith's php.ini
// (or its pool's php_admin_value); the comments name the PHP setting.
type Config struct {
	// Backend is the save handler: files, redis or memcached (PHP's
	// session.save_handler). Empty: no sessions; a handler that needs one
	// answers as if the store were down.
	Backend string `mapstructure:"backend"`
	// SavePath is session.save_path for files: "/var/lib/php/sessions",
	// or "N;/path" for N levels of sub-directories. Required for files.
	SavePath string `mapstructure:"save_path"`
	// Address is host:port of Redis or memcached. Required for them.
	Address string `mapstructure:"address"`
	// Username and Password authenticate to Redis (phpredis's "auth").
	// Never logged.
	Username string `mapstructure:"username"`
	Password string `mapstructure:"password"`
	// Database is Redis's database number (phpredis's "database").
	Database int `mapstructure:"database"`
	// Prefix is prepended to the id to make the key: phpredis's "prefix"
	// (default PHPREDIS_SESSION:) or memcached.sess_prefix (default
	// memc.sess.key.). Empty: the extension's default.
	Prefix string `mapstructure:"prefix"`
	// CookieName is session.name. Empty: PHPSESSID.
	CookieName string `mapstructure:"cookie_name"`
	// SerializeHandler is session.serialize_handler: php_serialize
	// (recommended), php (PHP's default) or php_binary. Empty: php.
	SerializeHandler Handler `mapstructure:"serialize_handler"`
	// SID is session.sid_length and session.sid_bits_per_character.
	SID SIDPolicy `mapstructure:",squash"`
	// Timeout bounds one session read as a whole (connect, command, or a
	// session file's lock). Past it the store counts as unavailable. Zero:
	// DefaultTimeout.
	Timeout time.Duration `mapstructure:"timeout"`
	// DialTimeout bounds one connect to Redis or memcached. Zero:
	// DefaultDialTimeout (capped at Timeout).
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
	// PoolSize bounds the connections to Redis or memcached, idle or busy;
	// a read finding them all busy waits for one within Timeout. Zero:
	// DefaultPoolSize.
	PoolSize int `mapstructure:"pool_size"`
	// MaxBytes is the largest session read; a bigger one is refused ("no
	// session" and a log line). Zero: DefaultMaxBytes.
	MaxBytes int `mapstructure:"max_bytes"`
	// MaxDepth bounds array nesting. Zero: DefaultMaxDepth.
	MaxDepth int `mapstructure:"max_depth"`
	// MaxElements bounds the values in one session. Zero:
	// DefaultMaxElements.
	MaxElements int `mapstructure:"max_elements"`
	// LoginURL is where a handler that requires a session redirects a
	// request without one (302), as the monolith does. Zero: "/login".
	LoginURL string `mapstructure:"login_url"`
	// RetryAfter is sent with the 503 a handler that requires a session
	// answers while the store is unavailable. Zero: DefaultRetryAfter.
	RetryAfter time.Duration `mapstructure:"retry_after"`
	// CacheLimiter is session.cache_limiter: the caching headers PHP's
	// session_start sends, which a handler requiring a session sends too
	// whenever the request carries the session cookie: nocache (PHP's
	// default) or none. (private and public depend on the clock and the
	// script's mtime and are not reproduced.) Empty: nocache.
	CacheLimiter string `mapstructure:"cache_limiter"`
	// Write enables writing sessions back, per handler.
	Write WriteConfig `mapstructure:"write"`
}

// WriteConfig is `session.write:`. Writes take PHP's own lock.
type WriteConfig struct {
	// Handlers lists the handler names (the routes' `handler:`) that may
	// write the session. Empty: sessions are read-only. A handler running
	// as a shadow candidate never writes, listed or not.
	Handlers []string `mapstructure:"handlers"`
	// Lock is phpredis's redis.session.lock_* (Redis only; files use
	// flock, bounded by Timeout).
	Lock RedisLock `mapstructure:",squash"`
	// MaxLifetime is session.gc_maxlifetime, the TTL a Redis write sets.
	// Zero: DefaultMaxLifetime (1440s).
	MaxLifetime time.Duration `mapstructure:"max_lifetime"`
}

// Backends.
const (
	BackendFiles     = "files"
	BackendRedis     = "redis"
	BackendMemcached = "memcached"
)

// Defaults of Config.
const (
	DefaultCookieName  = "PHPSESSID"
	DefaultTimeout     = time.Second
	DefaultDialTimeout = 250 * time.Millisecond
	DefaultPoolSize    = 64
	DefaultLoginURL    = "/login"
	DefaultRetryAfter  = 5 * time.Second
)

// cacheLimiters are session.cache_limiter's values.
var cacheLimiters = []string{"nocache", "none"}

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.CookieName == "" {
		c.CookieName = DefaultCookieName
	}
	if c.SerializeHandler == "" {
		c.SerializeHandler = PHP
	}
	c.SID = c.SID.WithDefaults()
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = min(DefaultDialTimeout, c.Timeout)
	}
	if c.PoolSize == 0 {
		c.PoolSize = DefaultPoolSize
	}
	lim := Limits{MaxBytes: c.MaxBytes, MaxDepth: c.MaxDepth, MaxElements: c.MaxElements}.WithDefaults()
	c.MaxBytes, c.MaxDepth, c.MaxElements = lim.MaxBytes, lim.MaxDepth, lim.MaxElements
	if c.LoginURL == "" {
		c.LoginURL = DefaultLoginURL
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.CacheLimiter == "" {
		c.CacheLimiter = "nocache"
	}
	switch c.Backend {
	case BackendRedis:
		if c.Prefix == "" {
			c.Prefix = DefaultRedisPrefix
		}
	case BackendMemcached:
		if c.Prefix == "" {
			c.Prefix = DefaultMemcachedPrefix
		}
	}
	c.Write.Lock = c.Write.Lock.WithDefaults()
	if c.Write.MaxLifetime == 0 {
		c.Write.MaxLifetime = DefaultMaxLifetime
	}
	return c
}

// Validate checks the section after WithDefaults. It does no I/O: a store
// that is down at start is a readiness matter, not a config error.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("session."+format, a...)) }
	switch c.Backend {
	case "":
	case BackendFiles:
		if c.SavePath == "" {
			bad("save_path: required with backend files (session.save_path of the monolith)")
		} else if _, _, err := ParseSavePath(c.SavePath); err != nil {
			bad("%v", err)
		}
	case BackendRedis, BackendMemcached:
		if _, port, err := net.SplitHostPort(c.Address); err != nil || port == "" {
			bad("address %q: want host:port of the %s server", c.Address, c.Backend)
		}
	default:
		bad("backend %q: want files, redis or memcached (or empty for none)", c.Backend)
	}
	if c.Backend != BackendRedis && (c.Username != "" || c.Password != "" || c.Database != 0) {
		bad("username, password and database are Redis settings; backend is %q", c.Backend)
	}
	if c.Backend == BackendMemcached && strings.ContainsAny(c.Prefix, " \t\r\n") {
		bad("prefix: memcached keys cannot hold white space")
	}
	if c.Database < 0 {
		bad("database %d < 0", c.Database)
	}
	if !isToken(c.CookieName) || strings.ContainsAny(c.CookieName, ".[ ") {
		bad("cookie_name %q: want session.name, letters, digits and _-", c.CookieName)
	}
	if !c.SerializeHandler.Valid() {
		bad("serialize_handler %q: want php_serialize, php or php_binary", c.SerializeHandler)
	}
	if err := c.SID.Validate(); err != nil {
		bad("%v", err)
	}
	if c.Timeout < 0 || c.DialTimeout < 0 || c.RetryAfter < 0 {
		bad("timeout, dial_timeout and retry_after must not be negative")
	}
	if c.DialTimeout > c.Timeout {
		bad("dial_timeout %s is over timeout %s, which bounds the whole read", c.DialTimeout, c.Timeout)
	}
	if c.PoolSize < 0 || c.MaxBytes < 0 || c.MaxDepth < 0 || c.MaxElements < 0 {
		bad("pool_size, max_bytes, max_depth and max_elements must not be negative")
	}
	if u, err := url.Parse(c.LoginURL); err != nil || !strings.HasPrefix(c.LoginURL, "/") || strings.HasPrefix(c.LoginURL, "//") || u.Host != "" {
		bad("login_url %q: want a local path such as /login", c.LoginURL)
	}
	if !slices.Contains(cacheLimiters, c.CacheLimiter) {
		bad("cache_limiter %q: want one of %s", c.CacheLimiter, strings.Join(cacheLimiters, ", "))
	}
	if len(c.Write.Handlers) > 0 {
		if c.Backend == BackendMemcached {
			bad("write.handlers: writing back is not supported for memcached (php-memcached's lock protocol is not implemented)")
		}
		if c.Backend == "" {
			bad("write.handlers: needs a backend")
		}
	}
	if c.Write.Lock.Retries < 0 || c.Write.Lock.Wait < 0 || c.Write.Lock.Expire < 0 || c.Write.MaxLifetime < 0 {
		bad("write: lock_retries, lock_wait_time, lock_expire and max_lifetime must not be negative (an endless lock wait is not offered)")
	}
	return errors.Join(errs...)
}

// Summary is the section in a few words, for check and the start line:
// "files var/sessions (php)", "redis 10.0.0.5:6379 prefix PHPREDIS_SESSION: (php_serialize)", "none".
// It never names credentials.
func (c Config) Summary() string {
	switch c.Backend {
	case "":
		return "none"
	case BackendFiles:
		return fmt.Sprintf("files %s (%s)", c.SavePath, c.SerializeHandler)
	}
	return fmt.Sprintf("%s %s prefix %s (%s)", c.Backend, c.Address, c.Prefix, c.SerializeHandler)
}

// Enabled reports a configured backend.
func (c Config) Enabled() bool { return c.Backend != "" }

// Limits are the decoder's bounds.
func (c Config) Limits() Limits {
	return Limits{MaxBytes: c.MaxBytes, MaxDepth: c.MaxDepth, MaxElements: c.MaxElements}.WithDefaults()
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
