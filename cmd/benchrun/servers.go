package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// server is one proxy contender run as its own process, so its CPU and
// memory are its own: nginx proxy_pass, HAProxy, the bare fasthttp proxy, or
// a strangler instance.
type server struct {
	name  string
	cmd   *exec.Cmd
	url   string // http://host:port of its listener
	admin string // strangler's admin base URL; "" for the others
	log   string // where its stdout and stderr go
	done  chan struct{}
	drain chan struct{} // closed when the stdout pipe reader is done (pipe sinks only)
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM to the server's process group and waits, SIGKILL after
// 15 s. Its group is its own (Setpgid), so Nginx's workers go with it.
func (s *server) stop() {
	if s == nil {
		return
	}
	_ = syscall.Kill(-s.pid(), syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-s.pid(), syscall.SIGKILL)
		<-s.done
	}
	if s.drain != nil {
		<-s.drain
	}
}

// launcher starts servers, pinned to the servers' CPU when pin is set.
type launcher struct {
	tmp    string
	pinCPU int // -1: no pinning
}

// command is name args, under `taskset -c CPU` when pinning. A Go process
// started pinned sizes GOMAXPROCS to the one CPU it may use, as it would in
// a one-core container.
func (l launcher) command(bin string, args ...string) *exec.Cmd {
	if l.pinCPU >= 0 {
		return exec.Command("taskset", append([]string{"-c", fmt.Sprint(l.pinCPU), bin}, args...)...)
	}
	return exec.Command(bin, args...)
}

