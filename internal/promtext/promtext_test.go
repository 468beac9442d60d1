package promtext

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestHistogramDelta(t *testing.T) {
	page := func(b1, b2, inf, sum float64) string {
		return "# HELP x\n# TYPE strangler_spool_commit_seconds histogram\n" +
			`strangler_spool_commit_seconds_bucket{le="0.001"} ` + ftoa(b1) + "\n" +
			`strangler_spool_commit_seconds_bucket{le="0.002"} ` + ftoa(b2) + "\n" +
			`strangler_spool_commit_seconds_bucket{le="+Inf"} ` + ftoa(inf) + "\n" +
			"strangler_spool_commit_seconds_sum " + ftoa(sum) + "\n" +
			"strangler_spool_commit_seconds_count " + ftoa(inf) + "\n" +
			`other_total{route="a b"} 7` + "\n"
	}
	before, err := Parse(strings.NewReader(page(10, 10, 10, 0.005)))
	if err != nil {
		t.Fatal(err)
	}
	after, err := Parse(strings.NewReader(page(60, 109, 110, 0.105)))
	if err != nil {
		t.Fatal(err)
	}
	if after[`other_total{route="a b"}`] != 7 {
		t.Errorf("labelled series with a space: %v", after)
	}
	d := after.Histogram("strangler_spool_commit_seconds").Minus(before.Histogram("strangler_spool_commit_seconds"))
	if d.Count != 100 || math.Abs(d.Sum-0.1) > 1e-9 {
		t.Fatalf("delta count %v sum %v", d.Count, d.Sum)
	}
	if q := d.Quantile(0.5); q != 0.001 {
		t.Errorf("p50 = %v, want 0.001 (50 of 100 in the first bucket)", q)
	}
	if q := d.Quantile(0.99); q != 0.002 {
		t.Errorf("p99 = %v, want 0.002", q)
	}
	if q := d.Quantile(1); !math.IsInf(q, 1) {
		t.Errorf("p100 = %v, want +Inf (one observation past the last bound)", q)
	}
	if q := (Hist{}).Quantile(0.5); !math.IsNaN(q) {
		t.Errorf("empty histogram p50 = %v, want NaN", q)
	}
}

func ftoa(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
