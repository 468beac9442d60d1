//go:build unix

package spool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// lockName is the file the running process holds an exclusive flock on.
// Shorter than 20 bytes: tidwall/wal only reads 20-digit segment names.
const lockName = "lock"

// ErrLocked means another process holds the spool directory.
var ErrLocked = errors.New("spool directory in use by another process")

// dirLock is an exclusive flock(2) on dir/lock, held for the life of the
// process's spool. Two processes appending to one tidwall/wal log corrupt
// it and truncate each other's un-acked events; the kernel drops the lock
// when its holder dies, kill -9 included, so there is no stale lock to
// clean up by hand.
type dirLock struct{ f *os.File }

func lockDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("spool lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is locked by pid %s: %w", dir, holder(path), ErrLocked)
		}
		return nil, fmt.Errorf("spool lock %s: %w", path, err)
	}
	// The pid is for the message above only; the flock is the lock.
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt(pid, 0)
	}
	return &dirLock{f: f}, nil
}

// holder reads the pid the lock's holder wrote, "unknown" while it has not.
func holder(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	b = bytes.TrimSpace(b)
	if _, err := strconv.Atoi(string(b)); err != nil || len(b) == 0 {
		return "unknown"
	}
	return string(b)
}

// unlock releases the lock. The file stays: removing it would let a
// process that opened it just before lock a file no one else can see.
func (l *dirLock) unlock() error {
	if l == nil {
		return nil
	}
	return l.f.Close() // closing the last descriptor releases the flock
}
