package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestScheduleKeepsTheWeights(t *testing.T) {
	ks := mix()
	total := 0
	for _, k := range ks {
		total += k.weight
	}
	if total != 1000 {
		t.Fatalf("weights add up to %d, want 1000", total)
	}
	s := schedule(ks)
	counts := make([]int, len(ks))
	for _, i := range s {
		counts[i]++
	}
	for i, k := range ks {
		if counts[i] != k.weight {
			t.Errorf("%s: %d slots, want %d", k.name, counts[i], k.weight)
		}
	}
	// Shuffled: the first 100 slots hold more than two kinds.
	seen := map[int]bool{}
	for _, i := range s[:100] {
		seen[i] = true
	}
	if len(seen) < 5 {
		t.Errorf("the first 100 slots hold %d kinds: not spread", len(seen))
	}
}

func TestParseSize(t *testing.T) {
	for give, want := range map[string]int64{"1GiB": 1 << 30, "64MiB": 64 << 20, "512KiB": 512 << 10, "100": 100, "0": 0} {
		if got, err := parseSize(give); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", give, got, err, want)
		}
	}
	for _, bad := range []string{"", "1GB", "-1MiB", "x"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}

// TestSoakSmoke runs the whole driver briefly against the real binary,
// Nginx + PHP-FPM and kfake: every kind of request in the mix must
// succeed and the report must be written. (`make soak` is the long run.)
func TestSoakSmoke(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "strangler")
	build := exec.Command("go", "build", "-o", bin, "github.com/strangler-proxy/strangler/cmd/strangler")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build strangler: %v\n%s", err, out)
	}
	// The driver reads examples/ relative to the repository root.
	if err := os.Chdir("../.."); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chdir("cmd/soak") })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	out := filepath.Join(dir, "SOAK.md")
	code := run(ctx, []string{"-requests", "3000", "-workers", "8", "-big", "8MiB", "-sample", "200ms", "-strangler", bin,
		"-out", out, "-csv", filepath.Join(dir, "soak.csv"), "-plot", filepath.Join(dir, "soak.png")}, &stdout, &stderr)
	report, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("exit %d, no report: %v\n%s", code, err, stderr.String())
	}
	// A short run may miss P4 (RSS still warming up); nothing may fail.
	for _, k := range mix() {
		if !strings.Contains(string(report), "| "+k.name+" |") {
			t.Errorf("report has no row for %s", k.name)
		}
	}
	if strings.Contains(stderr.String(), "failed (first:") {
		t.Errorf("requests failed:\n%s", stderr.String())
	}
	for _, want := range []string{"8 MiB download", "8 MiB upload", "| P4 | open fds"} {
		if !strings.Contains(string(report), want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "soak.csv")); err != nil || bytes.Count(b, []byte("\n")) < 3 {
		t.Errorf("csv: %v, %q", err, b)
	}
}
