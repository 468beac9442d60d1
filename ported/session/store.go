package session

import (
	"context"
	"errors"
)

// Errors a Reader returns.
var (
	// ErrNoSession: the request carries no session PHP would resume (no
	// cookie, an id PHP could not have issued, an id the store does not
	// hold, an empty session, or data that was refused). Never an error
	// page: a route answers it as the monolith does without a login.
	ErrNoSession = errors.New("no session")
	// ErrUnavailable: the store did not answer in time or at all. Neither
	// "logged in" nor "logged out": the route answers 503 with Retry-After
	// (or whatever the config says), never the login page.
	ErrUnavailable = errors.New("session store unavailable")
)

// errNotFound is a Store's "no data under this id".
var errNotFound = errors.New("session not found")

// Store reads what PHP's save handler wrote under a session id. Each
// backend honours ctx's deadline on every call.
type Store interface {
	// Read returns the stored bytes for id, errNotFound when there are
	// none, any other error when the store could not be asked. The bytes
	// are the caller's. At most max bytes are read; more is an error
	// wrapping ErrTooLarge.
	Read(ctx context.Context, id string, max int) ([]byte, error)
	// Name is the backend's name for logs and metrics.
	Name() string
	// Close releases connections.
	Close() error
}

// Updater is a Store that can also write a session back under PHP's own
// lock (phpredis's <key>_LOCK protocol, flock for files).
type Updater interface {
	Store
	// Update takes PHP's lock on id, reads the data, calls fn with it and
	// stores what fn returns (unless fn returns an error or nil data), then
	// releases the lock. It never creates a session: an id with no data
	// gives errNotFound without calling fn.
	Update(ctx context.Context, id string, max int, fn func([]byte) ([]byte, error)) error
}
