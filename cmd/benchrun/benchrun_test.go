package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseWrk(t *testing.T) {
	out := `Running 5s test @ http://127.0.0.1:8080/static/hello.txt
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms  512.00us  12.00ms   90.00%
    Req/Sec    15.20k     1.10k   17.00k    70.00%
  Latency Distribution
     50%  774.00us
     75%    1.10ms
     90%    1.50ms
     99%    7.48ms
  151234 requests in 5.00s, 40.10MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  30246.80
Transfer/sec:      8.02MB
`
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 151234 || r.ReqPerSec != 30246.80 || r.Errors != 7 {
		t.Errorf("got %+v", r)
	}
	if r.P50 != 774*time.Microsecond || r.P99 != 7480*time.Microsecond {
		t.Errorf("percentiles: p50 %v p99 %v", r.P50, r.P99)
	}
	if _, err := parseWrk("unable to connect"); err == nil {
		t.Error("garbage parsed without error")
	}
}

func TestTreeCPUCountsThisProcess(t *testing.T) {
	// Spin until /proc shows this process's CPU time growing; a shared,
	// stolen-from machine may need longer than the spin's wall time.
	before := treeCPU([]int{os.Getpid()})
	deadline := time.Now().Add(10 * time.Second)
	x := 0
	for time.Now().Before(deadline) {
		for spin := time.Now(); time.Since(spin) < 20*time.Millisecond; {
			x++
		}
		if treeCPU([]int{os.Getpid()})-before >= 50*time.Millisecond {
			return
		}
	}
	t.Errorf("CPU time never grew by 50ms in 10s of spinning (x=%d)", x)
}

func TestMedian(t *testing.T) {
	tests := []struct {
		give []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}}
	for _, tt := range tests {
		if got := median(tt.give); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.give, got, tt.want)
		}
	}
}

func TestSplice(t *testing.T) {
	gen := "figures\n"
	block := beginMarker + "\n" + gen + endMarker + "\n"
	tests := []struct {
		name, give, want string
	}{
		{"empty file", "", "# Benchmarks\n\n" + block},
		{"no markers: after the title", "# B\n\nhistory\n", "# B\n\n" + block + "\nhistory\n"},
		{"markers: only between them", "# B\nintro\n" + beginMarker + "\nold\nlines\n" + endMarker + "\nhistory\n",
			"# B\nintro\n" + block + "history\n"},
	}
	for _, tt := range tests {
		if got := splice(tt.give, gen); got != tt.want {
			t.Errorf("%s: got\n%q\nwant\n%q", tt.name, got, tt.want)
		}
	}
	// Rewriting twice gives the same document.
	once := splice("# B\n\nhistory\n", gen)
	if twice := splice(once, gen); twice != once {
		t.Errorf("second splice changed the document:\n%q\n%q", once, twice)
	}
}

func TestShippedConfig(t *testing.T) {
	give := "listen: \":8080\"\nadmin_listen: \"127.0.0.1:9901\"\nlegacy:\n  upstream: \"http://127.0.0.1:8081\"\n" +
		"  timeout: 30s\nspool:\n  dir: var/spool\nother:\n  dir: keep\n  upstream: keep\n" +
		"routes:\n  - shadow:\n      legacy_events_file: var/monolith/e.jsonl\n# path: var/x\n"
	want := "listen: \"127.0.0.1:1\"\nadmin_listen: \"127.0.0.1:2\"\nlegacy:\n  upstream: \"http://127.0.0.1:3\"\n" +
		"  timeout: 30s\nspool:\n  dir: \"/tmp/v/spool\"\nother:\n  dir: keep\n  upstream: keep\n" +
		"routes:\n  - shadow:\n      legacy_events_file: \"/tmp/v/monolith/e.jsonl\"\n# path: var/x\n"
	if got := shippedConfig(give, "127.0.0.1:1", "127.0.0.1:2", "http://127.0.0.1:3", "/tmp/v"); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestParseBench(t *testing.T) {
	out := "goos: linux\nBenchmarkDispatch/legacy         \t 9876543\t       121.5 ns/op\t       0 B/op\t       0 allocs/op\n" +
		"BenchmarkLookupShadow/shadow-2 \t 3559\t 348334 ns/op\t 0 mismatch/req\t 1942 B/op\t 37 allocs/op\n" +
		"BenchmarkNoMem \t 100\t 5.5 ns/op\nPASS\n"
	rs := parseBench("./proxy", out)
	if len(rs) != 3 {
		t.Fatalf("got %d results: %+v", len(rs), rs)
	}
	if r := rs[0]; r.name != "BenchmarkDispatch/legacy" || r.nsPerOp != 121.5 || r.bytesOp != 0 || r.allocsOp != 0 {
		t.Errorf("first: %+v", r)
	}
	if r := rs[1]; r.allocsOp != 37 || r.extra != "0 mismatch/req" {
		t.Errorf("custom metric: %+v", r)
	}
	if r := rs[2]; r.allocsOp != -1 || r.bytesOp != -1 {
		t.Errorf("without -benchmem: %+v", r)
	}
	if r, ok := worst(append(rs, microResult{name: "BenchmarkDispatch/param", allocsOp: 3}), "BenchmarkDispatch"); !ok || r.name != "BenchmarkDispatch/param" {
		t.Errorf("worst: %+v %v", r, ok)
	}
	if r, ok := find(rs, "BenchmarkLookupShadow"); !ok || r.nsPerOp != 348334 {
		t.Errorf("find: %+v %v", r, ok)
	}
}

func TestWrkDuration(t *testing.T) {
	for give, want := range map[time.Duration]string{time.Second: "1s", 5 * time.Second: "5s", 200 * time.Millisecond: "1s", 2600 * time.Millisecond: "3s"} {
		if got := wrkDuration(give); got != want {
			t.Errorf("wrkDuration(%v) = %q, want %q", give, got, want)
		}
	}
}

func TestPinTreeAndRSS(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := cmd.Process.Pid
	if err := pinTree([]int{os.Getpid()}, 0); err != nil {
		t.Fatal(err)
	}
	// Pinning the test process pinned its child too (a descendant).
	if got := allowedCPUs(pid); got != "0" {
		t.Errorf("child allowed CPUs %q, want 0", got)
	}
	if rss := treeRSS([]int{pid}); rss <= 0 {
		t.Errorf("RSS of a running sleep = %d", rss)
	}
	all := make([]int, 0, runtime.NumCPU())
	for i := range runtime.NumCPU() {
		all = append(all, i)
	}
	var set unix.CPUSet
	for _, c := range all {
		set.Set(c)
	}
	for _, p := range tree([]int{os.Getpid()}) {
		tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(p) + "/task/[0-9]*")
		for _, tk := range tasks {
			tid, _ := strconv.Atoi(filepath.Base(tk))
			_ = unix.SchedSetaffinity(tid, &set) // undo for the other tests
		}
	}
}
