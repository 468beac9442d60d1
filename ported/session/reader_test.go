package session

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func newFilesReader(t *testing.T, c Config) (*Reader, string, *observer.ObservedLogs) {
	t.Helper()
	dir := t.TempDir()
	c.Backend, c.SavePath = BackendFiles, dir
	core, logs := observer.New(zap.DebugLevel)
	r, err := New(Options{Config: c, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r, dir, logs
}

func writeSession(t *testing.T, dir, id, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "sess_"+id), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReaderSecurity: every way a request can lack a real session reads as
// "no session", with one Warn line for hostile data and none for the
// ordinary cases, and Go never creates anything in the store.
func TestReaderSecurity(t *testing.T) {
	r, dir, logs := newFilesReader(t, Config{MaxBytes: 4096, MaxDepth: 8, MaxElements: 100})
	deep := strings.Repeat("a:1:{i:0;", 20) + "N;" + strings.Repeat("}", 20)
	many := "a:200:{" + strings.Repeat("i:0;N;", 200) + "}"
	hostile := map[string]string{
		"aaaaaaaaaaaaaaaaaaaaaaaaa1": `x|O:8:"stdClass":1:{s:1:"a";i:1;}user|s:5:"alice";`,
		"aaaaaaaaaaaaaaaaaaaaaaaaa2": `user|s:5:"alice";r|R:1;`,
		"aaaaaaaaaaaaaaaaaaaaaaaaa3": "x|" + deep,
		"aaaaaaaaaaaaaaaaaaaaaaaaa4": "x|" + many,
		"aaaaaaaaaaaaaaaaaaaaaaaaa5": `user|s:5:"alice";` + strings.Repeat("x", 5000),
		"aaaaaaaaaaaaaaaaaaaaaaaaa6": `user|s:99999:"alice";`,
	}
	for id, data := range hostile {
		writeSession(t, dir, id, data)
	}
	writeSession(t, dir, "aaaaaaaaaaaaaaaaaaaaaaaaa7", "")
	before, _ := os.ReadDir(dir)

	tests := []struct {
		name     string
		cookie   []string
		wantWarn bool
	}{
		{"no cookie", nil, false},
		{"fixation: a made-up id PHP never issued", []string{"PHPSESSID=attackerchosenid0123456789ab"[:10+16]}, false},
		{"too short", []string{"PHPSESSID=abc"}, false},
		{"bad characters", []string{"PHPSESSID=../../etc/passwd%00aaaaaaaaaaa"}, false},
		{"empty value", []string{"PHPSESSID="}, false},
		{"array cookie", []string{"PHPSESSID[]=aaaaaaaaaaaaaaaaaaaaaaaaa1"}, false},
		{"empty session", []string{"PHPSESSID=aaaaaaaaaaaaaaaaaaaaaaaaa7"}, false},
		{"object", []string{"PHPSESSID=aaaaaaaaaaaaaaaaaaaaaaaaa1"}, true},
		{"reference", []string{"PHPSESSID=aaaaaaaaaaaaaaaaaaaaaaaaa2"}, true},
		{"deep nesting", []string{"PHPSESSID=aaaaaaaaaaaaaaaaaaaaaaaaa3"}, true},
		{"huge count", []string{"PHPSESSID=aaaaaaaaaaaaaaaaaaaaaaaaa4"}, true},
		{"oversized", []string{"PHPSESSID=aaaaaaaaaaaaaaaaaaaaaaaaa5"}, true},
		{"lying length", []string{"PHPSESSID=aaaaaaaaaaaaaaaaaaaaaaaaa6"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := logs.Len()
			s, err := r.Session(requestWithCookie(t, tt.cookie...))
			if s != nil || !errors.Is(err, ErrNoSession) {
				t.Fatalf("Session = %v, %v; want ErrNoSession", s, err)
			}
			var warns []observer.LoggedEntry
			for _, e := range logs.All()[n:] {
				if e.Level >= zap.WarnLevel {
					warns = append(warns, e)
				}
			}
			if tt.wantWarn != (len(warns) == 1) || len(warns) > 1 {
				t.Fatalf("%d warn lines (%v), want warn=%v", len(warns), warns, tt.wantWarn)
			}
			for _, e := range logs.All()[n:] {
				for k, v := range e.ContextMap() {
					if strings.Contains(k+" "+toString(v), "alice") {
						t.Errorf("session data in the log: %s=%v", k, v)
					}
				}
			}
		})
	}
	after, _ := os.ReadDir(dir)
	if len(after) != len(before) {
		t.Errorf("the store changed: %d files before, %d after", len(before), len(after))
	}
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

func TestReaderReads(t *testing.T) {
	r, dir, _ := newFilesReader(t, Config{SerializeHandler: PHPSerialize})
	id := "bbbbbbbbbbbbbbbbbbbbbbbbb1"
	writeSession(t, dir, id, `a:2:{s:4:"user";s:5:"alice";s:5:"roles";a:1:{i:0;s:5:"admin";}}`)
	s, err := r.Session(requestWithCookie(t, "x=1; PHPSESSID="+id))
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := s.String("user"); u != "alice" {
		t.Errorf("user %q", u)
	}
	if v, ok := s.Lookup("roles", "0"); !ok {
		t.Error("roles[0] missing")
	} else if role, _ := v.AsString(); role != "admin" {
		t.Errorf("roles[0] %q", role)
	}
	// Read-only unless listed: the shared reader, a listed handler's view
	// under ReadOnly (shadow), and an unlisted handler all refuse.
	if err := r.Update(requestWithCookie(t), s, func(a *Array) (*Array, error) { return a, nil }); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Update on the shared reader: %v", err)
	}
}

func TestReaderUpdate(t *testing.T) {
	r, dir, _ := newFilesReader(t, Config{Write: WriteConfig{Handlers: []string{"cart.add"}}})
	id := "cccccccccccccccccccccccc12"
	writeSession(t, dir, id, `user|s:5:"alice";n|i:1;`)
	ctx := requestWithCookie(t, "PHPSESSID="+id)
	s, err := r.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bump := func(a *Array) (*Array, error) {
		n, _ := a.Int("n")
		return a.With("n", IntValue(n+1)), nil
	}
	for _, v := range []*Reader{r.For("other"), r.For("cart.add").ReadOnly()} {
		if err := v.Update(ctx, s, bump); !errors.Is(err, ErrReadOnly) {
			t.Errorf("Update: %v, want ErrReadOnly", err)
		}
	}
	if err := r.For("cart.add").Update(ctx, s, bump); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "sess_"+id))
	if string(b) != `user|s:5:"alice";n|i:2;` {
		t.Errorf("after Update: %q", b)
	}
	// Gone meanwhile (PHP destroyed it): no session, and nothing created.
	os.Remove(filepath.Join(dir, "sess_"+id))
	if err := r.For("cart.add").Update(ctx, s, bump); !errors.Is(err, ErrNoSession) {
		t.Errorf("Update of a destroyed session: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sess_"+id)); err == nil {
		t.Error("Update created a session")
	}
}

