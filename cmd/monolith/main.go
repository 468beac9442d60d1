// Command monolith runs the sample PHP monolith (Nginx + PHP-FPM) in the
// foreground, for `make run`, `make bench` and the container image:
//
//	go run ./cmd/monolith -listen 127.0.0.1:8081 [-workers N] [-proxy-pass]
//	    [-sessions files|redis|memcached] [-session-addr host:port] [-serialize-handler php_serialize]
//
// SIGINT or SIGTERM stops Nginx and PHP-FPM and removes the runtime dir.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/strangler-proxy/strangler/internal/monolith"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run serves until ctx ends (a signal, in main) or Nginx or PHP-FPM dies.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("monolith", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8081", "Nginx listen address (host:port; port 0 = any free port)")
	workers := fs.Int("workers", 4, "PHP-FPM children (pm = static)")
	proxyPass := fs.Bool("proxy-pass", false, "also start an Nginx proxy_pass server in front, on a free port")
	root := fs.String("root", "", "repository root holding examples/monolith (default: nearest go.mod upwards)")
	sessions := fs.String("sessions", "files", "PHP session.save_handler: files (under the runtime dir), redis (phpredis) or memcached (php-memcached)")
	sessionAddr := fs.String("session-addr", "", "host:port of the Redis or memcached for sessions (default: start one on a free port)")
	sessionDir := fs.String("session-dir", "", "directory for files sessions, kept after exit (default: inside the runtime dir)")
	serializeHandler := fs.String("serialize-handler", "php", "PHP session.serialize_handler: php_serialize, php or php_binary")
	startWait := fs.Duration("start-timeout", 60*time.Second, "how long to wait for the first healthy answer")
	env := map[string]string{}
	fs.Func("env", "extra PHP pool env `KEY=VALUE` (repeatable), e.g. STRANGLER_FIXED_NOW=2030-01-01T00:00:00Z", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return errors.New("want KEY=VALUE")
		}
		env[k] = v
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return 2
	}
	host, portStr, err := net.SplitHostPort(*listen)
	if err != nil {
		fmt.Fprintf(stderr, "monolith: -listen %q: %v\n", *listen, err)
		return 2
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		fmt.Fprintf(stderr, "monolith: -listen %q: bad port\n", *listen)
		return 2
	}

	startCtx, cancel := context.WithTimeout(ctx, *startWait)
	m, err := monolith.Start(startCtx, monolith.Options{
		Port: port, Host: host, Workers: *workers, Env: env, ProxyPass: *proxyPass, Root: *root,
		Sessions: *sessions, SessionAddr: *sessionAddr, SerializeHandler: *serializeHandler, SessionDir: *sessionDir,
	})
	cancel()
	if err != nil {
		fmt.Fprintln(stderr, "monolith:", err)
		return 1
	}
	fmt.Fprintf(stdout, "monolith: %s (nginx pid %d, php-fpm pid %d, runtime dir %s)\n", m.URL, m.NginxPID, m.FPMPID, m.Dir)
	if m.ProxyPassURL != "" {
		fmt.Fprintf(stdout, "monolith: nginx proxy_pass %s\n", m.ProxyPassURL)
	}
	fmt.Fprintf(stdout, "monolith: sessions %s at %s\n", m.Sessions, m.SessionSavePath)

	code := 0
	select {
	case <-ctx.Done():
	case <-m.Done():
		fmt.Fprintf(stderr, "monolith: %v unexpectedly\n%s", m.Err(), m.LogTail())
		code = 1
	}
	if err := m.Stop(); err != nil {
		fmt.Fprintln(stderr, "monolith: stop:", err)
		code = 1
	}
	return code
}
