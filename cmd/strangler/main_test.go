package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// fasthttp's own goroutines: the worker-pool and idle-connection
	// cleaners sleep between checks of their stop conditions, so they
	// outlive a stopped server or client by seconds; the default dialer's
	// address-cache cleaner and the Date-header clock are process-wide and
	// never stop.
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	)
}

// writeConfig writes body to a config.yaml in a fresh directory.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// minimal is the smallest valid config: the two required keys. check does
// no I/O, so the campaigns file need not exist.
const minimal = legacyOnly + "hotcache:\n  source: file://campaigns.json\n"

const legacyOnly = "legacy:\n  upstream: http://127.0.0.1:8081\n"

const goodConfig = `
listen: "127.0.0.1:18080"
admin_listen: "127.0.0.1:19901"
legacy:
  upstream: "http://127.0.0.1:8081"
hotcache:
  source: file://campaigns.json
routes:
  - {name: ping, methods: [GET], path: /api/v1/ping, mode: ported, handler: ping}
  - {name: home, path: /}
`

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		config string // "" means the repository's config.yaml
		code   int
		want   []string // substrings of stdout (ok) or stderr (problems)
	}{
		{"repository default", "", 0, []string{"ok: 5 routes (5 legacy)", "session files var/sessions (php)", "listen :8080", "admin 127.0.0.1:9901", "upstream http://127.0.0.1:8081",
			"delivery spool (no kafka.brokers: events stay in var/spool)", "hotcache file://examples/monolith/data/campaigns.json"}},
		{"good", goodConfig, 0, []string{"ok: 2 routes (1 legacy, 1 ported)"}},
		{"required keys only: all defaults", minimal, 0, []string{"ok: 0 routes", "listen :8080", "delivery spool (no kafka.brokers"}},
		{"empty file: the upstream and the campaign source are required", "\n", 1, []string{"legacy: upstream: missing", "hotcache.source: required"}},
		{"kill switch", minimal + "all_legacy: true\n", 0, []string{"all_legacy on"}},
		{"several backends", "hotcache:\n  source: file://c.json\nlegacy:\n  upstreams:\n    - http://10.0.0.1:80\n    - {url: \"https://10.0.0.2\", weight: 2}\n" +
			"  health: {path: /healthz-php, interval: 2s}\n  sticky_cookie: SRVID\n", 0,
			[]string{"upstream http://10.0.0.1:80, https://10.0.0.2 (weight 2)"}},
		{"both upstream forms", legacyOnly + "  upstreams: [http://10.0.0.1:80]\nhotcache:\n  source: file://c.json\n", 1, []string{"legacy: upstream and upstreams are both set"}},
		{"unknown health key", legacyOnly + "  health: {pth: /x}\nhotcache:\n  source: file://c.json\n", 1, []string{`unknown key "legacy.health.pth"`}},
		{"brokers", minimal + "kafka:\n  brokers: [k1:9092, k2:9092]\n", 0, []string{"delivery spool → kafka k1:9092,k2:9092 topic events.v1"}},
		{"brokers as a comma list", minimal + "kafka:\n  brokers: k1:9092,k2:9092\n", 0, []string{"kafka k1:9092,k2:9092 topic"}},
		{"direct delivery", minimal + "events:\n  delivery: direct\nkafka:\n  brokers: [k:9092]\n", 0, []string{"delivery direct → kafka k:9092"}},
		{"direct delivery needs brokers", minimal + "events:\n  delivery: direct\n", 1, []string{`events.delivery: "direct" needs kafka.brokers`}},
		{"diff topic needs brokers", minimal + "shadow:\n  diff_topic: shadow.diffs\n", 1, []string{`shadow.diff_topic: "shadow.diffs" needs kafka.brokers`}},
		{"unknown delivery", minimal + "events:\n  delivery: carrier-pigeon\n", 1, []string{`delivery "carrier-pigeon"`}},
		{"unknown kafka key", minimal + "kafka:\n  brokrs: [k:9092]\n", 1, []string{`unknown key "kafka.brokrs"`}},
		{"unknown nested kafka key", minimal + "kafka:\n  sasl:\n    mechanizm: PLAIN\n", 1, []string{`unknown key "kafka.sasl.mechanizm"`}},
		{"broker without port", minimal + "kafka:\n  brokers: [kafka]\n", 1, []string{`kafka.brokers: "kafka" has no port`}},
		{"spool segment too small", minimal + "spool:\n  segment_size: 1024\n", 1, []string{"spool.segment_size"}},
		{"spool duration without unit", minimal + "spool:\n  retry_backoff: 100\n", 1, []string{"spool.retry_backoff", "no unit"}},
		{"hot cache source scheme", legacyOnly + "hotcache:\n  source: ftp://x/y\n", 1, []string{`hotcache.source "ftp://x/y"`}},
		{"hot cache s3 half credentials", legacyOnly + "hotcache:\n  source: s3://b/k\n  s3:\n    access_key_id: a\n", 1, []string{"access_key_id and secret_access_key go together"}},
		{"unknown top-level key", "lissten: \":8080\"\n", 1, []string{`unknown key "lissten"`}},
		{"unknown nested key", "server:\n  read_timeot: 5s\n", 1, []string{`unknown key "server.read_timeot"`}},
		{"duration without unit", "server:\n  read_timeout: 30\n", 1, []string{"read_timeout", "no unit"}},
		{"bad listen", "listen: \"8080\"\n", 1, []string{"listen"}},
		{"bad log level", "log:\n  level: loud\n", 1, []string{`level "loud"`}},
		{"log buffer too small", "log:\n  buffer_bytes: 100\n", 1, []string{"buffer_bytes 100: want at least 65536"}},
		{"log flush interval too long", "log:\n  flush_interval: 1m\n", 1, []string{"flush_interval 1m0s"}},
		{"log flush interval too short", "log:\n  flush_interval: 500us\n", 1, []string{"flush_interval 500µs: want between 1ms and 10s"}},
		{"unknown handler", "routes:\n  - {name: ping, path: /api/v1/ping, mode: ported, handler: pong}\n", 1, []string{"pong"}},
		{"bad mode", "routes:\n  - {name: ping, path: /p, mode: sideways, handler: ping}\n", 1, []string{"sideways"}},
		{"broken yaml", "routes:\n  - {name: ping, methods: [GET\n", 1, []string{"yaml"}},
		{"session on redis", minimal + "session:\n  backend: redis\n  address: 127.0.0.1:6379\n  password: hunter2\n  serialize_handler: php_serialize\n" +
			"routes:\n  - {name: account, methods: [GET], path: /account, mode: ported, handler: account.get}\n", 0,
			[]string{"ok: 1 routes (1 ported)", "session redis 127.0.0.1:6379 prefix PHPREDIS_SESSION: (php_serialize)"}},
		{"session needs its store", minimal + "session:\n  backend: files\n", 1, []string{"session.save_path: required"}},
		{"session backend", minimal + "session:\n  backend: mysql\n", 1, []string{`session.backend "mysql"`}},
		{"unknown session key", minimal + "session:\n  adress: x:1\n", 1, []string{`unknown key "session.adress"`}},
		{"session serialize handler", minimal + "session:\n  serialize_handler: igbinary\n", 1, []string{`session.serialize_handler "igbinary"`}},
		{"session timeout without unit", minimal + "session:\n  timeout: 5\n", 1, []string{"session.timeout", "no unit"}},
		{"shadow with an unreadable events file", minimal + "routes:\n" +
			"  - {name: events, methods: [POST], path: /api/v1/events, mode: shadow, handler: events.ingest, shadow: {legacy_events_file: /nonexistent/forwarded-events.jsonl}}\n",
			1, []string{`routes[0] "events": shadow.legacy_events_file "/nonexistent/forwarded-events.jsonl" cannot be read`, "no such file"}},
		{"legacy mode does not read the events file", minimal + "routes:\n" +
			"  - {name: events, methods: [POST], path: /api/v1/events, mode: legacy, handler: events.ingest, shadow: {legacy_events_file: /nonexistent/forwarded-events.jsonl}}\n",
			0, []string{"ok: 1 routes"}},
		{"shadow events topic needs brokers", minimal + "routes:\n" +
			"  - {name: events, methods: [POST], path: /api/v1/events, mode: shadow, handler: events.ingest, shadow: {legacy_events_topic: {topic: events.legacy}}}\n",
			1, []string{"shadow.legacy_events_topic needs kafka.brokers"}},
		{"ported events and campaigns", minimal + "routes:\n" +
			"  - {name: events, methods: [POST], path: /api/v1/events, mode: ported, handler: events.ingest}\n" +
			"  - {name: campaign, methods: [GET], path: \"/api/v1/campaigns/{id}\", mode: ported, handler: campaigns.get}\n" +
			"  - {name: campaigns, methods: [GET], path: /api/v1/campaigns, mode: ported, handler: campaigns.list}\n",
			0, []string{"ok: 3 routes (3 ported)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join("..", "..", "config.yaml")
			if tt.config != "" {
				path = writeConfig(t, tt.config)
			}
			var stdout, stderr bytes.Buffer
			code := run([]string{"check", path}, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, &stdout, &stderr)
			}
			out := stdout.String()
			if tt.code != 0 {
				out = stderr.String()
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tt.code == 0 && strings.Count(strings.TrimSpace(out), "\n") != 0 {
				t.Errorf("want a one-line summary, got:\n%s", out)
			}
		})
	}
}

