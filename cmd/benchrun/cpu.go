package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
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
	children := map[int][]int{}
	ticks := map[int]int64{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		ppid, t, err := procStat(pid)
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], pid)
		ticks[pid] = t
	}
	var total int64
	seen := map[int]bool{}
	var walk func(int)
	walk = func(p int) {
		if seen[p] {
			return
		}
		seen[p] = true
		total += ticks[p]
		for _, c := range children[p] {
			walk(c)
		}
	}
	for _, r := range roots {
		walk(r)
	}
	return time.Duration(total) * time.Second / clockTick
}
