package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis reads sessions as the phpredis extension's "redis" save handler
// writes them (redis_session.c): the raw session data under
// <prefix><id>, SETEX'd with session.gc_maxlifetime, so an expired session
// is simply gone.
//
// The client is github.com/redis/go-redis/v9: it speaks RESP2 to every
// Redis phpredis talks to, honours a context deadline on each command, and
// keeps a bounded pool. rueidis's strengths (auto-pipelining, client-side
// caching) buy nothing for one GET per request, and a client-side cache of
// data PHP rewrites is a stale-session risk.
type Redis struct {
	c      *redis.Client
	prefix string
	lock   RedisLock
	ttl    time.Duration
}

// RedisLock is phpredis's session locking (redis.session.* in php.ini),
// used only by Update.
type RedisLock struct {
	// Retries is redis.session.lock_retries: attempts after the first.
	// Zero: 10, phpredis's default; -1 is not accepted (no end).
	Retries int `mapstructure:"lock_retries"`
	// Wait is redis.session.lock_wait_time between attempts. Zero: 2ms
	// (phpredis: 2000 µs).
	Wait time.Duration `mapstructure:"lock_wait_time"`
	// Expire is redis.session.lock_expire, how long a lock lives if its
	// holder dies. Zero: 30s (phpredis uses max_execution_time, 30s by
	// default).
	Expire time.Duration `mapstructure:"lock_expire"`
}

// phpredis's defaults for RedisLock.
const (
	DefaultLockRetries = 10
	DefaultLockWait    = 2 * time.Millisecond
	DefaultLockExpire  = 30 * time.Second
)

// WithDefaults fills the zero fields.
func (l RedisLock) WithDefaults() RedisLock {
	if l.Retries == 0 {
		l.Retries = DefaultLockRetries
	}
	if l.Wait == 0 {
		l.Wait = DefaultLockWait
	}
	if l.Expire == 0 {
		l.Expire = DefaultLockExpire
	}
	return l
}

// RedisOptions configure NewRedis.
type RedisOptions struct {
	Addr     string
	Username string
	Password string
	DB       int
	// Prefix is phpredis's save_path "prefix" parameter. Empty:
	// DefaultRedisPrefix.
	Prefix string
	// DialTimeout bounds one connect; Timeout one command's round trip.
	DialTimeout, Timeout time.Duration
	// PoolSize bounds the connections. Zero: 10 per CPU (go-redis).
	PoolSize int
	Lock     RedisLock
	// MaxLifetime is session.gc_maxlifetime, the TTL Update writes with.
	MaxLifetime time.Duration
}

// DefaultRedisPrefix is phpredis's session key prefix.
const DefaultRedisPrefix = "PHPREDIS_SESSION:"

// NewRedis builds the client; it connects on first use.
func NewRedis(o RedisOptions) *Redis {
	if o.Prefix == "" {
		o.Prefix = DefaultRedisPrefix
	}
	c := redis.NewClient(&redis.Options{
		Addr:     o.Addr,
		Username: o.Username,
		Password: o.Password,
		DB:       o.DB,
		// RESP2 and no CLIENT SETINFO: the handshake every Redis since 2.x
		// answers, and one round trip less per new connection.
		Protocol:        2,
		DisableIdentity: true,
		DialTimeout:     o.DialTimeout,
		ReadTimeout:     o.Timeout,
		WriteTimeout:    o.Timeout,
		PoolTimeout:     o.Timeout,
		PoolSize:        o.PoolSize,
		// The caller's deadline bounds the whole call, retries included.
		ContextTimeoutEnabled: true,
		MaxRetries:            1,
	})
	return &Redis{c: c, prefix: o.Prefix, lock: o.Lock.WithDefaults(), ttl: o.MaxLifetime}
}

// Name implements Store.
func (r *Redis) Name() string { return "redis" }

// Close implements Store.
func (r *Redis) Close() error { return r.c.Close() }

// Ping is for readiness: the store answers.
func (r *Redis) Ping(ctx context.Context) error { return r.c.Ping(ctx).Err() }

