// Package monolith starts the sample PHP monolith (examples/monolith) on a
// real Nginx + PHP-FPM, for the tests, the demo (`make run`) and the
// benchmarks. Each instance lives in its own temp runtime dir with its own
// ports, so several can run at once, and Stop leaves nothing behind.
package monolith

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure Start. The zero value starts one instance on a free
// loopback port with 4 PHP workers.
type Options struct {
	// Port is Nginx's listen port. Zero picks a free port.
	Port int
	// Host is the listen address. Empty means 127.0.0.1; use 0.0.0.0 in a
	// container. URL always names an address a local client can dial.
	Host string
	// Workers is the number of PHP-FPM children (pm = static). Zero means 4.
	Workers int
	// NginxWorkers is Nginx's worker_processes. Zero means "auto" (one per
	// CPU); the benchmarks pin the servers to one CPU and use 1.
	NginxWorkers int
	// Env is extra environment for the PHP pool; it overrides the defaults of
	// STRANGLER_CAMPAIGNS_FILE (the shipped examples/monolith/data/campaigns.json)
	// and STRANGLER_EVENTS_FILE (<Dir>/forwarded-events.jsonl). Keys are
	// shell-style names; values may not contain '"', "${", NUL or newlines
	// (they are written into php-fpm.conf).
	Env map[string]string
	// WebSocket is the host:port of a websocket service that Nginx proxies
	// /ws/ to, passing the upgrade through, as a monolith's Nginx fronts its
	// websocket server (PHP-FPM cannot hold a connection open). Empty: none.
	WebSocket string
	// ProxyPass also starts a second Nginx server on a free port that
	// proxy_passes to the first, for "Nginx as a reverse proxy" benchmarks.
	ProxyPass bool
	// Root is the repository root holding examples/monolith. Empty means the
	// nearest directory holding go.mod, walking up from the working directory.
	Root string
	// Sessions is the pool's session.save_handler: "" or "files" (files
	// under <Dir>/sessions), "redis" (the phpredis extension) or
	// "memcached" (php-memcached).
	Sessions string
	// SessionAddr is host:port of the Redis or memcached PHP keeps
	// sessions in. Empty: Start runs its own (Debian's redis-server or
	// memcached, on a free port), and Stop stops it.
	SessionAddr string
	// SerializeHandler is session.serialize_handler: php_serialize, php or
	// php_binary. Empty: php, PHP's default.
	SerializeHandler string
	// SessionLocking turns on phpredis's session locking
	// (redis.session.locking_enabled, off by default in phpredis) for redis
	// sessions. Files sessions always lock (flock); php-memcached locks by
	// default.
	SessionLocking bool
	// SessionDir is where files sessions live, created if missing and kept
	// by Stop (so `make run` can point the proxy at it). Empty:
	// <Dir>/sessions, removed with the runtime dir.
	SessionDir string
}

// Session save handlers Options.Sessions names.
const (
	SessionsFiles     = "files"
	SessionsRedis     = "redis"
	SessionsMemcached = "memcached"
)

// Monolith is one running instance.
type Monolith struct {
	URL          string // http://127.0.0.1:port, Nginx in front of PHP-FPM
	ProxyPassURL string // the proxy_pass server; empty without Options.ProxyPass
	Dir          string // temp runtime dir (configs, sockets, logs); removed by Stop
	EventsFile   string // where the PHP event intake appends forwarded events
	// Sessions is the save handler in use (files, redis or memcached);
	// SessionSavePath is its session.save_path (the directory for files);
	// SessionAddr the Redis or memcached server for the others.
	Sessions        string
	SessionSavePath string
	SessionAddr     string
	// SessionServer is the Redis or memcached Start ran itself; nil when
	// Options.SessionAddr named one or sessions are files.
	SessionServer *KV
	NginxPID      int // Nginx master; its workers are in its process group
	FPMPID        int // PHP-FPM master; its children are in its process group

	nginx, fpm *proc
	done       chan struct{} // closed once either master has exited
	exitErr    error         // set before done is closed
	stopOnce   sync.Once
	stopErr    error
}

const (
	defaultWorkers = 4
	// defaultStartWait bounds the wait for the first 200 when ctx has no
	// deadline; a cold PHP-FPM answers in well under a second.
	defaultStartWait = 30 * time.Second
	// stopGrace is how long each master gets to shut down before SIGKILL.
	stopGrace = 5 * time.Second
	// bindRetries covers the race between picking a free port and Nginx
	// binding it (another process may take it in between).
	bindRetries = 3
)

// ErrNotInstalled is wrapped by Start's error when nginx or php-fpm is missing.
var ErrNotInstalled = errors.New("nginx or php-fpm not installed")

