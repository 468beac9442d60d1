package main

import (
	"os"
	"testing"
	"time"
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
