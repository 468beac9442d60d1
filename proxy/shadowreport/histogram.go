package shadowreport

import (
	"math"
	"time"
)

// Latency histogram: log-spaced buckets 10 % apart from histMin, so a
// quantile read from a bucket's geometric middle is within about 5 % of
// the true value. Fixed size: a route's memory does not grow with its
// traffic.
const (
	histMin     = 20 * time.Microsecond
	histGrowth  = 1.1
	histBuckets = 160 // up to 20µs × 1.1^159 ≈ 76 s; slower calls land in the last bucket
)

// histBounds[i] is the upper bound of bucket i.
var histBounds = func() (b [histBuckets]time.Duration) {
	v := float64(histMin)
	for i := range b {
		b[i] = time.Duration(v)
		v *= histGrowth
	}
	return b
}()

func histIndex(d time.Duration) int {
	lo, hi := 0, histBuckets-1
	for lo < hi {
		mid := (lo + hi) / 2
		if d <= histBounds[mid] {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// hist counts durations per bucket.
type hist [histBuckets]uint32

func (h *hist) add(d time.Duration) {
	i := histIndex(d)
	if h[i] < math.MaxUint32 {
		h[i]++
	}
}

// histTotal is a hist with room for a process lifetime.
type histTotal [histBuckets]uint64

func (h *histTotal) add(d time.Duration) { h[histIndex(d)]++ }

func (h *histTotal) addHist(o *hist) {
	for i, c := range o {
		h[i] += uint64(c)
	}
}

func (h *histTotal) count() uint64 {
	var n uint64
	for _, c := range h {
		n += c
	}
	return n
}

// quantile returns the q-quantile (0 < q ≤ 1), read at the geometric
// middle of its bucket; 0 when h is empty.
func (h *histTotal) quantile(q float64) time.Duration {
	total := h.count()
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, c := range h {
		seen += c
		if seen >= rank {
			lo := float64(histMin) / histGrowth
			if i > 0 {
				lo = float64(histBounds[i-1])
			}
			return time.Duration(math.Sqrt(lo * float64(histBounds[i])))
		}
	}
	return histBounds[histBuckets-1]
}
