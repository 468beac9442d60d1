package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
)

// microSet is the Go micro-benchmarks `make bench` reports: each package
// with the benchmarks (a -bench pattern) that measure one part of a request.
var microSet = []struct{ pkg, pattern, what string }{
	{"./proxy", "^(BenchmarkDispatch|BenchmarkScreen|BenchmarkAccessLog)$", "dispatch (route match + mode switch), front-door hygiene, access-log line"},
	{"./internal/linelog", ".", "the bounded log buffer itself"},
	{"./routes", "^BenchmarkMatch$", "route match alone"},
	{"./legacy-passthrough", "^(BenchmarkRequestHeaders|BenchmarkForward)$", "upstream header hygiene; a whole forward over an in-memory upstream"},
	{"./ported/events", "^BenchmarkValidate$", "intake validation"},
	{"./compare", "^BenchmarkDiff2KiB$", "the comparator"},
	{"./ported/hotcache", "^BenchmarkCampaignGet$", "hot-cache get"},
}

// microResult is one benchmark line.
type microResult struct {
	pkg, name         string
	nsPerOp           float64
	bytesOp, allocsOp float64 // -1 when absent
	extra             string  // custom metrics (b.ReportMetric), as printed
	line              string
}

// runMicro runs microSet with -benchmem, pinned to the servers' CPU so
// GOMAXPROCS is 1 and nothing else of this run competes with it.
func runMicro(ctx context.Context, o options, stderr io.Writer) ([]microResult, error) {
	var out []microResult
	for _, m := range microSet {
		args := []string{"test", "-run", "^$", "-bench", m.pattern, "-benchmem", "-count", "1", m.pkg}
		name := "go"
		if o.pin {
			name, args = "taskset", append([]string{"-c", strconv.Itoa(o.serverCPU), "go"}, args...)
		}
		fmt.Fprintf(stderr, "micro-benchmarks: %s %s\n", m.pkg, m.pattern)
		b, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("go test -bench %s: %w\n%s", m.pkg, err, b)
		}
		out = append(out, parseBench(m.pkg, string(b))...)
	}
	return out, nil
}

// parseBench reads `go test -bench -benchmem` output.
func parseBench(pkg, out string) []microResult {
	var rs []microResult
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		r := microResult{pkg: pkg, name: f[0], bytesOp: -1, allocsOp: -1, line: line}
		var extra []string
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				r.nsPerOp = v
			case "B/op":
				r.bytesOp = v
			case "allocs/op":
				r.allocsOp = v
			default:
				extra = append(extra, f[i]+" "+f[i+1])
			}
		}
		r.extra = strings.Join(extra, ", ")
		rs = append(rs, r)
	}
	return rs
}

// find is the first result whose name starts with prefix.
func find(rs []microResult, prefix string) (microResult, bool) {
	for _, r := range rs {
		if strings.HasPrefix(r.name, prefix) {
			return r, true
		}
	}
	return microResult{}, false
}

// worst is the result with the most allocs/op among those whose name
// starts with prefix (every case of a benchmark, not only the first).
func worst(rs []microResult, prefix string) (microResult, bool) {
	var w microResult
	found := false
	for _, r := range rs {
		if strings.HasPrefix(r.name, prefix) && (!found || r.allocsOp > w.allocsOp) {
			w, found = r, true
		}
	}
	return w, found
}
