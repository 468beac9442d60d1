// Command benchrun is `make bench`: reproducible load runs with wrk against
// the sample monolith directly, through Nginx as a proxy_pass reverse proxy,
// and through Strangler, interleaved round by round so that the machine's
// noise (shared cores, CPU steal) hits every contender alike. It reports the
// median of each figure and the ratios against each group's baseline, plus
// CPU time per request read from /proc, which stays stable when wall-clock
// throughput does not.
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
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/strangler-proxy/strangler/internal/monolith"
)

// contender is one URL under load, with the processes whose CPU it costs.
type contender struct {
	Group     string // contenders of a group are compared with each other
	Name      string
	Baseline  bool // ratios in the group are against this one
	URL       string
	Method    string
	Body      string
	Headers   map[string]string
	Procs     func() []int // the serving processes (whole trees)
	Strangler bool         // also report Strangler's own CPU per request
}

type sample struct {
	wrk      wrkResult
	stackCPU time.Duration // all serving processes
	proxyCPU time.Duration // Strangler alone
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchrun", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "bench/results.md", "markdown report to write")
	rounds := fs.Int("rounds", 5, "rounds; each round runs every contender once, in rotating order")
	dur := fs.Duration("duration", 5*time.Second, "wrk duration per contender per round")
	conns := fs.Int("connections", 32, "wrk connections")
	threads := fs.Int("threads", 2, "wrk threads")
	workers := fs.Int("php-workers", 8, "PHP-FPM children")
	groups := fs.String("groups", "static,php", "comma-separated groups to run (static, php, ping, campaigns, events, shadow)")
	bin := fs.String("strangler", "bin/strangler", "path to the strangler binary")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tmp, err := os.MkdirTemp("", "strangler-bench-")
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)

	mono, err := monolith.Start(ctx, monolith.Options{Workers: *workers, ProxyPass: true})
	if err != nil {
		fmt.Fprintln(stderr, "start monolith:", err)
		return 1
	}
	defer mono.Stop()

	campaigns, err := filepath.Abs("examples/monolith/data/campaigns.json")
	if err == nil {
		_, err = os.Stat(campaigns)
	}
	if err != nil {
		fmt.Fprintln(stderr, "run from the repository root (make bench):", err)
		return 1
	}
	px, err := startStrangler(ctx, *bin, tmp, mono.URL, campaigns)
	if err != nil {
		fmt.Fprintln(stderr, "start strangler:", err)
		return 1
	}
	defer px.stop()

	all := contenders(mono, px)
	want := map[string]bool{}
	for _, g := range strings.Split(*groups, ",") {
		want[strings.TrimSpace(g)] = true
	}
	var cs []contender
	for _, c := range all {
		if want[c.Group] {
			cs = append(cs, c)
		}
	}
	if len(cs) == 0 {
		fmt.Fprintln(stderr, "no contenders selected")
		return 2
	}

	// Warm up every contender once (connection pools, PHP opcache).
	for _, c := range cs {
		if _, err := runWrk(ctx, c, time.Second, *threads, *conns, tmp); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}

	results := map[string][]sample{}
	for r := 0; r < *rounds; r++ {
		for i := range cs {
			c := cs[(i+r)%len(cs)] // rotate the order every round
			before, pBefore := treeCPU(c.Procs()), time.Duration(0)
			if c.Strangler {
				pBefore = treeCPU([]int{px.pid()})
			}
			w, err := runWrk(ctx, c, *dur, *threads, *conns, tmp)
			if err != nil {
				fmt.Fprintln(stderr, err)
				return 1
			}
			s := sample{wrk: w, stackCPU: treeCPU(c.Procs()) - before}
			if c.Strangler {
				s.proxyCPU = treeCPU([]int{px.pid()}) - pBefore
			}
			key := c.Group + "/" + c.Name
			results[key] = append(results[key], s)
			fmt.Fprintf(stderr, "round %d %-28s %9.0f req/s p99 %-8v errors %d\n", r+1, key, w.ReqPerSec, w.P99, w.Errors)
		}
	}

	report := render(cs, results, *rounds, *dur, *conns, *threads, *workers)
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprint(stdout, report)
	return 0
}

// strangler is the proxy under test, run as the real binary.
type strangler struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}
}

func (s *strangler) pid() int { return s.cmd.Process.Pid }

func (s *strangler) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func startStrangler(ctx context.Context, bin, tmp, upstream, campaigns string) (*strangler, error) {
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(tmp, "config.yaml")
	if err := os.WriteFile(cfg, []byte(benchConfig(listen, admin, upstream, tmp, campaigns)), 0o644); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(tmp, "strangler.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "-config", cfg)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w (run `make build` first)", bin, err)
	}
	s := &strangler{cmd: cmd, url: "http://" + listen, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + admin + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		select {
		case <-s.done:
			b, _ := os.ReadFile(log.Name())
			return nil, fmt.Errorf("strangler exited: %s", b)
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	s.stop()
	return nil, fmt.Errorf("strangler not healthy within 20s")
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
