package session

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strangler-proxy/strangler/internal/jitter"
)

// Files reads PHP's files save handler (ext/session/mod_files.c):
// <save_path>/sess_<id>, or with "N;/path" N levels of one-character
// directories taken from the id first (<path>/a/b/sess_ab...).
type Files struct {
	dir   string
	depth int
	// lockPoll is the first wait between two flock attempts; it doubles up
	// to lockPollMax.
	lockPoll time.Duration
}

const (
	lockPollMin = 200 * time.Microsecond
	lockPollMax = 20 * time.Millisecond
)

// ParseSavePath reads session.save_path as mod_files does: "/path",
// "N;/path" or "N;MODE;/path" (the mode only matters to PHP creating
// files, which Go never does).
func ParseSavePath(s string) (dir string, depth int, err error) {
	parts := strings.SplitN(s, ";", 3)
	dir = parts[len(parts)-1]
	if len(parts) > 1 {
		depth, err = strconv.Atoi(parts[0])
		if err != nil || depth < 0 || depth > 32 {
			return "", 0, fmt.Errorf("save_path %q: depth %q is not 0..32", s, parts[0])
		}
	}
	if len(parts) > 2 {
		m, err := strconv.ParseUint(parts[1], 8, 32)
		if err != nil || m > 0o7777 {
			return "", 0, fmt.Errorf("save_path %q: mode %q is not octal 0..7777", s, parts[1])
		}
	}
	if dir == "" {
		return "", 0, fmt.Errorf("save_path %q: no directory", s)
	}
	return filepath.Clean(dir), depth, nil
}

// NewFiles reads sessions under savePath (session.save_path's syntax; a
// relative directory is relative to the working directory).
func NewFiles(savePath string) (*Files, error) {
	dir, depth, err := ParseSavePath(savePath)
	if err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("save_path: %w", err)
	}
	return &Files{dir: dir, depth: depth, lockPoll: lockPollMin}, nil
}

// Name implements Store.
func (f *Files) Name() string { return "files" }

// Close implements Store.
func (f *Files) Close() error { return nil }

// path is ps_files_path_create. The id was validated (alphabet and length
// from SIDPolicy), so it holds no '/' or '.'.
func (f *Files) path(id string) (string, error) {
	if len(id) <= f.depth {
		return "", errNotFound
	}
	var b strings.Builder
	b.WriteString(f.dir)
	for i := range f.depth {
		b.WriteByte('/')
		b.WriteByte(id[i])
	}
	b.WriteString("/sess_")
	b.WriteString(id)
	return b.String(), nil
}

// Read implements Store. It takes a shared flock, as PHP's writers hold an
// exclusive one while they truncate and rewrite the file: reading without it
// could see half a session. A lock held past ctx's deadline (a long PHP
// request that keeps its session open) is an error, not a wait without end.
func (f *Files) Read(ctx context.Context, id string, max int) ([]byte, error) {
	fd, err := f.open(id, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if err := f.lock(ctx, fd, unix.LOCK_SH); err != nil {
		return nil, err
	}
	return readAll(fd, max)
}

// open opens the session file without following a symlink (PHP opens with
// O_NOFOLLOW too) and refuses anything but a regular file.
func (f *Files) open(id string, mode int) (int, error) {
	p, err := f.path(id)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Open(p, mode|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return -1, errNotFound
	case errors.Is(err, unix.ELOOP):
		return -1, fmt.Errorf("session file is a symlink: %w", ErrMalformed)
	case err != nil:
		return -1, fmt.Errorf("open session file: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("stat session file: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, fmt.Errorf("session file is not a regular file: %w", ErrMalformed)
	}
	return fd, nil
}

// lock takes flock(how) on fd, polling LOCK_NB with a doubling, jittered
// wait until ctx ends: a blocking flock cannot be cancelled.
func (f *Files) lock(ctx context.Context, fd, how int) error {
	wait := f.lockPoll
	var t *time.Timer
	for {
		err := unix.Flock(fd, how|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("flock session file: %w", err)
		}
		// Equal jitter: requests waiting for one session do not poll in
		// lockstep.
		if t == nil {
			t = time.NewTimer(jitter.Down(wait, 0.5))
			defer t.Stop()
		} else {
			t.Reset(jitter.Down(wait, 0.5))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("session file locked by another request: %w", ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, lockPollMax)
	}
}

// readAll reads the whole file from offset 0, at most max bytes.
func readAll(fd, max int) ([]byte, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("stat session file: %w", err)
	}
	if st.Size > int64(max) {
		return nil, fmt.Errorf("session file of %d bytes, over %d: %w", st.Size, max, ErrTooLarge)
	}
	buf := make([]byte, st.Size)
	n := 0
	for n < len(buf) {
		m, err := unix.Pread(fd, buf[n:], int64(n))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read session file: %w", err)
		}
		if m == 0 {
			break // shrank under us: cannot happen while we hold the lock
		}
		n += m
	}
	return buf[:n], nil
}

// Update implements Updater: an exclusive flock, as PHP's session_start
// takes, held while fn runs; the new data is written the way mod_files
// writes (truncate when shorter, then write from offset 0).
func (f *Files) Update(ctx context.Context, id string, max int, fn func([]byte) ([]byte, error)) error {
	fd, err := f.open(id, unix.O_RDWR)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := f.lock(ctx, fd, unix.LOCK_EX); err != nil {
		return err
	}
	old, err := readAll(fd, max)
	if err != nil {
		return err
	}
	data, err := fn(old)
	if err != nil || data == nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("session write: %w", err)
	}
	if len(data) < len(old) {
		if err := unix.Ftruncate(fd, 0); err != nil {
			return fmt.Errorf("truncate session file: %w", err)
		}
	}
	for n := 0; n < len(data); {
		m, err := unix.Pwrite(fd, data[n:], int64(n))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("write session file: %w", err)
		}
		n += m
	}
	return nil
}

// Interface guards.
var _ Updater = (*Files)(nil)
