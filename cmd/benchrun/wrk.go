package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what one wrk run reports.
type wrkResult struct {
	Requests  int64
	Errors    int64 // socket errors + non-2xx/3xx
	ReqPerSec float64
	P50, P99  time.Duration
}

var (
	reRequests = regexp.MustCompile(`(\d+) requests in`)
	reRPS      = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	rePct      = regexp.MustCompile(`^\s*(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$`)
)

// parseWrk reads wrk's --latency output.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := reRequests.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("parse wrk output: no request count in %q", out)
	}
	r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	if m = reRPS.FindStringSubmatch(out); m != nil {
		r.ReqPerSec, _ = strconv.ParseFloat(m[1], 64)
	}
	if m = reNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.Errors += n
	}
	if m = reSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.Errors += n
		}
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		m := rePct.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]float64{"us": 1e3, "ms": 1e6, "s": 1e9}[m[3]]
		d := time.Duration(v * unit)
		if m[1] == "50" {
			r.P50 = d
		} else {
			r.P99 = d
		}
	}
	return r, nil
}

// runWrk drives one contender for d, pinned to cpu unless it is negative. A
// POST body goes through a generated Lua script, since wrk has no flag for it.
func runWrk(ctx context.Context, c contender, d time.Duration, threads, cpu int, tmp string) (wrkResult, error) {
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(max(c.Conns, threads)), "-d", wrkDuration(d), "--latency", "--timeout", "10s"}
	if c.Method != "" && c.Method != "GET" || len(c.Headers) > 0 {
		script := filepath.Join(tmp, sanitize(c.Group+"-"+c.Name)+".lua")
		var b strings.Builder
		fmt.Fprintf(&b, "wrk.method = %q\n", orDefault(c.Method, "GET"))
		if c.Body != "" {
			fmt.Fprintf(&b, "wrk.body = %q\n", c.Body)
		}
		for k, v := range c.Headers {
			fmt.Fprintf(&b, "wrk.headers[%q] = %q\n", k, v)
		}
		if c.Keys > 0 {
			s, err := keysScript(c)
			if err != nil {
				return wrkResult{}, err
			}
			b.WriteString(s)
		}
		if err := os.WriteFile(script, []byte(b.String()), 0o644); err != nil {
			return wrkResult{}, err
		}
		args = append(args, "-s", script)
	}
	args = append(args, c.URL)
	cctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	name := "wrk"
	if cpu >= 0 {
		name, args = "taskset", append([]string{"-c", strconv.Itoa(cpu), "wrk"}, args...)
	}
	out, err := exec.CommandContext(cctx, name, args...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w: %s", c.URL, err, out)
	}
	return parseWrk(string(out))
}

// wrkDuration is d in wrk's syntax, whole seconds (at least one).
func wrkDuration(d time.Duration) string {
	return strconv.Itoa(max(int((d+time.Second/2)/time.Second), 1)) + "s"
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, strings.ToLower(s))
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
