package jitter

import (
	"testing"
	"time"
)

func TestDownStaysInItsRangeAndSpreads(t *testing.T) {
	tests := []struct {
		d    time.Duration
		frac float64
		lo   time.Duration
	}{
		{time.Second, 0.5, 500 * time.Millisecond},
		{30 * time.Second, 0.2, 24 * time.Second},
		{time.Second, 2, 0}, // clamped to 1
	}
	for _, tt := range tests {
		seen := map[time.Duration]bool{}
		for range 1000 {
			got := Down(tt.d, tt.frac)
			if got < tt.lo || got > tt.d {
				t.Fatalf("Down(%s, %v) = %s, outside [%s, %s]", tt.d, tt.frac, got, tt.lo, tt.d)
			}
			seen[got] = true
		}
		// 1000 draws over at least 200ms of nanoseconds: all alike would
		// mean no jitter at all.
		if len(seen) < 900 {
			t.Errorf("Down(%s, %v): %d distinct waits in 1000 draws", tt.d, tt.frac, len(seen))
		}
	}
	for _, d := range []time.Duration{0, 1, -time.Second} {
		if got := Down(d, 0.5); got != d {
			t.Errorf("Down(%s) = %s, want it unchanged", d, got)
		}
	}
	if got := Down(time.Second, 0); got != time.Second {
		t.Errorf("no spread: %s", got)
	}
}