// Start renders the configs into a fresh runtime dir, starts PHP-FPM and
// Nginx in their own process groups and returns once GET /healthz-php
// answers 200 through Nginx. ctx bounds the startup only; the processes run
// until Stop.
func Start(ctx context.Context, o Options) (*Monolith, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartWait)
		defer cancel()
	}
	if o.Workers == 0 {
		o.Workers = defaultWorkers
	}
	if o.Workers < 0 {
		return nil, fmt.Errorf("monolith: workers %d < 0", o.Workers)
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if err := validateEnv(o.Env); err != nil {
		return nil, err
	}
	if err := validateSessions(&o); err != nil {
		return nil, err
	}
	root := o.Root
	if root == "" {
		var err error
		if root, err = findRoot(); err != nil {
			return nil, err
		}
	}
	// PHP-FPM runs in another working directory: every path it gets must be
	// absolute.
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("monolith: %w", err)
	}
	public := filepath.Join(root, "examples", "monolith", "public")
	if _, err := os.Stat(filepath.Join(public, "index.php")); err != nil {
		return nil, fmt.Errorf("monolith: no sample app under %s: %w", root, err)
	}
	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		m, err := start(ctx, o, root, bins)
		if err == nil {
			return m, nil
		}
		var bind *bindError
		if o.Port != 0 || !errors.As(err, &bind) || attempt == bindRetries {
			return nil, err
		}
	}
}

// bindError marks a start that lost the race for its port.
type bindError struct{ err error }

func (e *bindError) Error() string { return e.err.Error() }
func (e *bindError) Unwrap() error { return e.err }

func start(ctx context.Context, o Options, root string, bins binaries) (_ *Monolith, err error) {
	dir, err := os.MkdirTemp("", "monolith-")
	if err != nil {
		return nil, fmt.Errorf("monolith: runtime dir: %w", err)
	}
	m := &Monolith{Dir: dir, done: make(chan struct{})}
	defer func() {
		if err != nil {
			m.abort()
		}
	}()
	// sun_path holds 108 bytes; a long TMPDIR would make bind() fail with a
	// less obvious message.
	if sock := filepath.Join(dir, "php-fpm.sock"); len(sock) > 100 {
		return nil, fmt.Errorf("monolith: socket path %s too long for a unix socket; set a shorter TMPDIR", sock)
	}

	port := o.Port
	if port == 0 {
		if port, err = freePort(o.Host); err != nil {
			return nil, err
		}
	} else if err := checkFree(o.Host, port); err != nil {
		// Nginx would retry bind() for 2.5 s before saying the same.
		return nil, err
	}
	dial := dialHost(o.Host)
	m.URL = "http://" + net.JoinHostPort(dial, strconv.Itoa(port))

	c := conf{
		Dir:          dir,
		Public:       filepath.Join(root, "examples", "monolith", "public"),
		Socket:       filepath.Join(dir, "php-fpm.sock"),
		Listen:       net.JoinHostPort(o.Host, strconv.Itoa(port)),
		Upstream:     net.JoinHostPort(dial, strconv.Itoa(port)),
		AsRoot:       os.Geteuid() == 0,
		NginxWorkers: nginxWorkers(o.NginxWorkers),
		Workers:      o.Workers,
		WebSocket:    o.WebSocket,
		Env: map[string]string{
			"STRANGLER_CAMPAIGNS_FILE": filepath.Join(root, "examples", "monolith", "data", "campaigns.json"),
			"STRANGLER_EVENTS_FILE":    filepath.Join(dir, "forwarded-events.jsonl"),
		},
	}
	for k, v := range o.Env {
		c.Env[k] = v
	}
	m.EventsFile = c.Env["STRANGLER_EVENTS_FILE"]
	if err := m.sessionStore(ctx, o, bins, &c); err != nil {
		return nil, err
	}
	if o.ProxyPass {
		pp, err := freePort(o.Host)
		if err != nil {
			return nil, err
		}
		c.ProxyListen = net.JoinHostPort(o.Host, strconv.Itoa(pp))
		m.ProxyPassURL = "http://" + net.JoinHostPort(dial, strconv.Itoa(pp))
	}
	if err := c.write(filepath.Join(root, "examples", "monolith", "conf")); err != nil {
		return nil, err
	}

	fpmArgs := []string{"-F", "-y", filepath.Join(dir, "php-fpm.conf"), "-p", dir}
	if c.AsRoot {
		fpmArgs = append(fpmArgs, "-R")
	}
	if m.fpm, err = startProc("php-fpm", bins.fpm, fpmArgs, filepath.Join(dir, "php-fpm.out")); err != nil {
		return nil, err
	}
	m.FPMPID = m.fpm.pid()
	// Nginx before the socket would answer the first probes with 502 and
	// fill its error log with connect() failures.
	if err := waitSocket(ctx, c.Socket, m.fpm.exited); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, m.LogTail())
	}
	// -e: Nginx opens its compiled-in error log before reading the config;
	// point it here so a non-root user never touches /var/log/nginx.
	ngxArgs := []string{"-p", dir + "/", "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "nginx-error.log")}
	if m.nginx, err = startProc("nginx", bins.nginx, ngxArgs, filepath.Join(dir, "nginx.out")); err != nil {
		return nil, err
	}
	m.NginxPID = m.nginx.pid()
	go m.watch()

	if err := m.waitReady(ctx); err != nil {
		tail := m.LogTail()
		if strings.Contains(tail, "Address already in use") {
			err = &bindError{err}
		}
		return nil, fmt.Errorf("%w\n%s", err, tail)
	}
	return m, nil
}

