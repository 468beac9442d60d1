package routes

import "sync/atomic"

// Publisher makes a compiled table the one requests are matched against.
// An error refuses the table: the one in force stays, and the Watcher logs
// the error as the reload's reason. The front door's control plane is one
// (it builds the table's runtime first and refuses when a resource will
// not open); Live is the plain one.
type Publisher interface {
	Publish(t *Table) error
}

// Live holds the table requests are matched against. Load is one atomic
// read, so the request path takes no lock; the watcher swaps in a new table
// whole with Store and requests already holding the old one finish with it.
type Live struct {
	p atomic.Pointer[Table]
}

// Interface guard.
var _ Publisher = (*Live)(nil)

// NewLive returns a Live serving t (nil: an empty table, all legacy).
func NewLive(t *Table) *Live {
	l := &Live{}
	l.Store(t)
	return l
}

// Load returns the current table; never nil.
func (l *Live) Load() *Table { return l.p.Load() }

// Store makes t current (nil: an empty table, all legacy).
func (l *Live) Store(t *Table) {
	if t == nil {
		t = &Table{}
	}
	l.p.Store(t)
}

// Publish is Store; it never refuses.
func (l *Live) Publish(t *Table) error {
	l.Store(t)
	return nil
}
