package main

import (
	"fmt"
	"strings"
	"time"
)

// render writes the medians of every figure, and each contender's ratios
// against its group's baselines.
func render(cs []contender, results map[string][]sample, rounds int, dur time.Duration, conns, threads, workers int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s with `make bench`: wrk -t%d -c%d, %d rounds × %s per contender, contenders interleaved "+
		"in rotating order each round; medians over rounds. PHP-FPM pm=static with %d children. CPU µs/req is utime+stime "+
		"from /proc/PID/stat of the serving processes (Nginx + PHP-FPM, plus Strangler where it is in the path) divided "+
		"by the requests served; \"proxy CPU\" is Strangler's own share.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), threads, conns, rounds, dur, workers)
	groups := []string{}
	seen := map[string]bool{}
	for _, c := range cs {
		if !seen[c.Group] {
			seen[c.Group] = true
			groups = append(groups, c.Group)
		}
	}
	type fig struct{ rps, p50, p99, cpu, pcpu, errs float64 }
	med := func(c contender) fig {
		var rps, p50, p99, cpu, pcpu, errs []float64
		for _, s := range results[c.Group+"/"+c.Name] {
			rps = append(rps, s.wrk.ReqPerSec)
			p50 = append(p50, float64(s.wrk.P50)/1e3)
			p99 = append(p99, float64(s.wrk.P99)/1e3)
			n := float64(max(s.wrk.Requests, 1))
			cpu = append(cpu, float64(s.stackCPU.Microseconds())/n)
			pcpu = append(pcpu, float64(s.proxyCPU.Microseconds())/n)
			errs = append(errs, float64(s.wrk.Errors))
		}
		return fig{median(rps), median(p50), median(p99), median(cpu), median(pcpu), median(errs)}
	}
	for _, g := range groups {
		var members []contender
		var bases []contender
		for _, c := range cs {
			if c.Group == g {
				members = append(members, c)
				if c.Baseline {
					bases = append(bases, c)
				}
			}
		}
		fmt.Fprintf(&b, "### %s\n\n| contender | req/s | p50 µs | p99 µs | CPU µs/req | proxy CPU µs/req | errors |", g)
		for _, base := range bases {
			fmt.Fprintf(&b, " req/s ÷ %s | p99 ÷ %s | CPU/req ÷ %s |", base.Name, base.Name, base.Name)
		}
		b.WriteString("\n|---|---:|---:|---:|---:|---:|---:|")
		for range bases {
			b.WriteString("---:|---:|---:|")
		}
		b.WriteString("\n")
		for _, c := range members {
			f := med(c)
			pc := "—"
			if c.Strangler {
				pc = fmt.Sprintf("%.1f", f.pcpu)
			}
			fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.0f | %.1f | %s | %.0f |", c.Name, f.rps, f.p50, f.p99, f.cpu, pc, f.errs)
			for _, base := range bases {
				bf := med(base)
				fmt.Fprintf(&b, " %.2f× | %.2f× | %.2f× |", f.rps/bf.rps, f.p99/bf.p99, f.cpu/bf.cpu)
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}
	return b.String()
}
