package routes

import "sync/atomic"

// Live holds the table requests are matched against. Load is one atomic
// read, so the request path takes no lock; the watcher swaps in a new table
// whole with Store and requests already holding the old one finish with it.
type Live struct {
	p atomic.Pointer[Table]
}

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
