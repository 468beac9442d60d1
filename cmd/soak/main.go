// Command soak is `make soak`: millions of mixed requests through the real
// strangler binary in front of the sample monolith (Nginx + PHP-FPM, with a
// websocket echo service behind the same Nginx) and a Kafka-protocol broker
// (franz-go's kfake, over TCP), sampling the proxy's RSS, Go heap,
// goroutines and open fds every few seconds into a CSV file, then one big
// upload and one big download through the proxy while its RSS is watched.
// It writes SOAK.md with the figures (issue 14's P4, P4b), the CSV and a
// PNG plot, and exits non-zero when a target is missed.
//
//	go run ./cmd/soak [-requests 2000000] [-big 1GiB] ...
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/strangler-proxy/strangler/internal/monolith"
	"github.com/strangler-proxy/strangler/internal/procstat"
	"github.com/strangler-proxy/strangler/internal/promtext"
)

type options struct {
	requests       int64
	workers        int
	every          time.Duration
	big            int64
	bin            string
	out, csv, plot string
	phpWorkers     int
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.Int64Var(&o.requests, "requests", 2_000_000, "mixed requests to send")
	fs.IntVar(&o.workers, "workers", 32, "concurrent clients")
	fs.DurationVar(&o.every, "sample", 2*time.Second, "how often to sample the proxy")
	big := fs.String("big", "1GiB", "size of the big upload and download (e.g. 1GiB, 64MiB; 0: skip)")
	fs.StringVar(&o.bin, "strangler", "bin/strangler", "the strangler binary")
	fs.StringVar(&o.out, "out", "SOAK.md", "report to write")
	fs.StringVar(&o.csv, "csv", "bench/soak.csv", "samples to write")
	fs.StringVar(&o.plot, "plot", "bench/soak.png", "plot to write")
	fs.IntVar(&o.phpWorkers, "php-workers", 8, "PHP-FPM children")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	if o.big, err = parseSize(*big); err != nil {
		fmt.Fprintln(stderr, "soak: -big:", err)
		return 2
	}
	res, err := soak(ctx, o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "soak:", err)
		return 1
	}
	if err := res.write(o); err != nil {
		fmt.Fprintln(stderr, "soak:", err)
		return 1
	}
	fmt.Fprintf(stdout, "soak: wrote %s, %s and %s\n", o.out, o.csv, o.plot)
	if misses := res.misses(); len(misses) > 0 {
		fmt.Fprintln(stderr, "soak: missed:", strings.Join(misses, "; "))
		return 1
	}
	return 0
}

// parseSize reads 1GiB, 64MiB, 512KiB or a byte count.
func parseSize(s string) (int64, error) {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"", 1}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil || v < 0 {
				return 0, fmt.Errorf("%q: want a size like 1GiB", s)
			}
			return v * u.mult, nil
		}
	}
	return 0, fmt.Errorf("%q: want a size like 1GiB", s)
}

func soak(ctx context.Context, o options, stderr io.Writer) (*result, error) {
	tmp, err := os.MkdirTemp("", "strangler-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	ws, err := startEcho()
	if err != nil {
		return nil, err
	}
	defer ws.Close()
	mono, err := monolith.Start(ctx, monolith.Options{Workers: o.phpWorkers, WebSocket: ws.Addr().String()})
	if err != nil {
		return nil, fmt.Errorf("start monolith: %w", err)
	}
	defer mono.Stop()
	kafka, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "events.v1"))
	if err != nil {
		return nil, fmt.Errorf("start kfake: %w", err)
	}
	defer kafka.Close()

	px, err := startProxy(ctx, o.bin, tmp, mono.URL, kafka.ListenAddrs()[0])
	if err != nil {
		return nil, err
	}
	defer px.stop()

	res := &result{start: time.Now(), opts: o, kinds: mix()}
	t := &tally{counts: make([]atomic.Int64, len(res.kinds)), fails: make([]atomic.Int64, len(res.kinds)), first: make([]string, len(res.kinds))}
	res.tally = t

	sctx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(o.every)
		defer tick.Stop()
		for {
			res.add(px.sample(t.done.Load()))
			fmt.Fprintf(stderr, "soak: %d/%d requests, rss %.1f MiB, heap %.1f MiB, %0.f goroutines, %.0f fds\n",
				t.done.Load(), o.requests, res.last().rss/(1<<20), res.last().heap/(1<<20), res.last().goroutines, res.last().fds)
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	drive(ctx, px.addr, o.requests, o.workers, res.kinds, t)
	time.Sleep(o.every) // one quiet sample: what the proxy holds once the load stops
	stopSampling()
	<-sampled
	res.add(px.sample(t.done.Load()))
	res.end = time.Now()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if m, err := promtext.Scrape(px.admin + "/metrics"); err == nil {
		res.forwarded = m["strangler_spool_forwarded_total"]
		res.dropped = m["strangler_log_lines_dropped_total"]
	}

	if o.big > 0 {
		fmt.Fprintf(stderr, "soak: %d MiB download through the proxy\n", o.big>>20)
		if res.download, err = px.watch(func() error { return bigDownload(px.addr, o.big) }); err != nil {
			return nil, fmt.Errorf("big download: %w", err)
		}
		fmt.Fprintf(stderr, "soak: %d MiB upload through the proxy\n", o.big>>20)
		if res.upload, err = px.watch(func() error { return bigUpload(px.addr, o.big) }); err != nil {
			return nil, fmt.Errorf("big upload: %w", err)
		}
	}
	return res, nil
}

