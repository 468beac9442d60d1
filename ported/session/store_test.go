package session

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testID is an id of the default SIDPolicy's shape.
const testID = "abcdefghijklmnopqrstuv0123"

func TestParseSavePath(t *testing.T) {
	tests := []struct {
		give      string
		wantDir   string
		wantDepth int
		wantErr   bool
	}{
		{"/var/lib/php/sessions", "/var/lib/php/sessions", 0, false},
		{"2;/var/lib/php/sessions", "/var/lib/php/sessions", 2, false},
		{"2;0600;/var/lib/php/sessions", "/var/lib/php/sessions", 2, false},
		{"1;0600;/var/lib/php;odd", "/var/lib/php;odd", 1, false},
		{"x;/tmp", "", 0, true},
		{"2;999;/tmp", "", 0, true},
		{"relative/dir", "relative/dir", 0, false},
		{"", "", 0, true},
		{"-1;/tmp", "", 0, true},
	}
	for _, tt := range tests {
		dir, depth, err := ParseSavePath(tt.give)
		if (err != nil) != tt.wantErr || dir != tt.wantDir || depth != tt.wantDepth {
			t.Errorf("ParseSavePath(%q) = %q, %d, %v", tt.give, dir, depth, err)
		}
	}
}

// phpWriteSession has PHP's CLI write vars (a PHP array expression) under
// id with the given ini settings, through the real save handler.
func phpWriteSession(t testing.TB, id, vars string, ini ...string) {
	t.Helper()
	runPHP(t, `session_id('`+id+`'); if (!session_start()) exit(1); $_SESSION = `+vars+`; if (!session_write_close()) exit(2);`,
		append(append([]string{"session.use_cookies=0", "session.cache_limiter=", "error_reporting=-1", "display_errors=stderr"}, phpExt...), ini...)...)
}

