// Command benchrun is `make bench`: load runs with wrk against the sample
// monolith and the proxies in front of it, every server process pinned to
// one CPU and wrk to the other (taskset), the contenders interleaved round by
// round so that the machine's noise hits every one alike. It reports the
// median of each figure over the rounds, each process's CPU time per request
// from /proc (the proxy's, the upstream Nginx's, PHP-FPM's), the ratios
// against each group's baseline and the issue-14 targets, runs the Go
// micro-benchmarks, and rewrites the generated part of BENCHMARKS.md and its
// plot. `-short` checks the harness in about a minute.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/strangler-proxy/strangler/internal/monolith"

	"github.com/strangler-proxy/strangler/internal/procstat"
	"github.com/strangler-proxy/strangler/internal/promtext"
)

// contender is one URL under load, with the proxy process in its path.
type contender struct {
	Group    string // contenders of a group are compared with each other
	Name     string
	Baseline bool // ratios in the group are against this one
	URL      string
	Method   string
	Body     string
	Headers  map[string]string
	Proxy    *server // nil: the upstream Nginx is hit directly
	Conns    int     // wrk connections
	Spool    bool    // also read the spool's commit-latency histogram
	Drain    bool    // read the proxy's CPU once its spool has drained (kafka.go)
	Keys     int     // > 0: the body's user_id cycles through this many (kafka.go)
}

func (c contender) key() string { return c.Group + "/" + c.Name }

// sample is one contender's run in one round.
type sample struct {
	wrk                      wrkResult
	proxyCPU, nginxCPU, fpm  time.Duration
	proxyRSS                 int64         // after the run
	commits                  promtext.Hist // strangler_spool_commit_seconds observed during the run
	commitBatches            promtext.Hist // strangler_spool_commit_batch_events
	stealTicks, machineTicks int64
}

