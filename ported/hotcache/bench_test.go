package hotcache

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func loadedCache(b *testing.B, n int) *Cache {
	b.Helper()
	c, _ := newCache(b, &versions{doc: doc(b, n, 1)}, Config{Timeout: 5 * time.Minute})
	if err := c.Refresh(context.Background()); err != nil {
		b.Fatal(err)
	}
	return c
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("cmp_%06d", 1+(i*7919)%n)
	}
	return out
}

// BenchmarkCampaignGet is one lookup on the request path: an atomic load and
// a map lookup (target: <= 200 ns, 0 allocs).
func BenchmarkCampaignGet(b *testing.B) {
	c := loadedCache(b, 10_000)
	keys := ids(10_000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, ok := c.Campaign(keys[i%len(keys)]); !ok {
			b.Fatal("miss")
		}
	}
}

func BenchmarkCampaignGetParallel(b *testing.B) {
	c := loadedCache(b, 10_000)
	keys := ids(10_000)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := c.Campaign(keys[i%len(keys)]); !ok {
				b.Error("miss")
				return
			}
			i++
		}
	})
}

// BenchmarkRefresh100k is a full fetch-parse-validate-index-swap of a
// 100,000-campaign document (~25 MB).
func BenchmarkRefresh100k(b *testing.B) {
	c := loadedCache(b, 100_000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := c.Refresh(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookupLatency compares lookup latency percentiles in steady state
// and while 100,000-entry snapshots are rebuilt back to back on another
// goroutine (target: p99 while rebuilding <= 1.2x steady). Each sample
// times a batch of 64 lookups, since one lookup is below the clock's
// resolution; the metrics are per lookup.
func BenchmarkLookupLatency(b *testing.B) {
	const batch = 64
	for _, rebuilding := range []bool{false, true} {
		name := "steady"
		if rebuilding {
			name = "rebuilding"
		}
		b.Run(name, func(b *testing.B) {
			c := loadedCache(b, 100_000)
			keys := ids(100_000)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var rebuilds int
			if rebuilding {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						if err := c.Refresh(ctx); err != nil && ctx.Err() == nil {
							b.Error(err)
							return
						}
						rebuilds++
					}
				}()
				time.Sleep(50 * time.Millisecond) // let the first rebuild start
			}
			samples := make([]time.Duration, 0, 1<<20)
			b.ResetTimer()
			k := 0
			for b.Loop() {
				start := time.Now()
				for range batch {
					if _, ok := c.Campaign(keys[k]); !ok {
						b.Fatal("miss")
					}
					k++
					if k == len(keys) {
						k = 0
					}
				}
				if len(samples) < cap(samples) {
					samples = append(samples, time.Since(start))
				}
			}
			b.StopTimer()
			cancel()
			wg.Wait()
			slices.Sort(samples)
			pct := func(p float64) float64 {
				return float64(samples[int(p*float64(len(samples)-1))]) / batch
			}
			b.ReportMetric(pct(0.50), "ns/lookup-p50")
			b.ReportMetric(pct(0.99), "ns/lookup-p99")
			b.ReportMetric(pct(0.999), "ns/lookup-p99.9")
			if rebuilding {
				b.ReportMetric(float64(rebuilds), "rebuilds")
			}
		})
	}
}