// TestFilesDepth: the "N;/path" form, written by PHP.
func TestFilesDepth(t *testing.T) {
	dir := t.TempDir()
	// PHP does not create the level directories (its docs say to make them).
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o700); err != nil {
		t.Fatal(err)
	}
	phpWriteSession(t, testID, `['user' => 'deep']`, `session.save_path="2;`+dir+`"`, "session.serialize_handler=php_serialize")
	if _, err := os.Stat(filepath.Join(dir, "a", "b", "sess_"+testID)); err != nil {
		t.Fatalf("PHP did not write where expected: %v", err)
	}
	f, err := NewFiles("2;" + dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := f.Read(context.Background(), testID, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	top, err := Decode(PHPSerialize, data, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := top.String("user"); u != "deep" {
		t.Errorf("user %q", u)
	}
	if _, err := f.Read(context.Background(), "zzzzzzzzzzzzzzzzzzzzzzzzzz", 1<<10); !errors.Is(err, errNotFound) {
		t.Errorf("missing id: %v, want not found", err)
	}
}

func TestFilesRefuses(t *testing.T) {
	dir := t.TempDir()
	f, _ := NewFiles(dir)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(`user|s:5:"admin";`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "sess_"+testID)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Read(context.Background(), testID, 1<<10); !errors.Is(err, ErrMalformed) {
		t.Errorf("symlinked session file: %v, want refused", err)
	}
	other := "bbcdefghijklmnopqrstuv0123"
	if err := os.Mkdir(filepath.Join(dir, "sess_"+other), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Read(context.Background(), other, 1<<10); !errors.Is(err, ErrMalformed) {
		t.Errorf("directory as session file: %v, want refused", err)
	}
	big := "cbcdefghijklmnopqrstuv0123"
	if err := os.WriteFile(filepath.Join(dir, "sess_"+big), make([]byte, 2048), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Read(context.Background(), big, 1024); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized session file: %v, want ErrTooLarge", err)
	}
}

// phpHolder is a PHP process that has started a session (and so holds its
// lock) and waits for a line on stdin before it writes and closes it.
type phpHolder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func holdSession(t *testing.T, id string, ini ...string) *phpHolder {
	t.Helper()
	args := []string{"-n"}
	for _, s := range append(append([]string{"session.use_cookies=0", "session.cache_limiter=", "error_reporting=-1", "display_errors=stderr"}, phpExt...), ini...) {
		args = append(args, "-d", s)
	}
	args = append(args, "-r", `session_id('`+id+`'); session_start(); echo "locked\n"; `+
		`$_SESSION['by'] = trim(fgets(STDIN)); session_write_close(); echo "closed\n";`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, phpBin(t), args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &phpHolder{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	t.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	if line, err := h.out.ReadString('\n'); err != nil || line != "locked\n" {
		t.Fatalf("php holder: %q, %v", line, err)
	}
	return h
}

// release has PHP set $_SESSION['by'] = by, write and close.
func (h *phpHolder) release(t *testing.T, by string) {
	t.Helper()
	if _, err := io.WriteString(h.stdin, by+"\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := h.out.ReadString('\n'); err != nil || line != "closed\n" {
		t.Fatalf("php holder: %q, %v", line, err)
	}
}

// TestFilesLockAgainstPHP: a PHP request holding its session (flock
// LOCK_EX, as session_start takes it) makes a Go read wait, bounded by the
// read's deadline; once PHP has written and closed, Go reads PHP's write.
func TestFilesLockAgainstPHP(t *testing.T) {
	dir := t.TempDir()
	ini := []string{"session.save_path=" + dir, "session.serialize_handler=php"}
	phpWriteSession(t, testID, `['by' => 'nobody']`, ini...)
	f, _ := NewFiles(dir)
	h := holdSession(t, testID, ini...)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err := f.Read(ctx, testID, 1<<10)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read while PHP holds the session: %v, want the deadline", err)
	}
	h.release(t, "php")
	data, err := f.Read(context.Background(), testID, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != `by|s:3:"php";` {
		t.Errorf("after PHP's write: %q", data)
	}
}

// TestFilesUpdateLocksPHPOut: while Go's Update holds the session, a PHP
// session_start blocks (seen waiting in /proc/locks), and then reads
// what Go wrote.
func TestFilesUpdateLocksPHPOut(t *testing.T) {
	dir := t.TempDir()
	ini := []string{"session.save_path=" + dir, "session.serialize_handler=php"}
	phpWriteSession(t, testID, `['by' => 'nobody']`, ini...)
	f, _ := NewFiles(dir)
	var php *exec.Cmd
	var phpOut strings.Builder
	err := f.Update(context.Background(), testID, 1<<10, func(old []byte) ([]byte, error) {
		args := []string{"-n"}
		for _, s := range append([]string{"session.use_cookies=0", "session.cache_limiter="}, ini...) {
			args = append(args, "-d", s)
		}
		args = append(args, "-r", `session_id('`+testID+`'); session_start(); echo $_SESSION['by']; $_SESSION['by'] = 'php'; session_write_close();`)
		php = exec.Command(phpBin(t), args...)
		php.Stdout = &phpOut
		if err := php.Start(); err != nil {
			return nil, err
		}
		waitFlockWaiter(t, filepath.Join(dir, "sess_"+testID))
		return []byte(`by|s:2:"go";`), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := php.Wait(); err != nil {
		t.Fatal(err)
	}
	if phpOut.String() != "go" {
		t.Errorf("PHP read %q after Go's write, want go", phpOut.String())
	}
}

// TestRedisAgainstPHP: phpredis's writes, read by Go, for each handler; an
// expired session (a real TTL) is gone.
func TestRedisAgainstPHP(t *testing.T) {
	k := startRedis(t)
	r := NewRedis(RedisOptions{Addr: k.Addr, Timeout: time.Second, DialTimeout: time.Second})
	defer r.Close()
	for i, h := range handlers {
		id := testID[:25] + strconv.Itoa(i)
		phpWriteSession(t, id, `['user' => 'redis-`+string(h)+`', 'n' => 3]`,
			"session.save_handler=redis", "session.save_path=tcp://"+k.Addr, "session.serialize_handler="+string(h))
		data, err := r.Read(context.Background(), id, 1<<10)
		if err != nil {
			t.Fatalf("%s: %v", h, err)
		}
		top, err := Decode(h, data, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if u, _ := top.String("user"); u != "redis-"+string(h) {
			t.Errorf("%s: user %q", h, u)
		}
	}
	// The key is PHPREDIS_SESSION:<id> with session.gc_maxlifetime as TTL.
	ttl, err := r.c.TTL(context.Background(), DefaultRedisPrefix+testID[:25]+"0").Result()
	if err != nil || ttl <= 0 || ttl > DefaultMaxLifetime {
		t.Errorf("TTL %v, %v; want phpredis's gc_maxlifetime", ttl, err)
	}
	if err := r.c.PExpire(context.Background(), DefaultRedisPrefix+testID[:25]+"0", time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := r.Read(context.Background(), testID[:25]+"0", 1<<10)
		if errors.Is(err, errNotFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	// A custom prefix, as phpredis's save_path prefix= sets it.
	phpWriteSession(t, testID, `['user' => 'p']`, "session.save_handler=redis",
		`session.save_path="tcp://`+k.Addr+`?prefix=app:"`, "session.serialize_handler=php")
	rp := NewRedis(RedisOptions{Addr: k.Addr, Prefix: "app:", Timeout: time.Second})
	defer rp.Close()
	if data, err := rp.Read(context.Background(), testID, 1<<10); err != nil || string(data) != `user|s:1:"p";` {
		t.Errorf("prefixed read: %q, %v", data, err)
	}
}

// TestRedisLockAgainstPHP: phpredis's lock protocol both ways. PHP holding
// the lock makes Go's Update give up after phpredis's retries; Go holding
// it makes PHP's write be refused (phpredis's write_allowed), and Go's
// write stands.
func TestRedisLockAgainstPHP(t *testing.T) {
	k := startRedis(t)
	ini := []string{"session.save_handler=redis", "session.save_path=tcp://" + k.Addr, "session.serialize_handler=php",
		"redis.session.locking_enabled=1", "redis.session.lock_retries=10", "redis.session.lock_wait_time=2000"}
	phpWriteSession(t, testID, `['by' => 'nobody']`, ini...)
	r := NewRedis(RedisOptions{Addr: k.Addr, Timeout: 5 * time.Second})
	defer r.Close()

	h := holdSession(t, testID, ini...)
	called := false
	err := r.Update(context.Background(), testID, 1<<10, func([]byte) ([]byte, error) { called = true; return []byte("x"), nil })
	if !errors.Is(err, ErrLocked) || called {
		t.Fatalf("Update while PHP holds the lock: %v (fn called %v), want ErrLocked", err, called)
	}
	h.release(t, "php")

	err = r.Update(context.Background(), testID, 1<<10, func(old []byte) ([]byte, error) {
		if string(old) != `by|s:3:"php";` {
			t.Errorf("Update read %q", old)
		}
		// PHP gives up on the lock after its retries and may not write.
		holdSession(t, testID, ini...).release(t, "late")
		if data, _ := r.Read(context.Background(), testID, 1<<10); string(data) != `by|s:3:"php";` {
			t.Errorf("PHP wrote %q while Go held the lock", data)
		}
		return []byte(`by|s:2:"go";`), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := r.Read(context.Background(), testID, 1<<10); string(data) != `by|s:2:"go";` {
		t.Errorf("after both: %q", data)
	}
	if n, _ := r.c.Exists(context.Background(), DefaultRedisPrefix+testID+"_LOCK").Result(); n != 0 {
		t.Error("Go left its lock behind")
	}
}

// TestRedisReadBounded: a session over max_bytes is refused after max+1
// bytes are read, not after the whole value (16 MiB here) is; an empty
// value is no session.
func TestRedisReadBounded(t *testing.T) {
	k := startRedis(t)
	r := NewRedis(RedisOptions{Addr: k.Addr, Timeout: 5 * time.Second})
	defer r.Close()
	ctx := context.Background()
	if err := r.c.Set(ctx, DefaultRedisPrefix+testID, strings.Repeat("x", 16<<20), time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	_, _ = r.Read(ctx, testID, 1<<10) // opens the connection
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := r.Read(ctx, testID, 1<<10)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("16 MiB session: %v, want ErrTooLarge", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 4<<20 {
		t.Errorf("refusing a 16 MiB session allocated %d bytes, want about max_bytes", d)
	}
	other := testID[:25] + "x"
	if err := r.c.Set(ctx, DefaultRedisPrefix+other, "", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(ctx, other, 1<<10); !errors.Is(err, errNotFound) {
		t.Errorf("empty session: %v, want not found", err)
	}
}

// TestRedisLockLost: a lock that expired while fn ran and was taken by
// another request is no longer Go's: the write is refused (phpredis's
// write_allowed), and the other request's lock stays.
func TestRedisLockLost(t *testing.T) {
	k := startRedis(t)
	r := NewRedis(RedisOptions{Addr: k.Addr, Timeout: 5 * time.Second})
	defer r.Close()
	ctx := context.Background()
	key := DefaultRedisPrefix + testID
	if err := r.c.Set(ctx, key, `by|s:3:"old";`, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	err := r.Update(ctx, testID, 1<<10, func([]byte) ([]byte, error) {
		// As if the lock expired and another request took it.
		if err := r.c.Set(ctx, key+"_LOCK", "someone-else", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		return []byte(`by|s:2:"go";`), nil
	})
	if !errors.Is(err, ErrLockLost) {
		t.Errorf("Update after losing the lock: %v, want ErrLockLost", err)
	}
	if data, _ := r.c.Get(ctx, key).Result(); data != `by|s:3:"old";` {
		t.Errorf("session %q after a lost lock, want it unwritten", data)
	}
	if owner, _ := r.c.Get(ctx, key+"_LOCK").Result(); owner != "someone-else" {
		t.Errorf("lock %q, want the other request's left alone", owner)
	}
}

// TestMemcachedAgainstPHP: php-memcached's writes, read by Go.
func TestMemcachedAgainstPHP(t *testing.T) {
	k := startMemcached(t)
	phpWriteSession(t, testID, `['user' => 'memc', 'n' => 1]`,
		"session.save_handler=memcached", "session.save_path="+k.Addr, "session.serialize_handler=php_serialize")
	m := NewMemcached(k.Addr, "", time.Second, time.Second, 2)
	defer m.Close()
	data, err := m.Read(context.Background(), testID, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	top, err := Decode(PHPSerialize, data, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := top.String("user"); u != "memc" {
		t.Errorf("user %q", u)
	}
	if _, err := m.Read(context.Background(), "zzzzzzzzzzzzzzzzzzzzzzzzzz", 1<<10); !errors.Is(err, errNotFound) {
		t.Errorf("missing id: %v", err)
	}
}

// TestStoresOutage: a server that is gone and one that accepts but never
// answers are errors (not "not found") within the timeout.
func TestStoresOutage(t *testing.T) {
	dead := deadAddr(t)
	silent := silentServer(t)
	for _, tt := range []struct {
		name  string
		store Store
	}{
		{"redis gone", NewRedis(RedisOptions{Addr: dead, Timeout: 100 * time.Millisecond, DialTimeout: 100 * time.Millisecond})},
		{"redis silent", NewRedis(RedisOptions{Addr: silent, Timeout: 100 * time.Millisecond, DialTimeout: 100 * time.Millisecond})},
		{"memcached gone", NewMemcached(dead, "", 100*time.Millisecond, 100*time.Millisecond, 2)},
		{"memcached silent", NewMemcached(silent, "", 100*time.Millisecond, 100*time.Millisecond, 2)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer tt.store.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := tt.store.Read(ctx, testID, 1<<10)
			if err == nil || errors.Is(err, errNotFound) {
				t.Fatalf("Read = %v, want an outage error", err)
			}
			// A loose bound: what matters is that the call ends.
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Read took %s", d)
			}
		})
	}
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// silentServer accepts connections and never answers.
func silentServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}

// TestMemcachedBounded: a memcached that accepts and never answers holds
// at most pool_size connections; each read returns at its deadline though
// gomemcache takes none, and a read finding every connection busy waits
// for one only as long as its deadline. Close waits for the calls left.
func TestMemcachedBounded(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 10)
	go func() {
		defer close(conns)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	m := NewMemcached(l.Addr().String(), "", time.Second, time.Minute, 2)
	read := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := m.Read(ctx, testID, 1<<10)
		return err
	}
	var held []net.Conn
	for range 2 {
		if err := read(); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("read from a silent memcached: %v, want its deadline", err)
		}
		held = append(held, <-conns) // its call goes on, on this connection
	}
	if err := read(); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "busy") {
		t.Errorf("third read: %v, want the deadline while both connections are busy", err)
	}
	select {
	case c := <-conns:
		c.Close()
		t.Error("a third connection was opened")
	default:
	}
	for _, c := range held {
		c.Close() // the calls left end now rather than at their timeout
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
	l.Close()
	for c := range conns {
		c.Close()
	}
}