type options struct {
	out, plot, bin       string
	rounds               int
	dur, warmup          time.Duration
	staticConns, phpConn int
	threads, workers     int
	groups               map[string]bool
	pin                  bool
	serverCPU, loadCPU   int
	micro                bool
	short                bool
	pipe                 bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchrun", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.out, "out", "BENCHMARKS.md", "markdown file whose generated part is rewritten (created if missing)")
	fs.StringVar(&o.plot, "plot", "bench/benchmarks.png", "PNG plot to write")
	fs.StringVar(&o.bin, "strangler", "bin/strangler", "path to the strangler binary")
	fs.IntVar(&o.rounds, "rounds", 5, "rounds; each runs every contender once, in rotating order")
	fs.DurationVar(&o.dur, "duration", 5*time.Second, "wrk duration per contender per round")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "one warm-up run per contender before the rounds")
	fs.IntVar(&o.staticConns, "static-connections", 64, "wrk connections for the static-file group")
	fs.IntVar(&o.phpConn, "php-connections", 32, "wrk connections for the groups that reach PHP")
	fs.IntVar(&o.threads, "threads", 1, "wrk threads")
	fs.IntVar(&o.workers, "php-workers", 4, "PHP-FPM children")
	groups := fs.String("groups", "static,php,intake,lookups,shadow,backends,tls,kafka", "comma-separated groups to run (backends and tls: edge.go; kafka: kafka.go)")
	fs.BoolVar(&o.pin, "pin", true, "pin the servers to -server-cpu and wrk to -load-cpu")
	fs.IntVar(&o.serverCPU, "server-cpu", 0, "CPU for every server process")
	fs.IntVar(&o.loadCPU, "load-cpu", 1, "CPU for wrk (and this driver)")
	fs.BoolVar(&o.micro, "micro", true, "also run the Go micro-benchmarks (-benchmem) and report them")
	fs.BoolVar(&o.pipe, "pipe", true, "also run a strangler whose access log goes to a pipe")
	fs.BoolVar(&o.short, "short", false, "check the harness: 1 round of 1s, no micro-benchmarks, report to bench/short.md")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.short {
		o.rounds, o.dur, o.warmup, o.micro = 1, time.Second, time.Second, false
		if !flagSet(fs, "out") {
			o.out = "bench/short.md"
		}
		if !flagSet(fs, "plot") {
			o.plot = "bench/short.png"
		}
	}
	o.groups = map[string]bool{}
	for _, g := range strings.Split(*groups, ",") {
		o.groups[strings.TrimSpace(g)] = true
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench(ctx, o, stderr); err != nil {
		fmt.Fprintln(stderr, "benchrun:", err)
		return 1
	}
	fmt.Fprintf(stdout, "benchrun: wrote %s and %s\n", o.out, o.plot)
	return 0
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func bench(ctx context.Context, o options, stderr io.Writer) error {
	for _, b := range []string{"wrk", "nginx", "haproxy"} {
		if _, err := findBin(b); err != nil {
			return err
		}
	}
	campaigns, err := filepath.Abs("examples/monolith/data/campaigns.json")
	if err == nil {
		_, err = os.Stat(campaigns)
	}
	if err != nil {
		return fmt.Errorf("run from the repository root (make bench): %w", err)
	}
	env := environment{start: time.Now(), loadBefore: procstat.LoadAvg()}
	env.totalStart, env.stealStart = cpuSteal()
	l := launcher{pinCPU: -1}
	if o.pin {
		if _, err := findBin("taskset"); err != nil {
			return err
		}
		if runtime.NumCPU() < 2 {
			return fmt.Errorf("%w; this machine has %d (use -pin=false)", errNoCPUs, runtime.NumCPU())
		}
		l.pinCPU = o.serverCPU
		// The driver itself stays off the servers' CPU.
		if err := pinTree([]int{os.Getpid()}, o.loadCPU); err != nil {
			return err
		}
	}
	if l.tmp, err = os.MkdirTemp("", "strangler-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(l.tmp)

	mono, err := monolith.Start(ctx, monolith.Options{Workers: o.workers, NginxWorkers: 1})
	if err != nil {
		return fmt.Errorf("start monolith: %w", err)
	}
	defer mono.Stop()
	upstreamPIDs := []int{mono.NginxPID, mono.FPMPID}
	upstream := strings.TrimPrefix(mono.URL, "http://")
	pin := func() error {
		if o.pin {
			return pinTree(upstreamPIDs, o.serverCPU)
		}
		return nil
	}
	if err := pin(); err != nil {
		return err
	}

	var p proxies
	var servers []*server
	var edgeCs []contender // the edge groups' (edge.go)
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	add := func(s *server, err error) (*server, error) {
		if s != nil {
			servers = append(servers, s)
		}
		return s, err
	}
	if p.nginx, err = add(l.startNginxProxy(ctx, upstream)); err != nil {
		return err
	}
	if p.haproxy, err = add(l.startHAProxy(ctx, upstream)); err != nil {
		return err
	}
	if p.bare, err = add(l.startBareProxy(ctx, upstream)); err != nil {
		return err
	}
	if p.logOff, err = add(l.startStrangler(ctx, nameLogOff, o.bin, upstream, campaigns, logOff)); err != nil {
		return err
	}
	if p.logFile, err = add(l.startStrangler(ctx, nameLogFile, o.bin, upstream, campaigns, logFile)); err != nil {
		return err
	}
	if o.pipe {
		if p.logPipe, err = add(l.startStrangler(ctx, nameLogPipe, o.bin, upstream, campaigns, logPipe)); err != nil {
			return err
		}
	}
	if o.groups["backends"] || o.groups["tls"] {
		e, err := l.startEdge(ctx, o, mono, campaigns, o.staticConns)
		if err != nil {
			return err
		}
		defer e.stop()
		edgeCs = e.cs
		upstreamPIDs = append(upstreamPIDs, e.pids()...)
		if err := pin(); err != nil {
			return err
		}
	}
	var kafka *kafkaGroup
	if o.groups["kafka"] {
		if kafka, err = l.startKafkaGroup(ctx, o, upstream, campaigns); err != nil {
			return err
		}
		defer kafka.stop()
		edgeCs = append(edgeCs, kafka.cs...)
		upstreamPIDs = append(upstreamPIDs, kafka.pids()...)
		if err := pin(); err != nil {
			return err
		}
	}
	env.pinned = fmt.Sprintf("upstream nginx %s, php-fpm %s, %s %s",
		allowedCPUs(mono.NginxPID), allowedCPUs(mono.FPMPID), p.logFile.name, allowedCPUs(p.logFile.pid()))

	// P7: the shipped config.yaml, idle.
	env.idle, err = idleRSS(ctx, l, o.bin, upstream)
	if err != nil {
		return fmt.Errorf("idle RSS: %w", err)
	}

	var cs []contender
	for _, c := range append(contenders(mono, p, o.staticConns, o.phpConn), edgeCs...) {
		if o.groups[c.Group] {
			cs = append(cs, c)
		}
	}
	if len(cs) == 0 {
		return fmt.Errorf("no contenders selected")
	}
	wrkCPU := -1
	if o.pin {
		wrkCPU = o.loadCPU
	}
	for _, c := range cs {
		if _, err := runWrk(ctx, c, o.warmup, o.threads, wrkCPU, l.tmp); err != nil {
			return err
		}
	}

	results := map[string][]sample{}
	for r := 0; r < o.rounds; r++ {
		for i := range cs {
			c := cs[(i+r)%len(cs)] // rotate the order every round
			if err := pin(); err != nil {
				return err
			}
			s, err := measure(ctx, c, o, wrkCPU, l.tmp, mono)
			if err != nil {
				return err
			}
			results[c.key()] = append(results[c.key()], s)
			fmt.Fprintf(stderr, "round %d/%d %-44s %9.0f req/s p99 %-9v proxy %5.1f µs/req errors %d\n",
				r+1, o.rounds, c.key(), s.wrk.ReqPerSec, s.wrk.P99, perReq(s.proxyCPU, s.wrk.Requests), s.wrk.Errors)
		}
	}
	if kafka != nil {
		line, err := kafka.check()
		if err != nil {
			return err
		}
		env.kafka = line
		fmt.Fprintln(stderr, "kafka group:", line)
	}
	env.end, env.loadAfter = time.Now(), procstat.LoadAvg()
	env.totalEnd, env.stealEnd = cpuSteal()

	var micro []microResult
	if o.micro {
		if micro, err = runMicro(ctx, o, stderr); err != nil {
			return err
		}
	}
	env.versions = versions(o.bin)
	rep := report{env: env, opts: o, cs: cs, results: results, micro: micro}
	if err := rep.write(o.out); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(o.plot), 0o755); err != nil {
		return err
	}
	return writePlot(o.plot, rep)
}

// measure runs one contender once and reads what every process spent.
func measure(ctx context.Context, c contender, o options, wrkCPU int, tmp string, m *monolith.Monolith) (sample, error) {
	var proxy []int
	if c.Proxy != nil {
		proxy = []int{c.Proxy.pid()}
	}
	var before promtext.Series
	if c.Spool {
		var err error
		if before, err = promtext.Scrape(c.Proxy.admin + "/metrics"); err != nil {
			return sample{}, err
		}
	}
	p0, n0, f0 := treeCPU(proxy), treeCPU([]int{m.NginxPID}), treeCPU([]int{m.FPMPID})
	t0, s0 := cpuSteal()
	w, err := runWrk(ctx, c, o.dur, o.threads, wrkCPU, tmp)
	if err != nil {
		return sample{}, err
	}
	if c.Drain {
		// What the run accepted is forwarded after it: count that too.
		if _, err := waitDrained(ctx, c.Proxy.admin); err != nil {
			return sample{}, fmt.Errorf("%s: %w", c.key(), err)
		}
	}
	s := sample{wrk: w,
		proxyCPU: treeCPU(proxy) - p0, nginxCPU: treeCPU([]int{m.NginxPID}) - n0, fpm: treeCPU([]int{m.FPMPID}) - f0,
		proxyRSS: treeRSS(proxy),
	}
	t1, s1 := cpuSteal()
	s.machineTicks, s.stealTicks = t1-t0, s1-s0
	if c.Spool {
		after, err := promtext.Scrape(c.Proxy.admin + "/metrics")
		if err != nil {
			return sample{}, err
		}
		s.commits = after.Histogram("strangler_spool_commit_seconds").Minus(before.Histogram("strangler_spool_commit_seconds"))
		s.commitBatches = after.Histogram("strangler_spool_commit_batch_events").Minus(before.Histogram("strangler_spool_commit_batch_events"))
	}
	return s, nil
}

func perReq(d time.Duration, n int64) float64 {
	return float64(d.Nanoseconds()) / 1e3 / float64(max(n, 1))
}

// idleRSS starts strangler with the shipped config.yaml (only its addresses,
// upstream and spool directory changed), lets it settle, and reads its RSS
// and CPU while idle: what a deployment pays before any traffic.
func idleRSS(ctx context.Context, l launcher, bin, upstream string) (idle idleFigures, err error) {
	b, err := os.ReadFile("config.yaml")
	if err != nil {
		return idle, err
	}
	listen, err := freeAddr()
	if err != nil {
		return idle, err
	}
	admin, err := freeAddr()
	if err != nil {
		return idle, err
	}
	dir := filepath.Join(l.tmp, "shipped")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return idle, err
	}
	// The shipped paths under var/ (spool, sessions, the monolith's events
	// file) move under dir: a fresh clone has no var/, and a run must not
	// touch the checkout's.
	for _, sub := range []string{"monolith", "sessions"} {
		if err := os.MkdirAll(filepath.Join(dir, "var", sub), 0o755); err != nil {
			return idle, err
		}
	}
	cfg := shippedConfig(string(b), listen, admin, "http://"+upstream, filepath.Join(dir, "var"))
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return idle, err
	}
	s, err := l.start("strangler, shipped config", l.command(bin, "run", "-config", path), false)
	if err != nil {
		return idle, err
	}
	defer s.stop()
	s.admin = "http://" + admin
	if err := s.waitHTTP(ctx, s.admin+"/readyz", true); err != nil {
		return idle, err
	}
	time.Sleep(2 * time.Second) // start-up garbage collected, timers settled
	c0 := treeCPU([]int{s.pid()})
	const window = 5 * time.Second
	time.Sleep(window)
	idle.rss = treeRSS([]int{s.pid()})
	idle.cpu = treeCPU([]int{s.pid()}) - c0
	idle.window = window
	if m, err := promtext.Scrape(s.admin + "/metrics"); err == nil {
		idle.heap = m["go_memstats_heap_inuse_bytes"]
		idle.goroutines = m["go_goroutines"]
	}
	return idle, nil
}