func TestCheckReportsEveryProblem(t *testing.T) {
	// One problem in each layer: keys, values, section rules (legacy's
	// upstream and the hot cache's source are missing too), routes.
	path := writeConfig(t, "lissten: x\nserver:\n  read_timeout: 30\n  max_conns_per_ip: -2\nlog:\n  level: loud\n"+
		"routes:\n  - {name: a, path: /a, mode: ported, handler: nope}\n")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", path}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, w := range []string{`unknown key "lissten"`, "server.read_timeout: duration 30 has no unit", "server.max_conns_per_ip: -2 is negative",
		`log: level "loud"`, "legacy: upstream: missing", "hotcache.source: required", `handler "nope" is not registered`, ": 7 problem(s)"} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, &stderr)
		}
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout should be empty on failure: %s", &stdout)
	}
}

func TestRoutesCommand(t *testing.T) {
	path := writeConfig(t, goodConfig)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"routes", "-config", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, &stderr)
	}
	for _, w := range []string{"NAME", "ping", "/api/v1/ping", "ported", "home"} {
		if !strings.Contains(stdout.String(), w) {
			t.Errorf("table lacks %q:\n%s", w, &stdout)
		}
	}
}

// The command line: strangler alone prints the usage; each command's -h
// prints its flags; exit codes are 0 ok, 1 a finding, 2 a usage or run
// error.
func TestCommandLine(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string // in stdout
		stderr   string // in stderr
		noStdout bool
	}{
		{"no command: the usage", nil, 2, "", "usage: strangler COMMAND", true},
		{"flags but no command", []string{"-config", "x.yaml"}, 2, "", `unknown command "-config"`, true},
		{"help", []string{"help"}, 0, "strangler COMMAND -h", "", false},
		{"-h", []string{"-h"}, 0, "Exit codes: 0 ok; 1 a finding", "", false},
		{"version", []string{"version"}, 0, "strangler ", "", false},
		{"run -h", []string{"run", "-h"}, 0, "usage: strangler run [-config FILE]", "", false},
		{"run -h lists its flags", []string{"run", "-h"}, 0, "-config string", "", false},
		{"check -h", []string{"check", "-h"}, 0, "-against string", "", false},
		{"routes -help", []string{"routes", "-help"}, 0, "usage: strangler routes", "", false},
		{"spool -h", []string{"spool", "-h"}, 0, "usage: strangler spool", "", false},
		{"compare -h", []string{"compare", "-h"}, 0, "-target-mismatch-rate float", "", false},
		{"version -h", []string{"version", "-h"}, 0, "usage: strangler version", "", false},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`, true},
		{"bad flag", []string{"run", "-nope"}, 2, "", "flag provided but not defined: -nope", true},
		{"bad flag shows the command's usage", []string{"routes", "-nope"}, 2, "", "usage: strangler routes", true},
		{"stray argument", []string{"routes", "extra"}, 2, "", "unexpected arguments", true},
		{"run with a missing config", []string{"run", "-config", "/nonexistent/config.yaml"}, 2, "", "start failed", true},
		{"check a missing file", []string{"check", "/nonexistent/config.yaml"}, 2, "", "no such file", true},
		{"routes of a bad config", []string{"routes", "-config", "/nonexistent/config.yaml"}, 2, "", "no such file", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, &stdout, &stderr)
			}
			if !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stdout %q, stderr %q; want %q and %q in them", &stdout, &stderr, tt.stdout, tt.stderr)
			}
			if tt.noStdout && stdout.Len() > 0 {
				t.Errorf("stdout %q, want nothing", &stdout)
			}
		})
	}
}

func TestRunFailsToStartOnATakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	path := writeConfig(t, fmt.Sprintf("listen: %q\nadmin_listen: %q\nspool:\n  dir: %q\n", taken.Addr(), freeAddr(t), t.TempDir())+minimal)
	var logs bytes.Buffer
	if code := run([]string{"run", "-config", path}, io.Discard, &logs); code != 2 {
		t.Fatalf("exit %d, want 2: %s", code, &logs)
	}
	if n := strings.Count(logs.String(), `"level":"error"`); n != 1 || !strings.Contains(logs.String(), "start failed") ||
		!strings.Contains(logs.String(), "address already in use") {
		t.Errorf("want exactly one error line saying start failed on the taken port:\n%s", &logs)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// syncBuffer is a bytes.Buffer safe to read while serve writes logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunServesFlipsAndStops runs the whole wiring in-process against a
// stand-in monolith: a legacy route, a live flip to Go through the
// watcher, the admin endpoints, then SIGTERM and a clean exit.
func TestRunServesFlipsAndStops(t *testing.T) {
	php := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"status":"ok","implementation":"php"}`)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	phpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = php.Serve(phpLn) }()
	defer php.Close()

	listen, admin := freeAddr(t), freeAddr(t)
	campaigns, err := filepath.Abs(filepath.Join("..", "..", "examples", "monolith", "data", "campaigns.json"))
	if err != nil {
		t.Fatal(err)
	}
	spoolDir := t.TempDir()
	config := func(mode string) string {
		return fmt.Sprintf("listen: %q\nadmin_listen: %q\nlegacy:\n  upstream: %q\n  trusted_proxies: [127.0.0.1]\n"+
			"spool:\n  dir: %q\nhotcache:\n  source: %q\nroutes:\n"+
			"  - {name: ping, methods: [GET], path: /api/v1/ping, mode: %s, handler: ping}\n"+
			"  - {name: ping-canary, methods: [GET], path: /canary/ping, mode: canary, handler: ping, canary: {percent: 50}}\n",
			listen, admin, "http://"+phpLn.Addr().String(), spoolDir, "file://"+campaigns, mode)
	}
	path := writeConfig(t, config("legacy"))
	logs := &syncBuffer{}
	exit := make(chan int, 1)
	go func() { exit <- run([]string{"run", "-config", path}, io.Discard, logs) }()

	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	getBody := func(url string) (int, string) {
		resp, err := c.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: timed out\n%s", what, logs)
			}
		}
	}
	waitFor("healthz", func() bool { code, _ := getBody("http://" + admin + "/healthz"); return code == 200 })

	if code, body := getBody("http://" + listen + "/api/v1/ping"); code != 200 || !strings.Contains(body, "php") {
		t.Errorf("legacy ping: %d %s", code, body)
	}
	// The hot cache loads right after the start.
	waitFor("readyz", func() bool { code, _ := getBody("http://" + admin + "/readyz"); return code == 200 })
	if _, body := getBody("http://" + admin + "/readyz"); !strings.Contains(body, `"legacy"`) ||
		!strings.Contains(body, `"hotcache"`) || !strings.Contains(body, `"spool"`) {
		t.Errorf("readyz lacks a check: %s", body)
	}
	// Behind a trusted load balancer, sticky: ip splits the clients its
	// X-Forwarded-For names, not the balancer (here every request's peer).
	sides := map[string]int{}
	for i := range 40 {
		req, _ := http.NewRequest(http.MethodGet, "http://"+listen+"/canary/ping", nil)
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		sides[string(b)]++
	}
	if len(sides) != 2 {
		t.Errorf("a 50 %% canary split 40 clients behind one trusted proxy as %v, want both sides", sides)
	}
	resp, err := c.Post("http://"+admin+"/admin/hotcache/refresh", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"result":"not_modified"`) {
		t.Errorf("hot-cache refresh: %d %s", resp.StatusCode, b)
	}
	if err := os.WriteFile(path+".tmp", []byte(config("ported")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	waitFor("flip to Go", func() bool {
		_, body := getBody("http://" + listen + "/api/v1/ping")
		return body == `{"status":"ok","implementation":"go"}`
	})
	if _, body := getBody("http://" + admin + "/routes"); !strings.Contains(body, `"effective_mode": "ported"`) {
		t.Errorf("/routes after the flip: %s", body)
	}
	if _, body := getBody("http://" + admin + "/metrics"); !strings.Contains(body, `strangler_requests_total{backend="ported",mode="ported",route="ping",status="200"}`) {
		t.Errorf("/metrics lacks the ported ping counter")
	}
	c.CloseIdleConnections()

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit %d after SIGTERM, want 0\n%s", code, logs)
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("no exit after SIGTERM\n%s", logs)
	}
	if _, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
		t.Error("still listening after exit")
	}
	if !strings.Contains(logs.String(), `"msg":"request"`) {
		t.Errorf("no access line in the logs")
	}
}
