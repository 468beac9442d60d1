package session

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// Memcached reads sessions as the php-memcached extension's "memcached"
// save handler writes them (php_memcached_session.c): the raw session data
// under <sess_prefix><id>, stored with session.gc_maxlifetime as its
// expiry. The client is github.com/bradfitz/gomemcache (by memcached's
// author, the usual Go client): bounded idle pool, a timeout on every
// socket operation. It is read-only here: writing back would need
// php-memcached's lock.<id> protocol, which is not implemented.
type Memcached struct {
	c       *memcache.Client
	prefix  string
	timeout time.Duration
}

// DefaultMemcachedPrefix is php-memcached's memcached.sess_prefix.
const DefaultMemcachedPrefix = "memc.sess.key."

// NewMemcached builds the client for addr; it connects on first use. dial
// bounds a connect, timeout each read or write on the socket.
func NewMemcached(addr, prefix string, dial, timeout time.Duration, maxIdle int) *Memcached {
	if prefix == "" {
		prefix = DefaultMemcachedPrefix
	}
	c := memcache.New(addr)
	c.Timeout = timeout
	c.MaxIdleConns = maxIdle
	d := &net.Dialer{Timeout: dial}
	c.DialContext = d.DialContext
	return &Memcached{c: c, prefix: prefix, timeout: dial + timeout}
}

// Name implements Store.
func (m *Memcached) Name() string { return "memcached" }

// Close implements Store.
func (m *Memcached) Close() error { return m.c.Close() }

// Ping is for readiness: the server answers.
func (m *Memcached) Ping(context.Context) error { return m.c.Ping() }

// Read implements Store. gomemcache takes no context; its own dial and
// socket timeouts bound the call, and ctx is checked first.
func (m *Memcached) Read(ctx context.Context, id string, max int) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memcached get: %w", err)
	}
	it, err := m.c.Get(m.prefix + id)
	switch {
	case errors.Is(err, memcache.ErrCacheMiss):
		return nil, errNotFound
	case errors.Is(err, memcache.ErrMalformedKey):
		return nil, errNotFound // a prefix+id memcached cannot hold was never stored
	case err != nil:
		return nil, fmt.Errorf("memcached get: %w", err)
	case len(it.Value) > max:
		return nil, fmt.Errorf("session of %d bytes, over %d: %w", len(it.Value), max, ErrTooLarge)
	}
	return it.Value, nil
}

// Interface guard.
var _ Store = (*Memcached)(nil)