type idleFigures struct {
	rss              int64
	cpu, window      time.Duration
	heap, goroutines float64
}

// shippedConfig is config.yaml with its listen and admin addresses and the
// legacy upstream replaced, and every value under var/ moved under varDir,
// everything else as shipped.
func shippedConfig(cfg, listen, admin, upstream, varDir string) string {
	lines := strings.Split(cfg, "\n")
	section := ""
	for i, line := range lines {
		if line != "" && line[0] != ' ' && line[0] != '#' {
			section, _, _ = strings.Cut(line, ":")
		}
		switch {
		case strings.HasPrefix(line, "listen:"):
			lines[i] = "listen: " + strconv.Quote(listen)
		case strings.HasPrefix(line, "admin_listen:"):
			lines[i] = "admin_listen: " + strconv.Quote(admin)
		case section == "legacy" && strings.HasPrefix(line, "  upstream:"):
			lines[i] = "  upstream: " + strconv.Quote(upstream)
		case !strings.HasPrefix(strings.TrimSpace(line), "#"):
			if key, val, ok := strings.Cut(line, ": var/"); ok {
				lines[i] = key + ": " + strconv.Quote(filepath.Join(varDir, strings.TrimSpace(val)))
			}
		}
	}
	return strings.Join(lines, "\n")
}

