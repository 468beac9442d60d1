package session

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/internal/monolith"
	"github.com/strangler-proxy/strangler/internal/monolith/monolithtest"
)

// The lock tests below run against real PHP-FPM requests through the sample
// monolith's Nginx. GET /session/hold (legacy_session_hold) opens the
// client's session, and so takes PHP's lock on it, says "open by=<by>", and
// keeps it open until POST /session/release; then it writes by=php and
// says "closed". No step waits for a duration: each one waits for a state
// (a line from PHP, a waiter in /proc/locks) or for a lock to be refused.

// fpmClient talks to the monolith; it never follows a redirect.
var fpmClient = &http.Client{
	Timeout:       60 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// phpLogin logs alice in with the monolith's POST /login and returns the
// session id PHP issued.
func phpLogin(t *testing.T, m *monolith.Monolith) string {
	t.Helper()
	resp, err := fpmClient.PostForm(m.URL+"/login", url.Values{"user": {"alice"}, "password": {"secret"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "PHPSESSID" {
			return c.Value
		}
	}
	t.Fatalf("login: %s, no session cookie", resp.Status)
	return ""
}

// fpmHold is one GET /session/hold in flight. Its goroutine sends the
// lines PHP streams and ends with the response; Cleanup releases the hold
// and waits for it.
type fpmHold struct {
	m     *monolith.Monolith
	name  string
	lines chan string // closed at the end of the answer
	err   chan error  // at most one, before lines closes
}

func startHold(t *testing.T, m *monolith.Monolith, id, name string, ms int) *fpmHold {
	t.Helper()
	h := &fpmHold{m: m, name: name, lines: make(chan string, 4), err: make(chan error, 1)}
	req, err := http.NewRequest(http.MethodGet, m.URL+"/session/hold?hold="+name+"&ms="+strconv.Itoa(ms), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Cookie", "PHPSESSID="+id)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(h.lines)
		resp, err := fpmClient.Do(req)
		if err != nil {
			h.err <- err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			h.err <- fmt.Errorf("hold: %s", resp.Status)
			return
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		if err := sc.Err(); err != nil {
			h.err <- err
		}
	}()
	t.Cleanup(func() {
		h.post(t, http.StatusNotFound) // 404: released already
		for range h.lines {
		}
		<-done
	})
	return h
}

// line is the next line PHP streamed.
func (h *fpmHold) line(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-h.lines:
		if !ok {
			select {
			case err := <-h.err:
				t.Fatalf("hold %s: %v", h.name, err)
			default:
				t.Fatalf("hold %s: the answer ended", h.name)
			}
		}
		return l
	case <-time.After(30 * time.Second):
		t.Fatalf("hold %s: no line from PHP in 30 s", h.name)
		return ""
	}
}

// open waits until PHP has the session open and returns $_SESSION['by'] as
// PHP read it.
func (h *fpmHold) open(t *testing.T) string {
	t.Helper()
	by, ok := strings.CutPrefix(h.line(t), "open by=")
	if !ok {
		t.Fatalf("hold %s: no open line", h.name)
	}
	return by
}

// quiet fails if PHP has said anything yet.
func (h *fpmHold) quiet(t *testing.T) {
	t.Helper()
	select {
	case l := <-h.lines:
		t.Fatalf("hold %s: PHP said %q, want it still waiting for the lock", h.name, l)
	default:
	}
}

// release ends the hold and waits for PHP's write and close.
func (h *fpmHold) release(t *testing.T) {
	t.Helper()
	h.post(t)
	h.closed(t)
}

func (h *fpmHold) closed(t *testing.T) {
	t.Helper()
	if l := h.line(t); l != "closed" {
		t.Fatalf("hold %s: %q, want closed", h.name, l)
	}
}

// post releases the hold: 204, or one of also.
func (h *fpmHold) post(t *testing.T, also ...int) {
	resp, err := fpmClient.Post(h.m.URL+"/session/release?hold="+h.name, "text/plain", nil)
	if err != nil {
		t.Error(err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent && !slices.Contains(also, resp.StatusCode) {
		b, _ := io.ReadAll(resp.Body)
		t.Errorf("release %s: %s %s", h.name, resp.Status, b)
	}
}

// fpmReaders are readers of m's sessions allowed to write for handler "w":
// short gives up after 200 ms, long after 30 s.
func fpmReaders(t *testing.T, m *monolith.Monolith, handler Handler) (short, long *Reader) {
	t.Helper()
	c := Config{Backend: m.Sessions, SerializeHandler: handler, Write: WriteConfig{Handlers: []string{"w"}}}
	if m.Sessions == monolith.SessionsFiles {
		c.SavePath = m.SessionSavePath
	} else {
		c.Address = m.SessionAddr
	}
	for _, d := range []time.Duration{200 * time.Millisecond, 30 * time.Second} {
		c.Timeout, c.DialTimeout = d, min(d, time.Second)
		r, err := New(Options{Config: c})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		short, long = long, r
	}
	return short.For("w"), long.For("w")
}

func sessionBy(t *testing.T, r *Reader, ctx *fasthttp.RequestCtx) string {
	t.Helper()
	s, err := r.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := s.String("user"); u != "alice" {
		t.Fatalf("user %q, want alice", u)
	}
	v, _ := s.String("by")
	return v
}

func setBy(v string, seen *string) func(*Array) (*Array, error) {
	return func(a *Array) (*Array, error) {
		*seen, _ = a.String("by")
		return a.With("by", StringValue(v)), nil
	}
}

// TestFilesLockAgainstPHPFPM: files sessions, PHP's flock both ways. While
// a PHP request has the session open, a Go read and a Go write wait for it
// and give up at their deadline (the read is ErrUnavailable, a 503, never
// "logged out"); once PHP has written and closed, Go reads PHP's write.
// While Go writes, a PHP request waits in flock (seen in /proc/locks) and
// then reads what Go wrote.
func TestFilesLockAgainstPHPFPM(t *testing.T) {
	m := monolithtest.Start(t, monolith.Options{Workers: 2})
	id := phpLogin(t, m)
	short, long := fpmReaders(t, m, PHP)
	ctx := requestWithCookie(t, "PHPSESSID="+id)
	s, err := long.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}

	h := startHold(t, m, id, "a", 30000)
	if got := h.open(t); got != "" {
		t.Fatalf("PHP read by=%q, want none yet", got)
	}
	if _, err := short.Session(ctx); !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Go read while PHP holds the session: %v, want ErrUnavailable at the deadline", err)
	}
	g := requestWithCookie(t, "PHPSESSID="+id)
	if err := short.Require(func(*fasthttp.RequestCtx, *Session) error { t.Error("page served"); return nil }).Serve(g); err != nil ||
		g.Response.StatusCode() != http.StatusServiceUnavailable {
		t.Errorf("Require while PHP holds the session: %d, %v; want 503", g.Response.StatusCode(), err)
	}
	called := false
	if err := short.Update(ctx, s, func(a *Array) (*Array, error) { called = true; return a, nil }); !errors.Is(err, context.DeadlineExceeded) || called {
		t.Errorf("Go write while PHP holds the session: %v (fn called: %v), want the deadline", err, called)
	}
	h.release(t)
	var seen string
	if err := long.Update(ctx, s, setBy("go", &seen)); err != nil || seen != "php" {
		t.Fatalf("Go write after PHP closed: %v, saw by=%q; want PHP's write", err, seen)
	}

	file := filepath.Join(m.SessionSavePath, "sess_"+id)
	var h2 *fpmHold
	err = long.Update(ctx, s, func(a *Array) (*Array, error) {
		h2 = startHold(t, m, id, "b", 30000)
		waitFlockWaiter(t, file)
		h2.quiet(t)
		return a.With("by", StringValue("go-held")), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := h2.open(t); got != "go-held" {
		t.Errorf("PHP read by=%q after Go's write, want go-held", got)
	}
	h2.release(t)
	if got := sessionBy(t, long, ctx); got != "php" {
		t.Errorf("by=%q at the end, want PHP's last write", got)
	}
}

// TestRedisLockAgainstPHPFPM: phpredis's <key>_LOCK protocol both ways,
// with redis.session.locking_enabled on in the PHP-FPM pool. While a PHP
// request has the session open, Go's write gives up after phpredis's
// retries without calling fn (reads take no lock, as phpredis's own reads
// without locking); once PHP has closed, Go writes on top of PHP's write.
// While Go writes, a PHP request cannot take the lock, reads the old data
// and has its write refused: Go's write stands.
func TestRedisLockAgainstPHPFPM(t *testing.T) {
	m := monolithtest.Start(t, monolith.Options{Workers: 2, Sessions: monolith.SessionsRedis, SessionLocking: true,
		SerializeHandler: string(PHPSerialize)})
	id := phpLogin(t, m)
	_, long := fpmReaders(t, m, PHPSerialize)
	ctx := requestWithCookie(t, "PHPSESSID="+id)
	s, err := long.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw := long.store.(*Redis)
	lockKey := DefaultRedisPrefix + id + "_LOCK"

	h := startHold(t, m, id, "a", 30000)
	h.open(t)
	if n, err := raw.c.Exists(context.Background(), lockKey).Result(); err != nil || n != 1 {
		t.Fatalf("PHP holds the session but %s exists=%d (%v): is locking on in the pool?", lockKey, n, err)
	}
	called := false
	if err := long.Update(ctx, s, func(a *Array) (*Array, error) { called = true; return a, nil }); !errors.Is(err, ErrLocked) || called {
		t.Errorf("Go write while PHP holds the lock: %v (fn called: %v), want ErrLocked", err, called)
	}
	if got := sessionBy(t, long, ctx); got != "" {
		t.Errorf("Go read by=%q while PHP holds the lock, want the last write (none)", got)
	}
	h.release(t)
	var seen string
	if err := long.Update(ctx, s, setBy("go", &seen)); err != nil || seen != "php" {
		t.Fatalf("Go write after PHP closed: %v, saw by=%q; want PHP's write", err, seen)
	}

	err = long.Update(ctx, s, func(a *Array) (*Array, error) {
		h2 := startHold(t, m, id, "b", 0)
		if got := h2.open(t); got != "go" {
			t.Errorf("PHP (locked out) read by=%q, want the data before Go's write", got)
		}
		h2.closed(t)
		return a.With("by", StringValue("go-held")), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := sessionBy(t, long, ctx); got != "go-held" {
		t.Errorf("by=%q at the end, want Go's write (PHP's refused: it never had the lock)", got)
	}
	if n, _ := raw.c.Exists(context.Background(), lockKey).Result(); n != 0 {
		t.Error("a lock was left behind")
	}
}

// waitFlockWaiter waits until some process is blocked in flock on file
// (a "->" line for its inode in /proc/locks).
func waitFlockWaiter(t *testing.T, file string) {
	t.Helper()
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	ino := ":" + strconv.FormatUint(st.Sys().(*syscall.Stat_t).Ino, 10)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/locks")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 6 && f[1] == "->" && f[2] == "FLOCK" && strings.HasSuffix(f[6], ino) {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no process waited on the lock of %s", file)
}
