package monolith

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// kvInstallHint is the fix for a missing session server or PHP extension.
const kvInstallHint = "install with `sudo apt-get install -y redis-server memcached php8.2-redis php8.2-memcached` (or `make deps`)"

// KV is a redis-server or memcached the launcher runs for PHP's sessions
// (or a test runs on its own), on a free loopback port, in its own process
// group like Nginx and PHP-FPM.
type KV struct {
	Kind string // "redis" or "memcached"
	Addr string // 127.0.0.1:port
	PID  int
	dir  string
	p    *proc
	log  string
}

// StartRedis runs Debian's redis-server on a free loopback port with
// nothing persisted, its files under dir. ctx bounds the start.
func StartRedis(ctx context.Context, dir string) (*KV, error) {
	return startKV(ctx, "redis", dir, func(port int) (string, []string, error) {
		bin := lookPath([]string{"redis-server", "/usr/bin/redis-server", "/usr/sbin/redis-server"})
		if bin == "" {
			return "", nil, fmt.Errorf("%w: redis-server not found; %s", ErrNotInstalled, kvInstallHint)
		}
		return bin, []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--daemonize", "no",
			"--save", "", "--appendonly", "no", "--dir", dir,
			"--logfile", filepath.Join(dir, "redis.log"), "--databases", "16",
		}, nil
	}, "PING\r\n", "+PONG")
}

// StartMemcached runs Debian's memcached on a free loopback port (TCP only,
// 64 MiB). ctx bounds the start.
func StartMemcached(ctx context.Context, dir string) (*KV, error) {
	return startKV(ctx, "memcached", dir, func(port int) (string, []string, error) {
		bin := lookPath([]string{"memcached", "/usr/bin/memcached", "/usr/sbin/memcached"})
		if bin == "" {
			return "", nil, fmt.Errorf("%w: memcached not found; %s", ErrNotInstalled, kvInstallHint)
		}
		args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "64", "-c", "1024"}
		if os.Geteuid() == 0 {
			args = append(args, "-u", "root") // memcached refuses to run as root otherwise
		}
		return bin, args, nil
	}, "version\r\n", "VERSION ")
}

func startKV(ctx context.Context, kind, dir string, cmd func(port int) (string, []string, error), probe, want string) (*KV, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartWait)
		defer cancel()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("monolith: %w", err)
	}
	var last error
	for range bindRetries {
		port, err := freePort("127.0.0.1")
		if err != nil {
			return nil, err
		}
		bin, args, err := cmd(port)
		if err != nil {
			return nil, err
		}
		k := &KV{Kind: kind, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, log: filepath.Join(dir, kind+".out")}
		if k.p, err = startProc(kind, bin, args, k.log); err != nil {
			return nil, err
		}
		k.PID = k.p.pid()
		if last = k.waitReady(ctx, probe, want); last == nil {
			return k, nil
		}
		_ = k.Stop()
		if ctx.Err() != nil {
			break
		}
	}
	return nil, last
}

// waitReady polls the server with probe until it answers with want.
func (k *KV) waitReady(ctx context.Context, probe, want string) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = k.ask(probe, want); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("monolith: %s at %s not ready: %w (last: %v)\n%s", k.Kind, k.Addr, ctx.Err(), last, k.LogTail())
		case <-k.p.exited:
			return fmt.Errorf("monolith: %s exited during startup\n%s", k.Kind, k.LogTail())
		case <-tick.C:
		}
	}
}

func (k *KV) ask(probe, want string) error {
	c, err := net.DialTimeout("tcp", k.Addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(probe)); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, want) {
		return fmt.Errorf("answer %q, want %q", strings.TrimSpace(line), want)
	}
	return nil
}

// Stop stops the server (SIGTERM, SIGKILL after a grace period). Safe to
// call more than once.
func (k *KV) Stop() error {
	if k == nil || k.p == nil {
		return nil
	}
	p := k.p
	k.p = nil
	return p.stop(stopGrace)
}

// LogTail is the end of the server's output, for failed tests.
func (k *KV) LogTail() string {
	var b strings.Builder
	for _, f := range []string{k.log, filepath.Join(k.dir, "redis.log")} {
		if t := tailFile(f, 2048); t != "" {
			fmt.Fprintf(&b, "--- %s (tail) ---\n%s\n", filepath.Base(f), strings.TrimRight(t, "\n"))
		}
	}
	return b.String()
}