// environment is what the report's environment line says.
type environment struct {
	start, end            time.Time
	loadBefore, loadAfter string
	stealStart, stealEnd  int64
	totalStart, totalEnd  int64
	pinned                string
	versions              string
	kafka                 string // the kafka group's check, when it ran
	idle                  idleFigures
}

func versions(bin string) string {
	rev := strings.TrimSpace(firstLine("git", "rev-parse", "--short", "HEAD"))
	if out, _ := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); len(out) > 0 {
		rev += " (modified)"
	}
	nginx, _ := findBin("nginx")
	haproxy, _ := findBin("haproxy")
	fpm, _ := findBin("php-fpm8.2")
	return strings.Join([]string{
		"strangler " + rev,
		runtime.Version(),
		strings.TrimPrefix(firstLine(nginx, "-v"), "nginx version: "),
		firstFields(firstLine(haproxy, "-v"), 3),
		firstFields(firstLine(fpm, "-v"), 3),
		firstFields(firstLine("wrk", "-v"), 2),
	}, ", ")
}

// firstFields is s's first n space-separated fields.
func firstFields(s string, n int) string {
	f := strings.Fields(s)
	return strings.Join(f[:min(n, len(f))], " ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func kernel() string {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return "?"
	}
	var b strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	return b.String()
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
