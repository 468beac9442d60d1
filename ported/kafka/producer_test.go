package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/strangler-proxy/strangler/ported/delivery"
	"github.com/strangler-proxy/strangler/ported/kafka"
	"github.com/strangler-proxy/strangler/ported/kafka/kafkatest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, kafkatest.LeakOptions()...)
}

const topic = "events.v1"

// newProducer opens a producer on c and waits until it is connected.
func newProducer(t *testing.T, cfg kafka.Config, reg prometheus.Registerer, opts ...kafka.Option) *kafka.Producer {
	t.Helper()
	p, err := kafka.NewProducer(cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), reg, opts...)
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	waitReady(t, p)
	return p
}

func waitReady(t *testing.T, p *kafka.Producer) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := p.Ping(context.Background())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("producer not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPublishAuthAndTLS(t *testing.T) {
	tests := []struct {
		name      string
		tls       bool
		mechanism string
	}{
		{name: "plaintext"},
		{name: "PLAIN over TLS", tls: true, mechanism: "PLAIN"},
		{name: "SCRAM-SHA-512 over TLS", tls: true, mechanism: "SCRAM-SHA-512"},
		{name: "SCRAM-SHA-256", mechanism: "SCRAM-SHA-256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := kafkatest.Start(t, kafkatest.Options{
				Topic: topic, TLS: tt.tls, Mechanism: tt.mechanism, User: "strangler", Pass: "s3cret",
			})
			cfg := kafka.Config{Brokers: []string{c.Addr}, Topic: topic, PublishTimeout: 10 * time.Second}
			if tt.tls {
				cfg.TLS = kafka.TLSConfig{Enabled: true, CAFile: c.CAFile}
			}
			if tt.mechanism != "" {
				cfg.SASL = kafka.SASLConfig{Mechanism: tt.mechanism, Username: "strangler", Password: "s3cret"}
			}
			reg := prometheus.NewRegistry()
			p := newProducer(t, cfg, reg)
			const n = 20
			for i := range n {
				m := delivery.Message{
					Key:     fmt.Appendf(nil, "user_%d", i%4),
					Value:   fmt.Appendf(nil, `{"seq":%d}`, i),
					EventID: fmt.Sprintf("evt_%03d", i),
				}
				if err := p.Publish(context.Background(), m); err != nil {
					t.Fatalf("Publish %d: %v", i, err)
				}
			}
			recs := c.Consume(n, 300*time.Millisecond, 15*time.Second)
			if len(recs) != n {
				t.Fatalf("consumed %d records, want %d", len(recs), n)
			}
			seen := map[string]bool{}
			for _, r := range recs {
				if len(r.Headers) != 1 || r.Headers[0].Key != kafka.EventIDHeader {
					t.Fatalf("record headers = %v, want one %s header", r.Headers, kafka.EventIDHeader)
				}
				id := string(r.Headers[0].Value)
				var seq int
				if _, err := fmt.Sscanf(string(r.Value), `{"seq":%d}`, &seq); err != nil || id != fmt.Sprintf("evt_%03d", seq) ||
					string(r.Key) != fmt.Sprintf("user_%d", seq%4) {
					t.Fatalf("record key=%q value=%q id=%q do not belong together", r.Key, r.Value, id)
				}
				seen[id] = true
			}
			if len(seen) != n {
				t.Fatalf("distinct event ids = %d, want %d", len(seen), n)
			}
			if got := metricValue(t, reg, "strangler_kafka_acked_total"); got != n {
				t.Fatalf("acked_total = %v, want %d", got, n)
			}
		})
	}
}

func TestPublishBrokerDownFailsWithinBound(t *testing.T) {
	const bound = 1500 * time.Millisecond
	t.Run("never connected", func(t *testing.T) {
		cfg := kafka.Config{Brokers: []string{"127.0.0.1:1"}, Topic: topic, PublishTimeout: bound}
		p, err := kafka.NewProducer(cfg, zap.NewNop(), nil)
		if err != nil {
			t.Fatalf("NewProducer: %v", err)
		}
		defer p.Close(context.Background())
		start := time.Now()
		err = p.Publish(context.Background(), delivery.Message{Key: []byte("u"), Value: []byte("{}"), EventID: "e1"})
		if !errors.Is(err, kafka.ErrNotConnected) {
			t.Fatalf("Publish = %v, want ErrNotConnected", err)
		}
		if d := time.Since(start); d > bound {
			t.Fatalf("Publish took %s, bound %s", d, bound)
		}
		if err := p.Ping(context.Background()); err == nil {
			t.Fatal("Ping = nil for a producer that never connected")
		}
	})
	t.Run("broker goes away", func(t *testing.T) {
		c := kafkatest.Start(t, kafkatest.Options{Topic: topic})
		cfg := kafka.Config{Brokers: []string{c.Addr}, Topic: topic, PublishTimeout: bound}
		p := newProducer(t, cfg, nil)
		if err := p.Publish(context.Background(), delivery.Message{Key: []byte("u"), Value: []byte("{}"), EventID: "e0"}); err != nil {
			t.Fatalf("Publish with the broker up: %v", err)
		}
		c.Stop()
		for i := range 3 {
			start := time.Now()
			err := p.Publish(context.Background(), delivery.Message{Key: []byte("u"), Value: []byte("{}"), EventID: fmt.Sprint("e", i+1)})
			if err == nil {
				t.Fatalf("Publish %d with the broker down = nil", i)
			}
			// The bound plus scheduling slack on a shared 2-core machine.
			if d := time.Since(start); d > bound+time.Second {
				t.Fatalf("Publish %d took %s, bound %s: %v", i, d, bound, err)
			}
		}
		if err := p.Ping(context.Background()); err == nil {
			t.Fatal("Ping = nil after failed publishes")
		}
	})
}

// Close returns by its context's deadline even while sarama retries for a
// broker that is gone, and every ack is still settled (with an error)
// shortly after: sarama's goroutines stop by themselves within a retry
// backoff once the client is closed under them.
func TestCloseWithBrokerDownIsBounded(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.Options{Topic: topic})
	cfg := kafka.Config{Brokers: []string{c.Addr}, Topic: topic, RetryMax: 50, MaxRetryBackoff: time.Second}
	p, err := kafka.NewProducer(cfg, zap.NewNop(), nil)
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	waitReady(t, p)
	c.Stop()
	acks := make(chan error, 10)
	for i := range 10 {
		m := delivery.Message{Key: []byte("u"), Value: []byte("{}"), EventID: fmt.Sprint(i)}
		if err := p.Send(context.Background(), m, func(err error) { acks <- err }); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	const bound = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	start := time.Now()
	_ = p.Close(ctx) // reports the deadline; what matters is when it returns
	// The bound plus scheduling slack on a shared 2-core machine.
	if d := time.Since(start); d > bound+time.Second {
		t.Errorf("Close took %s with a %s context", d, bound)
	}
	for i := range 10 {
		select {
		case err := <-acks:
			if err == nil {
				t.Fatalf("ack %d = nil with the broker down", i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of 10 acks settled 10s after Close", i)
		}
	}
	if err := p.Send(context.Background(), delivery.Message{}, func(error) {}); !errors.Is(err, kafka.ErrClosed) {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
}

// metricValue reads one counter or gauge from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}
