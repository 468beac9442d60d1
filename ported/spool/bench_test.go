package spool

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/ported/delivery"
)

// BenchmarkSpoolPublish measures durable appends from many concurrent
// publishers (the intake under load). fsyncs/event is the group-commit
// ratio: 1 would mean one fsync per event.
func BenchmarkSpoolPublish(b *testing.B) {
	value := []byte(`{"event_id":"evt_0000000000","type":"purchase","user_id":"user_000042","amount":"19.99",` +
		`"currency":"EUR","country":"DE","campaign_id":"cmp_000042","items":[{"sku":"sku_1","qty":1,"price":"19.99"}],` +
		`"email_sha256":"` + string(bytes.Repeat([]byte("a"), 64)) + `","occurred_at":"2026-03-01T12:00:00Z"}`)
	for _, bc := range []struct {
		name     string
		interval time.Duration
		par      int
	}{
		{"hold_2ms/publishers_64", 2 * time.Millisecond, 32},
		{"no_hold/publishers_64", 0, 32},
		{"hold_2ms/publishers_2", 2 * time.Millisecond, 1},
		{"no_hold/publishers_2", 0, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := Config{Dir: b.TempDir(), GroupCommitInterval: bc.interval, MaxBytes: 8 << 30}
			s, err := Open(cfg, zap.NewNop(), nil)
			if err != nil {
				b.Fatal(err)
			}
			var n atomic.Int64
			b.SetBytes(int64(len(value)))
			b.SetParallelism(bc.par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					m := delivery.Message{Key: fmt.Appendf(nil, "user_%06d", i%1000), Value: value, EventID: fmt.Sprintf("evt_%010d", i)}
					if err := s.Publish(context.Background(), m); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			st := s.Stats()
			b.ReportMetric(float64(st.Commits)/float64(st.Appends), "fsyncs/event")
			if err := s.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
		})
	}
}
