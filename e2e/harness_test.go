// Package e2e tests the real strangler binary, started as a subprocess in
// front of a real Nginx + PHP-FPM running the sample monolith.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/internal/monolith"
	"github.com/strangler-proxy/strangler/internal/monolith/monolithtest"
)

// binary is the strangler built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	if b := os.Getenv("E2E_STRANGLER_BINARY"); b != "" {
		// Another build, for measurements (see kill9Load).
		binary = b
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "strangler-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "strangler")
	build := exec.Command("go", "build", "-race", "-o", binary, "github.com/strangler-proxy/strangler/cmd/strangler")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build strangler:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one running strangler.
type proc struct {
	t       testing.TB
	cmd     *exec.Cmd
	URL     string // the public listener
	Admin   string // http://admin
	Config  string // path of its config.yaml
	Dir     string
	logs    *syncBuffer
	done    chan struct{}
	exitErr error
}

// config is what the tests vary; render writes the YAML.
type config struct {
	Listen, Admin, Upstream string
	LegacyTimeout           time.Duration
	LegacyExtra             string // more YAML inside legacy:, indented by two spaces
	AllLegacy               bool
	Routes                  string // YAML list items, indented by two spaces
	SpoolDir                string
	SpoolExtra              string // more YAML inside spool:, indented by two spaces
	// HotCache is hotcache.source; "" means the shipped campaigns.json (by
	// absolute path: the binary runs in a temp dir).
	HotCache string
	// HotCacheExtra is more YAML inside hotcache:, indented by two spaces.
	HotCacheExtra string
	// Brokers are kafka.brokers; none means events stay in the spool.
	Brokers    []string
	KafkaExtra string // more YAML inside kafka: (with Brokers), indented by two spaces
	Extra      string // more top-level YAML
}

func (c config) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %q\nadmin_listen: %q\n", c.Listen, c.Admin)
	b.WriteString("log:\n  level: debug\n")
	fmt.Fprintf(&b, "legacy:\n  upstream: %q\n", c.Upstream)
	if c.LegacyTimeout > 0 {
		fmt.Fprintf(&b, "  timeout: %s\n", c.LegacyTimeout)
	}
	b.WriteString(c.LegacyExtra)
	if c.SpoolDir != "" {
		fmt.Fprintf(&b, "spool:\n  dir: %q\n%s", c.SpoolDir, c.SpoolExtra)
	}
	hc := c.HotCache
	if hc == "" {
		hc = "file://" + shippedCampaigns()
	}
	fmt.Fprintf(&b, "hotcache:\n  source: %q\n", hc)
	b.WriteString(c.HotCacheExtra)
	if len(c.Brokers) > 0 {
		fmt.Fprintf(&b, "kafka:\n  brokers: [%s]\n%s", strings.Join(c.Brokers, ", "), c.KafkaExtra)
	}
	fmt.Fprintf(&b, "all_legacy: %v\n", c.AllLegacy)
	b.WriteString("routes:")
	if strings.TrimSpace(c.Routes) == "" {
		b.WriteString(" []\n")
	} else {
		b.WriteString("\n" + c.Routes)
	}
	b.WriteString(c.Extra)
	return b.String()
}

// shippedCampaigns is the absolute path of the sample campaign data, the
// file PHP reads too.
func shippedCampaigns() string {
	p, err := filepath.Abs(filepath.Join("..", "examples", "monolith", "data", "campaigns.json"))
	if err != nil {
		panic(err) // the working directory is gone
	}
	return p
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startMonolith starts the sample monolith for one test.
func startMonolith(t testing.TB) *monolith.Monolith {
	return monolithtest.Start(t, monolith.Options{})
}

// start runs strangler with c (Listen/Admin filled in when empty) and waits
// until its admin /healthz answers.
func start(t testing.TB, c config) *proc {
	t.Helper()
	dir := t.TempDir()
	if c.Listen == "" {
		c.Listen = freeAddr(t)
	}
	if c.Admin == "" {
		c.Admin = freeAddr(t)
	}
	if c.SpoolDir == "" {
		c.SpoolDir = filepath.Join(dir, "spool")
	}
	p := &proc{t: t, URL: "http://" + c.Listen, Admin: "http://" + c.Admin, Config: filepath.Join(dir, "config.yaml"), Dir: dir, logs: &syncBuffer{}, done: make(chan struct{})}
	if err := os.WriteFile(p.Config, []byte(c.render()), 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(binary, "run", "-config", p.Config)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exitErr = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("strangler logs:\n%s", p.logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("strangler exited at start: %v\n%s", p.exitErr, p.logs.String())
		default:
		}
		resp, err := http.Get(p.Admin + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("strangler not healthy within 30s\n%s", p.logs.String())
	return nil
}

func (p *proc) signal(s os.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(s)
	}
}

// rewriteConfig replaces the config file the way an editor's save does
// (write a temp file, rename over), which is what most tools do.
func (p *proc) rewriteConfig(t testing.TB, content string) {
	t.Helper()
	tmp := p.Config + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p.Config); err != nil {
		t.Fatal(err)
	}
}

// waitExit waits for the process to exit and returns its exit code.
func (p *proc) waitExit(t testing.TB, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("strangler did not exit within %s\n%s", within, p.logs.String())
	}
	if p.exitErr == nil {
		return 0
	}
	if ee, ok := p.exitErr.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatal(p.exitErr)
	return -1
}

// client is an HTTP client with a bound on every call.
func client() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // redirects must reach the client untouched
		},
	}
}

func get(t testing.TB, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// dialRaw connects to addr (a URL or host:port), bounds the whole
// connection by deadline and sends request as is. The caller closes it.
func dialRaw(t testing.TB, addr, request string, deadline time.Duration) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(addr, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(deadline))
	if _, err := io.WriteString(conn, request); err != nil {
		conn.Close()
		t.Fatal(err)
	}
	return conn
}

// rawExchange sends raw bytes and returns the raw response, so tests can see
// exactly what crosses the wire (header case, order, duplicates).
func rawExchange(t testing.TB, addr string, request string) string {
	t.Helper()
	conn := dialRaw(t, addr, request, 30*time.Second)
	defer conn.Close()
	b, err := io.ReadAll(conn)
	if err != nil && !isTimeout(err) {
		t.Fatal(err)
	}
	return string(b)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

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