// TestRequire: the answers of a handler that requires a session.
func TestRequire(t *testing.T) {
	r, dir, _ := newFilesReader(t, Config{})
	id := "dddddddddddddddddddddddddd"
	writeSession(t, dir, id, `user|s:3:"bob";`)
	h := r.Require(func(ctx *fasthttp.RequestCtx, s *Session) error {
		u, _ := s.String("user")
		ctx.SetBodyString("hello " + u)
		return nil
	})
	tests := []struct {
		name      string
		cookie    []string
		status    int
		body      string
		loc       string
		nocache   bool
		retryWant string
	}{
		{"logged in", []string{"PHPSESSID=" + id}, 200, "hello bob", "", true, ""},
		{"no cookie", nil, 302, "", "/login", false, ""},
		{"unknown id", []string{"PHPSESSID=eeeeeeeeeeeeeeeeeeeeeeeeee"}, 302, "", "/login", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := requestWithCookie(t, tt.cookie...)
			if err := h.Serve(ctx); err != nil {
				t.Fatal(err)
			}
			resp := &ctx.Response
			if resp.StatusCode() != tt.status || string(resp.Body()) != tt.body || string(resp.Header.Peek("Location")) != tt.loc {
				t.Errorf("got %d %q Location %q", resp.StatusCode(), resp.Body(), resp.Header.Peek("Location"))
			}
			if got := string(resp.Header.Peek("Cache-Control")) == "no-store, no-cache, must-revalidate"; got != tt.nocache {
				t.Errorf("nocache headers %v, want %v", got, tt.nocache)
			}
			if len(resp.Header.PeekAll("Set-Cookie")) != 0 {
				t.Error("Go set a cookie")
			}
		})
	}
	// The store away: 503 + Retry-After, neither the page nor the login.
	rs, err := New(Options{Config: Config{Backend: BackendRedis, Address: deadAddr(t), Timeout: 100 * time.Millisecond, RetryAfter: 1500 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	ctx := requestWithCookie(t, "PHPSESSID="+id)
	if err := rs.Require(func(*fasthttp.RequestCtx, *Session) error { t.Error("handler ran"); return nil }).Serve(ctx); err != nil {
		t.Fatal(err)
	}
	if ctx.Response.StatusCode() != 503 || string(ctx.Response.Header.Peek("Retry-After")) != "2" ||
		!strings.Contains(string(ctx.Response.Body()), "rid-1") || len(ctx.Response.Header.Peek("Location")) != 0 {
		t.Errorf("outage: %d Retry-After %q body %q", ctx.Response.StatusCode(), ctx.Response.Header.Peek("Retry-After"), ctx.Response.Body())
	}
}

func TestConfigValidate(t *testing.T) {
	ok := []Config{
		{},
		{Backend: "files", SavePath: "/var/lib/php/sessions"},
		{Backend: "files", SavePath: "2;/var/lib/php/sessions", SerializeHandler: PHPSerialize},
		{Backend: "redis", Address: "127.0.0.1:6379", Password: "x", Database: 2, Write: WriteConfig{Handlers: []string{"a"}}},
		{Backend: "memcached", Address: "cache:11211"},
	}
	for _, c := range ok {
		if err := c.WithDefaults().Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	bad := map[string]Config{
		"session.backend":       {Backend: "mysql"},
		"session.save_path":     {Backend: "files"},
		"no directory":          {Backend: "files", SavePath: "2;"},
		"session.address":       {Backend: "redis", Address: "localhost"},
		"Redis settings":        {Backend: "memcached", Address: "a:1", Password: "x"},
		"serialize_handler":     {SerializeHandler: "igbinary"},
		"sid_length":            {SID: SIDPolicy{Length: 10}},
		"dial_timeout":          {Timeout: time.Millisecond, DialTimeout: time.Second},
		"login_url":             {LoginURL: "https://evil.example/"},
		"cache_limiter":         {CacheLimiter: "public"},
		"not supported for mem": {Backend: "memcached", Address: "a:1", Write: WriteConfig{Handlers: []string{"x"}}},
		"cookie_name":           {CookieName: "PHP.SESS"},
	}
	for want, c := range bad {
		err := c.WithDefaults().Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want an error naming %q", c, err, want)
		}
	}
}
