package monolith_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/strangler-proxy/strangler/internal/monolith"
	"github.com/strangler-proxy/strangler/internal/monolith/monolithtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newClient returns a client that does not follow redirects (the tests look
// at the 302s themselves) and whose connections close when the test ends.
func newClient(t *testing.T, jar http.CookieJar) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, c *http.Client, req *http.Request) response {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

func get(t *testing.T, c *http.Client, url string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, c, req)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	for dir, _ := os.Getwd(); ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if filepath.Dir(dir) == dir {
			t.Fatal("no go.mod above the working directory")
		}
	}
}

func TestRoutes(t *testing.T) {
	m := monolithtest.Start(t, monolith.Options{Workers: 2})
	c := newClient(t, nil)
	hello, err := os.ReadFile(filepath.Join(repoRoot(t), "examples/monolith/public/static/hello.txt"))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantType   string // Content-Type prefix
		wantBody   string // exact, when wantExact
		wantExact  bool
		wantIn     string // substring of the body
		wantHeader map[string]string
	}{
		{name: "home", path: "/", wantStatus: 200, wantType: "text/html", wantIn: "<h1>Sample monolith</h1>"},
		{name: "ping", path: "/api/v1/ping", wantStatus: 200, wantType: "application/json", wantExact: true, wantBody: `{"status":"ok","implementation":"php"}`},
		{name: "ping HEAD", method: http.MethodHead, path: "/api/v1/ping", wantStatus: 200, wantType: "application/json", wantExact: true},
		{name: "ping wrong method", method: http.MethodPost, path: "/api/v1/ping", wantStatus: 405, wantHeader: map[string]string{"Allow": "GET, HEAD"}},
		{name: "static txt", path: "/static/hello.txt", wantStatus: 200, wantType: "text/plain", wantExact: true, wantBody: string(hello)},
		{name: "static css", path: "/static/app.css", wantStatus: 200, wantType: "text/css", wantIn: "body"},
		{name: "static missing", path: "/static/nope.txt", wantStatus: 404},
		{name: "unknown route", path: "/no/such/page", wantStatus: 404, wantType: "application/json", wantIn: `"error":"not_found"`},
		{name: "login form", path: "/login", wantStatus: 200, wantType: "text/html", wantIn: `name="password"`},
		{name: "account without session", path: "/account", wantStatus: 302, wantHeader: map[string]string{"Location": "/login"}},
		{name: "status 418", path: "/status/418", wantStatus: 418, wantExact: true, wantBody: "status 418\n"},
		{name: "status 503", path: "/status/503", wantStatus: 503, wantExact: true, wantBody: "status 503\n"},
		{name: "status 204", path: "/status/204", wantStatus: 204, wantExact: true},
		{name: "status 1xx refused", path: "/status/101", wantStatus: 400},
		{name: "status 600 refused", path: "/status/600", wantStatus: 400},
		{name: "redirect", path: "/redirect?to=/x%3Fa%3D1", wantStatus: 302, wantHeader: map[string]string{"Location": "/x?a=1"}},
		{name: "redirect off-site refused", path: "/redirect?to=//evil.example/", wantStatus: 302, wantHeader: map[string]string{"Location": "/"}},
		{name: "slow", path: "/slow?ms=20", wantStatus: 200, wantExact: true, wantBody: `{"slept_ms":20}`},
		{name: "slow capped", path: "/slow?ms=-5", wantStatus: 200, wantExact: true, wantBody: `{"slept_ms":0}`},
		{name: "download too big", path: "/download/2049", wantStatus: 400},
		{name: "download zero", path: "/download/0", wantStatus: 400},
		{name: "upload without file", method: http.MethodPost, path: "/upload", wantStatus: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			req, err := http.NewRequest(method, m.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := do(t, c, req)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %q", r.status, tt.wantStatus, r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, tt.wantType) {
				t.Errorf("Content-Type %q, want %q…", ct, tt.wantType)
			}
			if tt.wantExact && string(r.body) != tt.wantBody {
				t.Errorf("body %q, want %q", r.body, tt.wantBody)
			}
			if !bytes.Contains(r.body, []byte(tt.wantIn)) {
				t.Errorf("body %q lacks %q", r.body, tt.wantIn)
			}
			for k, v := range tt.wantHeader {
				if got := r.header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestSlowSleeps(t *testing.T) {
	m := monolithtest.Start(t, monolith.Options{Workers: 1})
	c := newClient(t, nil)
	start := time.Now()
	r := get(t, c, m.URL+"/slow?ms=300")
	// A lower bound only: PHP must really have waited.
	if took := time.Since(start); r.status != 200 || took < 300*time.Millisecond {
		t.Errorf("status %d after %v, want 200 after ≥ 300ms", r.status, took)
	}
}

func TestLoginSession(t *testing.T) {
	m := monolithtest.Start(t, monolith.Options{Workers: 2})
	postLogin := func(t *testing.T, c *http.Client, user, password string) response {
		req, err := http.NewRequest(http.MethodPost, m.URL+"/login", strings.NewReader(url.Values{"user": {user}, "password": {password}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return do(t, c, req)
	}

	tests := []struct {
		name, user, password string
		wantStatus           int
	}{
		{"good", "alice", "secret", 302},
		{"wrong password", "alice", "hunter2", 401},
		{"empty user", "", "secret", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jar, err := cookiejar.New(nil)
			if err != nil {
				t.Fatal(err)
			}
			c := newClient(t, jar)
			r := postLogin(t, c, tt.user, tt.password)
			if r.status != tt.wantStatus {
				t.Fatalf("POST /login: %d, want %d", r.status, tt.wantStatus)
			}
			acc := get(t, c, m.URL+"/account")
			if tt.wantStatus != 302 {
				if len(r.header.Values("Set-Cookie")) != 0 {
					t.Errorf("failed login set cookies: %q", r.header.Values("Set-Cookie"))
				}
				if acc.status != 302 {
					t.Errorf("GET /account after failed login: %d, want 302", acc.status)
				}
				return
			}
			if loc := r.header.Get("Location"); loc != "/account" {
				t.Errorf("Location %q, want /account", loc)
			}
			// Two separate Set-Cookie headers: the session and the extra cookie.
			names := map[string]bool{}
			for _, sc := range r.header.Values("Set-Cookie") {
				name, _, _ := strings.Cut(sc, "=")
				names[name] = true
			}
			if len(r.header.Values("Set-Cookie")) != 2 || !names["PHPSESSID"] || !names["last_user"] {
				t.Errorf("Set-Cookie %q, want PHPSESSID and last_user", r.header.Values("Set-Cookie"))
			}
			if acc.status != 200 || !bytes.Contains(acc.body, []byte(`<span id="user">`+tt.user+`</span>`)) {
				t.Errorf("GET /account: %d %q, want 200 naming %s", acc.status, acc.body, tt.user)
			}
		})
	}
}

func TestUpload(t *testing.T) {
	m := monolithtest.Start(t, monolith.Options{Workers: 1})
	c := newClient(t, nil)
	for _, size := range []int{0, 1, 3<<20 + 17} { // 3 MiB is over Nginx's default 1 MiB body limit
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			data := make([]byte, size)
			if _, err := rand.Read(data); err != nil {
				t.Fatal(err)
			}
			var body bytes.Buffer
			w := multipart.NewWriter(&body)
			fw, err := w.CreateFormFile("file", "data.bin")
			if err != nil {
				t.Fatal(err)
			}
			fw.Write(data)
			w.Close()
			req, err := http.NewRequest(http.MethodPost, m.URL+"/upload", &body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", w.FormDataContentType())
			r := do(t, c, req)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var got struct {
				Size   int    `json:"size"`
				SHA256 string `json:"sha256"`
			}
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatalf("%v: %s", err, r.body)
			}
			sum := sha256.Sum256(data)
			if got.Size != size || got.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("got %+v, want size %d sha256 %x", got, size, sum)
			}
		})
	}
}

// downloadBlock is the documented /download pattern (src/legacy.php): the raw
// SHA-256 digests of "strangler-download:0" … ":2047", concatenated.
func downloadBlock() []byte {
	b := make([]byte, 0, 64<<10)
	for i := range 2048 {
		d := sha256.Sum256([]byte("strangler-download:" + strconv.Itoa(i)))
		b = append(b, d[:]...)
	}
	return b
}

func TestDownload(t *testing.T) {
	m := monolithtest.Start(t, monolith.Options{Workers: 1, ProxyPass: true})
	c := newClient(t, nil)
	const mb = 8
	want := sha256.New()
	block := downloadBlock()
	for range mb * 16 {
		want.Write(block)
	}
	for _, base := range []string{m.URL, m.ProxyPassURL} {
		resp, err := c.Get(base + "/download/" + strconv.Itoa(mb))
		if err != nil {
			t.Fatal(err)
		}
		got := sha256.New()
		n, err := io.Copy(got, resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.ContentLength != mb<<20 || n != mb<<20 {
			t.Errorf("%s: status %d, Content-Length %d, read %d; want 200 and %d", base, resp.StatusCode, resp.ContentLength, n, mb<<20)
		}
		if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
			t.Errorf("%s: sha256 %x, want %x", base, got.Sum(nil), want.Sum(nil))
		}
	}
}

type echo struct {
	Method         string `json:"method"`
	RequestURI     string `json:"request_uri"`
	QueryString    string `json:"query_string"`
	ServerProtocol string `json:"server_protocol"`
	RemoteAddr     string `json:"remote_addr"`
	HTTPHost       string `json:"http_host"`
	Headers        []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"headers"`
	Cookie     *string           `json:"cookie"`
	Cookies    map[string]string `json:"cookies"`
	BodyLength int               `json:"body_length"`
	BodySHA256 string            `json:"body_sha256"`
}

func (e echo) header(name string) (string, bool) {
	for _, h := range e.Headers {
		if h.Name == name {
			return h.Value, true
		}
	}
	return "", false
}

func (e echo) names() []string {
	var n []string
	for _, h := range e.Headers {
		n = append(n, h.Name)
	}
	return n
}

func TestHeadersEcho(t *testing.T) {
	m := monolithtest.Start(t, monolith.Options{Workers: 1})
	c := newClient(t, nil)
	body := "hello=world"
	req, err := http.NewRequest(http.MethodPost, m.URL+"/headers?a=1&b=%2F", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "shop.example"
	req.Header.Set("X-Custom-Thing", "value 1")
	req.Header.Set("Cookie", "k=v; other=2")
	r := do(t, c, req)
	var e echo
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	sum := sha256.Sum256([]byte(body))
	if e.Method != "POST" || e.RequestURI != "/headers?a=1&b=%2F" || e.QueryString != "a=1&b=%2F" ||
		e.ServerProtocol != "HTTP/1.1" || e.RemoteAddr != "127.0.0.1" || e.HTTPHost != "shop.example" ||
		e.BodyLength != len(body) || e.BodySHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("echo %+v", e)
	}
	if v, ok := e.header("HTTP_X_CUSTOM_THING"); !ok || v != "value 1" {
		t.Errorf("HTTP_X_CUSTOM_THING = %q (present %v), want %q", v, ok, "value 1")
	}
	if e.Cookie == nil || *e.Cookie != "k=v; other=2" || e.Cookies["k"] != "v" || e.Cookies["other"] != "2" {
		t.Errorf("cookie %v, cookies %v", e.Cookie, e.Cookies)
	}
}

// rawRequest sends req as written (Go's client would merge repeated headers)
// and returns the decoded /headers echo.
func rawRequest(t *testing.T, baseURL, req string) echo {
	t.Helper()
	u, err := url.Parse(baseURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var e echo
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return e
}

// TestHeadersDuplicates pins down how Nginx 1.22 + PHP-FPM hand repeated
// request headers to PHP (documented in src/legacy.php), which the proxy's
// fidelity tests build on.
func TestHeadersDuplicates(t *testing.T) {
	m := monolithtest.Start(t, monolith.Options{Workers: 1})
	e := rawRequest(t, m.URL, "GET /headers HTTP/1.1\r\n"+
		"Host: dup.example\r\n"+
		"X-Dup: one\r\n"+
		"X-Other: o\r\n"+
		"X-Dup: two\r\n"+
		"Cookie: a=1; b=2\r\n"+
		"Cookie: c=3\r\n"+
		"X_Under: u\r\n"+
		"X-Empty:\r\n"+
		"Proxy: http://evil.example\r\n"+
		"Connection: close\r\n\r\n")

	if v, _ := e.header("HTTP_X_DUP"); v != "two" {
		t.Errorf("HTTP_X_DUP = %q, want the last line's %q", v, "two")
	}
	if e.Cookie == nil || *e.Cookie != "c=3" {
		t.Errorf("HTTP_COOKIE = %v, want the last line's c=3", e.Cookie)
	}
	if len(e.Cookies) != 1 || e.Cookies["c"] != "3" {
		t.Errorf("$_COOKIE = %v, want only c=3", e.Cookies)
	}
	if v, ok := e.header("HTTP_X_EMPTY"); !ok || v != "" {
		t.Errorf("HTTP_X_EMPTY = %q (present %v), want present and empty", v, ok)
	}
	for _, gone := range []string{"HTTP_X_UNDER", "HTTP_PROXY"} {
		if v, ok := e.header(gone); ok {
			t.Errorf("%s reached PHP: %q", gone, v)
		}
	}
	// Reverse order of the header lines, each name where its first line was.
	want := []string{"HTTP_CONNECTION", "HTTP_X_EMPTY", "HTTP_COOKIE", "HTTP_X_OTHER", "HTTP_X_DUP", "HTTP_HOST"}
	if got := e.names(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("HTTP_* order %v, want %v", got, want)
	}
}

func TestFixedNow(t *testing.T) {
	const fixed = "2030-01-02T03:04:05Z"
	fixedM := monolithtest.Start(t, monolith.Options{Workers: 1, Env: map[string]string{"STRANGLER_FIXED_NOW": fixed}})
	plainM := monolithtest.Start(t, monolith.Options{Workers: 1})
	// Headers that would become HTTP_X_STRANGLER_FIXED_NOW and
	// HTTP_STRANGLER_FIXED_NOW: neither may set the clock.
	const spoof = "1999-12-31T23:59:59Z"

	tests := []struct {
		name    string
		m       *monolith.Monolith
		wantNow func(time.Time) error
	}{
		{"env sets the clock", fixedM, func(got time.Time) error {
			if want, _ := time.Parse(time.RFC3339, fixed); !got.Equal(want) {
				return fmt.Errorf("now %v, want %v", got, want)
			}
			return nil
		}},
		{"header cannot set the clock", plainM, func(got time.Time) error {
			if d := time.Since(got); d < -time.Minute || d > time.Minute {
				return fmt.Errorf("now %v, want about %v", got, time.Now())
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, nil)
			req, err := http.NewRequest(http.MethodGet, tt.m.URL+"/debug/now", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Strangler-Fixed-Now", spoof)
			req.Header.Set("Strangler-Fixed-Now", spoof)
			r := do(t, c, req)
			var got struct {
				Now time.Time `json:"now"`
			}
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatalf("%v: %s", err, r.body)
			}
			if err := tt.wantNow(got.Now); err != nil {
				t.Error(err)
			}
		})
	}
}

// groupMembers lists the live processes in process group pgid, from /proc.
func groupMembers(t *testing.T, pgid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// Fields after the command name, which may hold spaces: state ppid pgrp …
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 3 || f[0] == "Z" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitGone polls until no live process is left in the groups.
func waitGone(t *testing.T, pgids ...int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left []int
		for _, g := range pgids {
			left = append(left, groupMembers(t, g)...)
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left behind: %v", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStopLeavesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := monolith.Start(ctx, monolith.Options{Workers: 3, ProxyPass: true})
	if err != nil {
		t.Fatal(err)
	}
	// The masters plus their workers (3 PHP children, ≥ 1 Nginx worker).
	if n, f := len(groupMembers(t, m.NginxPID)), len(groupMembers(t, m.FPMPID)); n < 2 || f < 4 {
		t.Errorf("nginx group has %d processes, php-fpm group %d; want ≥ 2 and ≥ 4", n, f)
	}
	if filepath.Dir(m.EventsFile) != m.Dir {
		t.Errorf("EventsFile %s not in the runtime dir %s", m.EventsFile, m.Dir)
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, m.NginxPID, m.FPMPID)
	if _, err := os.Stat(m.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("runtime dir %s still there: %v", m.Dir, err)
	}
	select {
	case <-m.Done():
	default:
		t.Error("Done not closed after Stop")
	}
	if err := m.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(m.URL, "http://"), time.Second); err == nil {
		t.Errorf("%s still accepts connections", m.URL)
	}
}

// TestMasterDies: when a master dies under the launcher, Done says so and
// Stop still takes down the orphaned workers of its group.
func TestMasterDies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := monolith.Start(ctx, monolith.Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(m.NginxPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after nginx died")
	}
	if err := m.Err(); err == nil || !strings.Contains(err.Error(), "nginx") {
		t.Errorf("Err() = %v, want it to name nginx", err)
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, m.NginxPID, m.FPMPID)
}

func TestTwoInstances(t *testing.T) {
	a := monolithtest.Start(t, monolith.Options{Workers: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := monolith.Start(ctx, monolith.Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if a.URL == b.URL || a.Dir == b.Dir {
		t.Fatalf("instances share %s / %s", a.URL, a.Dir)
	}
	c := newClient(t, nil)
	for _, m := range []*monolith.Monolith{a, b} {
		if r := get(t, c, m.URL+"/api/v1/ping"); r.status != 200 {
			t.Errorf("%s: %d", m.URL, r.status)
		}
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, b.NginxPID, b.FPMPID)
	if r := get(t, c, a.URL+"/api/v1/ping"); r.status != 200 {
		t.Errorf("first instance after stopping the second: %d", r.status)
	}
}

func TestFixedPortAndProxyPass(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	m := monolithtest.Start(t, monolith.Options{Port: port, Workers: 1, ProxyPass: true})
	if want := "http://127.0.0.1:" + strconv.Itoa(port); m.URL != want {
		t.Errorf("URL %s, want %s", m.URL, want)
	}
	if m.ProxyPassURL == "" || m.ProxyPassURL == m.URL {
		t.Fatalf("ProxyPassURL %q", m.ProxyPassURL)
	}
	c := newClient(t, nil)
	e := rawRequest(t, m.ProxyPassURL, "GET /headers HTTP/1.1\r\nHost: pp.example\r\nConnection: close\r\n\r\n")
	if e.HTTPHost != "pp.example" {
		t.Errorf("Host through proxy_pass %q, want pp.example", e.HTTPHost)
	}
	if v, _ := e.header("HTTP_X_FORWARDED_FOR"); v != "127.0.0.1" {
		t.Errorf("X-Forwarded-For %q, want 127.0.0.1", v)
	}
	// Upstream keepalive: HTTP/1.1 without "Connection: close".
	if v, ok := e.header("HTTP_CONNECTION"); ok {
		t.Errorf("Connection %q reached the upstream", v)
	}
	if r := get(t, c, m.ProxyPassURL+"/static/hello.txt"); r.status != 200 {
		t.Errorf("static through proxy_pass: %d", r.status)
	}
}

func TestPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := monolith.Start(ctx, monolith.Options{Port: l.Addr().(*net.TCPAddr).Port, Workers: 1})
	if err == nil {
		m.Stop()
		t.Fatal("Start on a taken port succeeded")
	}
	if !strings.Contains(strings.ToLower(err.Error()), "address already in use") {
		t.Errorf("error lacks the bind failure: %v", err)
	}
}

func TestStartRefuses(t *testing.T) {
	tests := []struct {
		name string
		give monolith.Options
	}{
		{"negative workers", monolith.Options{Workers: -1}},
		{"bad env name", monolith.Options{Env: map[string]string{"A-B": "x"}}},
		{"env value with quote", monolith.Options{Env: map[string]string{"A": `x"y`}}},
		{"root without the app", monolith.Options{Root: t.TempDir()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := monolith.Start(context.Background(), tt.give)
			if err == nil {
				m.Stop()
				t.Fatal("Start succeeded")
			}
		})
	}
}

// TestMissingRouteFile runs a copy of the app without src/events.php and
// src/campaigns.php: their routes answer 404, the legacy ones still work.
func TestMissingRouteFile(t *testing.T) {
	src := filepath.Join(repoRoot(t), "examples", "monolith")
	root := t.TempDir()
	for _, f := range []string{"public/index.php", "public/static/hello.txt", "src/legacy.php", "conf/nginx.conf.tmpl", "conf/php-fpm.conf.tmpl"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(root, "examples", "monolith", f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := monolithtest.Start(t, monolith.Options{Root: root, Workers: 1})
	c := newClient(t, nil)
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, "/api/v1/events", 404},
		{http.MethodGet, "/api/v1/campaigns/cmp_000042", 404},
		{http.MethodGet, "/api/v1/campaigns", 404},
		{http.MethodGet, "/api/v1/ping", 200},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, m.URL+tt.path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		r := do(t, c, req)
		if r.status != tt.want {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, r.status, tt.want)
		}
		if tt.want == 404 && !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: 404 as %q, want JSON", tt.method, tt.path, r.header.Get("Content-Type"))
		}
	}
}
