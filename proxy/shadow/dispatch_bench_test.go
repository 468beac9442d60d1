package shadow

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// BenchmarkDispatcherSteadyLoad is the process's CPU per job when jobs
// arrive steadily, a few each millisecond (the timer granularity here),
// and each is trivial: what handing jobs to the workers costs, by
// wake_interval. "none" wakes a worker per job, as a channel hand-off
// does. The figure to read is cpu-µs/job (utime+stime of the whole
// process, the producer's own ticker included, the same in every case).
func BenchmarkDispatcherSteadyLoad(b *testing.B) {
	for _, perTick := range []int{1, 5} {
		for _, c := range []struct {
			name     string
			interval time.Duration
		}{{"none", 0}, {"1ms", time.Millisecond}, {"5ms", 5 * time.Millisecond}} {
			b.Run(fmt.Sprintf("%d_per_ms/%s", perTick, c.name), func(b *testing.B) { steadyLoad(b, perTick, c.interval) })
		}
	}
}

func steadyLoad(b *testing.B, perTick int, interval time.Duration) {
	d := newDispatcher(DefaultWorkers, 4096, interval)
	stop := startWorkers(d, DefaultWorkers, func(*Job) {})
	defer stop()
	jobs := make([]Job, 64)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	before := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i += perTick {
		<-tick.C
		for k := range perTick {
			d.push(&jobs[(i+k)%len(jobs)])
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-before).Microseconds())/float64(b.N), "cpu-µs/job")
	b.ReportMetric(float64(d.wakes())/float64(b.N), "wakes/job")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