func nginxWorkers(n int) string {
	if n <= 0 {
		return "auto"
	}
	return strconv.Itoa(n)
}

// waitSocket waits until PHP-FPM accepts connections on its socket.
func waitSocket(ctx context.Context, path string, exited <-chan struct{}) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			return conn.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("monolith: php-fpm socket %s: %w (last: %v)", path, ctx.Err(), err)
		case <-exited:
			return fmt.Errorf("monolith: php-fpm exited during startup")
		case <-tick.C:
		}
	}
}

// watch records the first master to exit, so Done can tell a caller that
// the monolith died under it. It returns once either master has exited,
// which Stop guarantees.
func (m *Monolith) watch() {
	select {
	case <-m.nginx.exited:
		m.exitErr = fmt.Errorf("nginx (pid %d) exited", m.NginxPID)
	case <-m.fpm.exited:
		m.exitErr = fmt.Errorf("php-fpm (pid %d) exited", m.FPMPID)
	}
	close(m.done)
}

// Done is closed once Nginx or PHP-FPM has exited, after Stop or not.
func (m *Monolith) Done() <-chan struct{} { return m.done }

// Err says which master exited first; nil until Done is closed.
func (m *Monolith) Err() error {
	select {
	case <-m.done:
		return m.exitErr
	default:
		return nil
	}
}

// waitReady polls /healthz-php until it answers 200, a master exits or ctx
// ends. The health route goes through Nginx and FastCGI into PHP, so 200
// means the whole chain works.
func (m *Monolith) waitReady(ctx context.Context) error {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		last = probe(ctx, client, m.URL+"/healthz-php")
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("monolith: not ready at %s: %w (last: %v)", m.URL, ctx.Err(), last)
		case <-m.done:
			return fmt.Errorf("monolith: %w during startup (last probe: %v)", m.exitErr, last)
		case <-tick.C:
		}
	}
}

func probe(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// Stop stops Nginx then PHP-FPM (SIGTERM to each process group, SIGKILL
// after a grace period) and removes the runtime dir. It is safe to call
// more than once; later calls return the first call's result.
func (m *Monolith) Stop() error {
	m.stopOnce.Do(func() { m.stopErr = m.abort() })
	return m.stopErr
}

// abort is Stop for a partly started instance too.
func (m *Monolith) abort() error {
	var errs []error
	// Nginx first, so no new request reaches a stopping PHP-FPM.
	for _, p := range []*proc{m.nginx, m.fpm} {
		if p != nil {
			errs = append(errs, p.stop(stopGrace))
		}
	}
	if m.nginx != nil && m.fpm != nil {
		<-m.done
	}
	// The session server last: PHP may use it until it stops.
	errs = append(errs, m.SessionServer.Stop())
	if err := os.RemoveAll(m.Dir); err != nil {
		errs = append(errs, fmt.Errorf("monolith: remove %s: %w", m.Dir, err))
	}
	return errors.Join(errs...)
}

// LogTail returns the last lines of every log in the runtime dir, for error
// messages and failed tests.
func (m *Monolith) LogTail() string {
	var b strings.Builder
	for _, name := range []string{"nginx-error.log", "nginx.out", "php-fpm.log", "php-fpm.out", "php-error.log"} {
		t := tailFile(filepath.Join(m.Dir, name), 4096)
		if t == "" {
			continue
		}
		fmt.Fprintf(&b, "--- %s (tail) ---\n%s\n", name, strings.TrimRight(t, "\n"))
	}
	if m.SessionServer != nil {
		b.WriteString(m.SessionServer.LogTail())
	}
	return b.String()
}

func tailFile(path string, limit int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(0, st.Size()-limit)
	buf := make([]byte, st.Size()-off)
	n, _ := f.ReadAt(buf, off)
	return string(buf[:n])
}

// freePort asks the kernel for a free port on host. Nginx binds it a moment
// later; Start retries when another process wins that race.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("monolith: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func checkFree(host string, port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("monolith: listen: %w", err)
	}
	return l.Close()
}

// dialHost is the address a local client uses to reach a server listening
// on host: the wildcard addresses are not dialable everywhere.
func dialHost(host string) string {
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if ip.To4() == nil {
			return "::1"
		}
		return "127.0.0.1"
	}
	return host
}
