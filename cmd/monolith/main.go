// Command monolith runs the sample PHP monolith (Nginx + PHP-FPM) in the
// foreground, for `make run` and the container image (the tests and `make
// bench` start it through internal/monolith):
//
//	go run ./cmd/monolith -listen 127.0.0.1:8081 [-workers N] [-proxy-pass]
//	    [-events-file /abs/forwarded-events.jsonl] [-ship-brokers host:port -ship-topic events.legacy]
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
	"path/filepath"
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
	eventsFile := fs.String("events-file", "", "absolute path of the file the PHP intake appends forwarded events to (STRANGLER_EVENTS_FILE), created if missing and kept after exit (default: inside the runtime dir)")
	shipBrokers := fs.String("ship-brokers", "", "Kafka brokers host:port,... to publish the events file to, line by line, as a log shipper would (default: none)")
	shipTopic := fs.String("ship-topic", "events.legacy", "the topic -ship-brokers publishes to")
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

	if *eventsFile != "" {
		if !filepath.IsAbs(*eventsFile) {
			fmt.Fprintf(stderr, "monolith: -events-file %q must be absolute (PHP-FPM runs elsewhere)\n", *eventsFile)
			return 2
		}
		// Created now, so that a proxy naming it can read it before the
		// first event (strangler check refuses a file it cannot read).
		if err := touch(*eventsFile); err != nil {
			fmt.Fprintln(stderr, "monolith: -events-file:", err)
			return 1
		}
		env["STRANGLER_EVENTS_FILE"] = *eventsFile
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
	fmt.Fprintf(stdout, "monolith: forwarded events in %s\n", m.EventsFile)

	shipDone := make(chan error, 1)
	shipCtx, stopShip := context.WithCancel(ctx)
	if *shipBrokers != "" {
		sh, err := monolith.NewShipper(m.EventsFile, strings.Split(*shipBrokers, ","), *shipTopic)
		if err != nil {
			stopShip()
			fmt.Fprintln(stderr, "monolith:", err)
			_ = m.Stop()
			return 1
		}
		sh.OnError = func(err error) { fmt.Fprintln(stderr, "monolith: events shipper (retrying):", err) }
		fmt.Fprintf(stdout, "monolith: shipping %s to Kafka %s topic %s\n", m.EventsFile, *shipBrokers, *shipTopic)
		go func() { shipDone <- sh.Run(shipCtx) }()
	} else {
		shipDone <- nil
	}

	code := 0
	select {
	case <-ctx.Done():
	case <-m.Done():
		fmt.Fprintf(stderr, "monolith: %v unexpectedly\n%s", m.Err(), m.LogTail())
		code = 1
	}
	stopShip()
	if err := <-shipDone; err != nil {
		fmt.Fprintln(stderr, "monolith: events shipper:", err)
		code = 1
	}
	if err := m.Stop(); err != nil {
		fmt.Fprintln(stderr, "monolith: stop:", err)
		code = 1
	}
	return code
}

// touch creates path (and its directory) if it does not exist.
func touch(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}