// proxy is the strangler process under soak.
type proxy struct {
	cmd         *exec.Cmd
	addr, admin string
	done        chan struct{}
	log         string
}

func startProxy(ctx context.Context, bin, tmp, upstream, broker string) (*proxy, error) {
	listen, admin := freeAddr(), freeAddr()
	campaigns, err := filepath.Abs("examples/monolith/data/campaigns.json")
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`listen: %q
admin_listen: %q
log:
  level: info
legacy:
  upstream: %q
spool:
  dir: %q
kafka:
  brokers: [%q]
  topic: events.v1
hotcache:
  source: %q
routes:
  - {name: events, methods: [POST], path: /api/v1/events, mode: ported, handler: events.ingest}
  - {name: campaign, methods: [GET], path: "/api/v1/campaigns/{id}", mode: ported, handler: campaigns.get}
  - {name: campaigns, methods: [GET], path: /api/v1/campaigns, mode: shadow, handler: campaigns.list, shadow: {primary: legacy, sample_percent: 100}}
  - {name: ping, methods: [GET], path: /api/v1/ping, mode: legacy, handler: ping}
`, listen, admin, upstream, filepath.Join(tmp, "spool"), broker, "file://"+campaigns)
	path := filepath.Join(tmp, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	p := &proxy{addr: listen, admin: "http://" + admin, done: make(chan struct{}), log: filepath.Join(tmp, "strangler.err")}
	p.cmd = exec.Command(bin, "run", "-config", path)
	// The access log (one line per request) goes to a pipe drained here,
	// as a log shipper would read it; nothing of it is kept.
	logs, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w (run `make build` first)", bin, err)
	}
	errLines := &tailWriter{max: 8 << 10}
	go func() { _, _ = io.Copy(errLines, logs) }()
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	client := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if resp, err := client.Get(p.admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("strangler exited: %s", errLines)
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("strangler not ready in 30s: %s", errLines)
		}
	}
}

func (p *proxy) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// sample reads the proxy's memory, goroutines and fds.
func (p *proxy) sample(done int64) sample {
	s := sample{at: time.Now(), requests: done, rss: float64(procstat.RSS(p.cmd.Process.Pid))}
	if m, err := promtext.Scrape(p.admin + "/metrics"); err == nil {
		s.heap, s.goroutines, s.fds = m["go_memstats_heap_inuse_bytes"], m["go_goroutines"], m["process_open_fds"]
	}
	return s
}

// watch runs f while reading the proxy's RSS every 100ms: the growth is
// the peak over the RSS before.
func (p *proxy) watch(f func() error) (transfer, error) {
	before := procstat.RSS(p.cmd.Process.Pid)
	stop := make(chan struct{})
	peak := make(chan int64)
	go func() {
		m := before
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			m = max(m, procstat.RSS(p.cmd.Process.Pid))
			select {
			case <-stop:
				peak <- m
				return
			case <-t.C:
			}
		}
	}()
	start := time.Now()
	err := f()
	close(stop)
	tr := transfer{before: before, peak: <-peak, took: time.Since(start)}
	return tr, err
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err) // loopback without a free port: nothing here can work
	}
	defer l.Close()
	return l.Addr().String()
}

// tailWriter keeps the last max bytes written, for error messages.
type tailWriter struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if len(w.b) > w.max {
		w.b = w.b[len(w.b)-w.max:]
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}
