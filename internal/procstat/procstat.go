// Package procstat reads the few /proc figures the benchmark and soak
// drivers report about the processes they run and the machine.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// StatusKB is one "Key: N kB" line of /proc/PID/status (key with its
// colon, e.g. "VmRSS:"); 0 when the process or the line is gone.
func StatusKB(pid int, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// RSS is a process's resident set in bytes.
func RSS(pid int) int64 { return StatusKB(pid, "VmRSS:") << 10 }

// LoadAvg is /proc/loadavg's first three fields, "?" when unreadable.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