// start runs cmd with its output in a log file (or, with pipe, drained by
// this process as a log shipper would), in its own process group.
func (l launcher) start(name string, cmd *exec.Cmd, pipe bool) (*server, error) {
	s := &server{name: name, cmd: cmd, done: make(chan struct{}), log: filepath.Join(l.tmp, sanitize(name)+".log")}
	f, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd.Stderr = f
	var r io.ReadCloser
	if pipe {
		if r, err = cmd.StdoutPipe(); err != nil {
			return nil, err
		}
	} else {
		cmd.Stdout = f
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if pipe {
		s.drain = make(chan struct{})
		go func() {
			defer close(s.drain)
			_, _ = io.Copy(io.Discard, r)
		}()
	}
	go func() { _ = cmd.Wait(); close(s.done) }()
	return s, nil
}

// waitHTTP polls url until it answers (any status) or the server exits.
func (s *server) waitHTTP(ctx context.Context, url string, okOnly bool) error {
	deadline := time.Now().Add(30 * time.Second)
	// An https url is one of the harness's own certificates (edge.go).
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // see above
	defer tr.CloseIdleConnections()
	client := &http.Client{Timeout: 2 * time.Second, Transport: tr}
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if !okOnly || resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.done:
			b, _ := os.ReadFile(s.log)
			return fmt.Errorf("%s exited: %s", s.name, tail(string(b), 2000))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: no answer at %s within 30s", s.name, url)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// startNginxProxy runs a second Nginx, on its own master and one worker,
// that proxy_passes to upstream with a keepalive pool: what a team runs in
// front of the monolith today, measured apart from the upstream Nginx.
func (l launcher) startNginxProxy(ctx context.Context, upstream string) (*server, error) {
	return l.nginxProxy(ctx, "nginx proxy_pass", upstream, "", "")
}

// nginxProxy is startNginxProxy's Nginx, listening with TLS when cert and
// key are set (the TLS terminator strangler replaces, edge.go).
func (l launcher) nginxProxy(ctx context.Context, name, upstream, cert, key string) (*server, error) {
	bin, err := findBin("nginx")
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(l.tmp, sanitize(name))
	for _, d := range []string{"tmp/client_body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n"
	}
	listen := addr
	if cert != "" {
		listen = fmt.Sprintf("%s ssl;\n        ssl_certificate %s;\n        ssl_certificate_key %s;\n        ssl_protocols TLSv1.2 TLSv1.3", addr, cert, key)
	}
	conf := fmt.Sprintf(`%sdaemon off;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    server_tokens off;
    keepalive_requests 1000000;
    client_body_temp_path %[2]s/tmp/client_body;
    proxy_temp_path       %[2]s/tmp/proxy;
    fastcgi_temp_path     %[2]s/tmp/fastcgi;
    uwsgi_temp_path       %[2]s/tmp/uwsgi;
    scgi_temp_path        %[2]s/tmp/scgi;
    upstream monolith {
        server %[3]s;
        keepalive 128;
    }
    server {
        listen %[4]s;
        location / {
            proxy_pass http://monolith;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }
    }
}
`, user, dir, upstream, listen)
	cfg := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	cmd := l.command(bin, "-p", dir+"/", "-c", cfg, "-e", filepath.Join(dir, "error.log"))
	if cert == "" {
		return l.proxy(ctx, name, addr, cmd)
	}
	s, err := l.start(name, cmd, false)
	if err != nil {
		return nil, err
	}
	s.url = "https://" + addr
	return s, s.waitHTTP(ctx, s.url+"/healthz-php", true)
}

// startHAProxy runs Debian's HAProxy in the foreground with one thread,
// keep-alive both ways and X-Forwarded-For, as a production config would.
func (l launcher) startHAProxy(ctx context.Context, upstream string) (*server, error) {
	bin, err := findBin("haproxy")
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`global
    nbthread 1
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    option forwardfor
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend fe
    bind %s
    default_backend be
backend be
    http-reuse always
    server monolith %s
`, addr, upstream)
	cfg := filepath.Join(l.tmp, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	return l.proxy(ctx, "haproxy", addr, l.command(bin, "-db", "-f", cfg))
}

// helper builds cmd/benchrun/NAME into the run's directory and returns a
// free loopback address for it to listen on.
func (l launcher) helper(ctx context.Context, name string) (bin, addr string, err error) {
	bin = filepath.Join(l.tmp, name)
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/benchrun/"+name).CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("build %s: %w: %s", name, err, out)
	}
	addr, err = freeAddr()
	return bin, addr, err
}

// startBareProxy builds and runs cmd/benchrun/bareproxy.
func (l launcher) startBareProxy(ctx context.Context, upstream string) (*server, error) {
	bin, addr, err := l.helper(ctx, "bareproxy")
	if err != nil {
		return nil, err
	}
	return l.proxy(ctx, "bare fasthttp proxy", addr, l.command(bin, "-listen", addr, "-upstream", upstream))
}

// proxy starts a passthrough contender listening on addr and waits until the
// monolith's health route answers 200 through it.
func (l launcher) proxy(ctx context.Context, name, addr string, cmd *exec.Cmd) (*server, error) {
	s, err := l.start(name, cmd, false)
	if err != nil {
		return nil, err
	}
	s.url = "http://" + addr
	return s, s.waitHTTP(ctx, s.url+"/healthz-php", true)
}

// logSink is where a strangler instance's log lines go.
type logSink int

const (
	logOff  logSink = iota // log.level warn: no access lines
	logFile                // stdout redirected to a file
	logPipe                // stdout a pipe this process drains
)

// startStrangler runs the real binary with the bench config.
func (l launcher) startStrangler(ctx context.Context, name, bin, upstream, campaigns string, sink logSink) (*server, error) {
	level := "info"
	if sink == logOff {
		level = "warn"
	}
	return l.runStrangler(ctx, name, bin, sink == logPipe, func(listen, admin, dir string) string {
		return benchConfig(listen, admin, "http://"+upstream, dir, campaigns, level)
	})
}

// runStrangler runs the binary with the config conf writes for its
// addresses and directory, and waits until it is ready. Its URL is https
// when the config has a tls: section.
func (l launcher) runStrangler(ctx context.Context, name, bin string, pipe bool, conf func(listen, admin, dir string) string) (*server, error) {
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(l.tmp, sanitize(name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c := conf(listen, admin, dir)
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(c), 0o644); err != nil {
		return nil, err
	}
	s, err := l.start(name, l.command(bin, "run", "-config", cfg), pipe)
	if err != nil {
		return nil, fmt.Errorf("%w (run `make build` first)", err)
	}
	s.url, s.admin = "http://"+listen, "http://"+admin
	if strings.Contains(c, "\ntls:\n") {
		s.url = "https://" + listen
	}
	return s, s.waitHTTP(ctx, s.admin+"/readyz", true)
}

// findBin looks name up in PATH and in /usr/sbin, which a non-root PATH
// often lacks.
func findBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := "/usr/sbin/" + name
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	pkg := map[string]string{"nginx": "nginx-light", "haproxy": "haproxy", "wrk": "wrk", "taskset": "util-linux"}[name]
	return "", fmt.Errorf("%s not found: install the Debian package %s (`make deps-bench`)", name, pkg)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// firstLine reads the first line of a command's output, for versions.
func firstLine(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "?"
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	if sc.Scan() {
		return strings.TrimSpace(sc.Text())
	}
	return "?"
}

var errNoCPUs = errors.New("pinning needs 2 CPUs")