// Read implements Store: GETRANGE <prefix><id> 0 <max>, so that a
// session bigger than max costs max+1 bytes, not its size, whatever PHP
// stored (GET would read it whole first). It takes no lock, as phpredis
// with its default redis.session.locking_enabled = 0 takes none: a SETEX
// replaces the value whole, so a reader never sees half of one. GETRANGE
// answers "" for a key that does not exist: that and an empty session
// (which holds no user either) are both "not found".
func (r *Redis) Read(ctx context.Context, id string, max int) ([]byte, error) {
	b, err := r.c.GetRange(ctx, r.prefix+id, 0, int64(max)).Bytes()
	switch {
	case err != nil:
		return nil, fmt.Errorf("redis GETRANGE: %w", err)
	case len(b) == 0:
		return nil, errNotFound
	case len(b) > max:
		return nil, fmt.Errorf("session over %d bytes: %w", max, ErrTooLarge)
	}
	return b, nil
}

// unlockScript is phpredis's LOCK_RELEASE_LUA_STR: delete the lock only if
// it still holds our secret.
var unlockScript = redis.NewScript(`if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("del",KEYS[1]) else return 0 end`)

// Update implements Updater with phpredis's lock protocol: SET
// <key>_LOCK <secret> NX PX <expire>, tried 1+Retries times Wait apart;
// then GET, fn, SETEX with the session lifetime, and the release script.
// Like phpredis it writes only while the lock is still its own.
func (r *Redis) Update(ctx context.Context, id string, max int, fn func([]byte) ([]byte, error)) error {
	key := r.prefix + id
	lockKey := key + "_LOCK"
	secret, err := lockSecret()
	if err != nil {
		return err
	}
	if err := r.acquire(ctx, lockKey, secret); err != nil {
		return err
	}
	// Released with a context of its own: a caller whose deadline passed
	// must not leave the lock to expire.
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = unlockScript.Run(rctx, r.c, []string{lockKey}, secret).Err()
	}()
	old, err := r.Read(ctx, id, max)
	if err != nil {
		return err
	}
	data, err := fn(old)
	if err != nil || data == nil {
		return err
	}
	// phpredis's write_allowed: the lock may have expired and been taken by
	// another request meanwhile.
	owner, err := r.c.Get(ctx, lockKey).Result()
	if err != nil || owner != secret {
		return fmt.Errorf("session lock lost before the write: %w", ErrLockLost)
	}
	ttl := r.ttl
	if ttl <= 0 {
		ttl = DefaultMaxLifetime
	}
	// SET EX is what phpredis's SETEX does, under its current name.
	if err := r.c.Set(ctx, key, data, ttl).Err(); err != nil {
		return fmt.Errorf("redis SET EX: %w", err)
	}
	return nil
}

// ErrLockLost: the session lock was not ours any more when we came to write.
var ErrLockLost = errors.New("session lock lost")

// ErrLocked: another request held the session lock through every retry.
var ErrLocked = errors.New("session locked by another request")

func (r *Redis) acquire(ctx context.Context, lockKey, secret string) error {
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for i := 0; i <= r.lock.Retries; i++ {
		ok, err := r.c.SetNX(ctx, lockKey, secret, r.lock.Expire).Result()
		if err != nil {
			return fmt.Errorf("redis SET NX: %w", err)
		}
		if ok {
			return nil
		}
		if i == r.lock.Retries {
			break
		}
		t.Reset(r.lock.Wait)
		select {
		case <-ctx.Done():
			return fmt.Errorf("session lock: %w", ctx.Err())
		case <-t.C:
		}
	}
	return ErrLocked
}

// lockSecret is unique per lock taken. phpredis uses "hostname|pid"; a
// random suffix keeps two goroutines of one process apart.
func lockSecret() (string, error) {
	host, _ := os.Hostname()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("lock secret: %w", err)
	}
	return host + "|" + strconv.Itoa(os.Getpid()) + "|" + hex.EncodeToString(b[:]), nil
}

// DefaultMaxLifetime is session.gc_maxlifetime's default.
const DefaultMaxLifetime = 1440 * time.Second

// Interface guards.
var _ Updater = (*Redis)(nil)
