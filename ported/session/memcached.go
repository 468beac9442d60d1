package session

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// Memcached reads sessions as the php-memcached extension's "memcached"
// save handler writes them (php_memcached_session.c): the raw session data
// under <sess_prefix><id>, stored with session.gc_maxlifetime as its
// expiry. The client is github.com/bradfitz/gomemcache (by memcached's
// author, the usual Go client): a timeout on every socket operation, and
// at most poolSize calls (so connections) at once — gomemcache itself only
// bounds the idle ones and dials whenever none is free, which a slow
// memcached would turn into a connection per waiting request. It is
// read-only here: writing back would need php-memcached's lock.<id>
// protocol, which is not implemented.
type Memcached struct {
	c      *memcache.Client
	prefix string
	slots  chan struct{} // one per call in flight
	closed sync.Once
}

// DefaultMemcachedPrefix is php-memcached's memcached.sess_prefix.
const DefaultMemcachedPrefix = "memc.sess.key."

// NewMemcached builds the client for addr; it connects on first use. dial
// bounds a connect, timeout the exchange on the socket; poolSize (at least
// 1) bounds the connections, idle or busy.
func NewMemcached(addr, prefix string, dial, timeout time.Duration, poolSize int) *Memcached {
	if prefix == "" {
		prefix = DefaultMemcachedPrefix
	}
	poolSize = max(1, poolSize)
	c := memcache.New(addr)
	c.Timeout = timeout
	c.MaxIdleConns = poolSize
	d := &net.Dialer{Timeout: dial}
	c.DialContext = d.DialContext
	return &Memcached{c: c, prefix: prefix, slots: make(chan struct{}, poolSize)}
}

// acquire takes a call slot, waiting at most until ctx ends.
func (m *Memcached) acquire(ctx context.Context) error {
	select {
	case m.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("memcached: all %d connections busy: %w", cap(m.slots), ctx.Err())
	}
}

func (m *Memcached) release() { <-m.slots }

// Name implements Store.
func (m *Memcached) Name() string { return "memcached" }

// Close implements Store. It waits for the calls still running (each ends
// within the client's timeouts), then closes the idle connections.
func (m *Memcached) Close() error {
	var err error
	m.closed.Do(func() {
		for range cap(m.slots) {
			m.slots <- struct{}{}
		}
		err = m.c.Close()
	})
	return err
}

// Ping is for readiness: the server answers.
func (m *Memcached) Ping(ctx context.Context) error {
	if err := m.acquire(ctx); err != nil {
		return err
	}
	defer m.release()
	return m.c.Ping()
}

// Read implements Store. gomemcache takes no context, so the call runs on
// a goroutine of its own and Read returns when ctx ends if it has not: the
// goroutine keeps its slot until the client's dial and socket timeouts end
// it, so abandoned calls stay within poolSize too.
func (m *Memcached) Read(ctx context.Context, id string, max int) ([]byte, error) {
	if err := m.acquire(ctx); err != nil {
		return nil, err
	}
	type result struct {
		it  *memcache.Item
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer m.release()
		it, err := m.c.Get(m.prefix + id)
		done <- result{it, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		return nil, fmt.Errorf("memcached get: %w", ctx.Err())
	}
	it, err := r.it, r.err
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
