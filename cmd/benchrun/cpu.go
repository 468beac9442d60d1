package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strangler-proxy/strangler/internal/procstat"
)

// clockTick is USER_HZ; 100 on every Linux this runs on (sysconf(_SC_CLK_TCK)).
const clockTick = 100

// procStat returns a process's ppid and utime+stime (plus its reaped
// children's) in clock ticks, from /proc/PID/stat (proc(5) fields 4, 14-17).
func procStat(pid int) (ppid int, ticks int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name may contain spaces; fields resume after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): field N is f[N-3].
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat: short", pid)
	}
	ppid, _ = strconv.Atoi(f[1])
	for _, k := range []int{14, 15, 16, 17} {
		v, _ := strconv.ParseInt(f[k-3], 10, 64)
		ticks += v
	}
	return ppid, ticks, nil
}

// treeCPU is the CPU time of roots and all their descendants.
func treeCPU(roots []int) time.Duration {
	var total int64
	for _, pid := range tree(roots) {
		if _, t, err := procStat(pid); err == nil {
			total += t
		}
	}
	return time.Duration(total) * time.Second / clockTick
}

// tree is roots and all their descendants, from one walk of /proc.
func tree(roots []int) []int {
	children := map[int][]int{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if ppid, _, err := procStat(pid); err == nil {
			children[ppid] = append(children[ppid], pid)
		}
	}
	var out []int
	seen := map[int]bool{}
	var walk func(int)
	walk = func(p int) {
		if seen[p] {
			return
		}
		seen[p] = true
		out = append(out, p)
		for _, c := range children[p] {
			walk(c)
		}
	}
	for _, r := range roots {
		walk(r)
	}
	return out
}

// treeRSS is the sum of VmRSS over roots and their descendants (shared
// pages count once per process, as ps shows them).
func treeRSS(roots []int) int64 {
	var total int64
	for _, pid := range tree(roots) {
		total += procstat.RSS(pid)
	}
	return total
}

// pinTree restricts every thread of roots and their descendants to cpu.
// Processes forked later inherit it.
func pinTree(roots []int, cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	for _, pid := range tree(roots) {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/[0-9]*", pid))
		for _, t := range tasks {
			tid, err := strconv.Atoi(filepath.Base(t))
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("pin pid %d tid %d to CPU %d: %w", pid, tid, cpu, err)
			}
		}
	}
	return nil
}

// allowedCPUs is /proc/PID/status's Cpus_allowed_list, to show the pinning
// took.
func allowedCPUs(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(rest)
		}
	}
	return "?"
}

// cpuSteal is the machine's total and steal time in ticks, from /proc/stat,
// to say how much the hypervisor took during a run.
func cpuSteal() (total, steal int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, s := range f[1:] {
		if i >= 8 {
			break // guest time is already counted in user time
		}
		n, _ := strconv.ParseInt(s, 10, 64)
		total += n
		if i == 7 {
			steal = n
		}
	}
	return total, steal
}
