// Package jitter spreads retry waits, so that a fleet of proxies that saw
// the same failure at the same moment does not retry in lockstep: every
// backoff of the process is drawn through it.
package jitter

import (
	"math/rand/v2"
	"time"
)

// Down returns a wait drawn uniformly from [d - d×frac, d]: never longer
// than d, so a documented cap still holds. frac is clamped to [0, 1]; 0.5
// is "equal jitter", half the wait fixed and half random.
func Down(d time.Duration, frac float64) time.Duration {
	frac = min(max(frac, 0), 1)
	spread := time.Duration(float64(d) * frac)
	if d <= 0 || spread <= 0 {
		return d
	}
	return d - rand.N(spread+1)
}
