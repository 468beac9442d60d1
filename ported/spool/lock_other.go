//go:build !unix

package spool

import "errors"

// ErrLocked means another process holds the spool directory.
var ErrLocked = errors.New("spool directory in use by another process")

// dirLock is a no-op where flock(2) does not exist: the spool then relies
// on its operator to run one process per directory.
type dirLock struct{}

func lockDir(string) (*dirLock, error) { return &dirLock{}, nil }

func (l *dirLock) unlock() error { return nil }
