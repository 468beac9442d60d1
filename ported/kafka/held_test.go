package kafka_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strangler-proxy/strangler/ported/delivery"
	"github.com/strangler-proxy/strangler/ported/kafka"
	"github.com/strangler-proxy/strangler/ported/kafka/kafkatest"
)

// sendAll sends msgs in order and waits for every ack.
func sendAll(t *testing.T, p *kafka.Producer, msgs []delivery.Message) {
	t.Helper()
	acks := make(chan error, len(msgs))
	for _, m := range msgs {
		if err := p.Send(context.Background(), m, func(err error) { acks <- err }); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	for range msgs {
		if err := <-acks; err != nil {
			t.Fatalf("ack: %v", err)
		}
	}
}

// Held finds the records of one spool in the asked range, and only those:
// not another spool's (a fleet shares the topic), not records without a
// position (direct mode), not indexes outside [From, To].
func TestHeldReadsBackOneSpoolsPositions(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.Options{Topic: topic, Partitions: 4})
	p := newProducer(t, kafka.Config{Brokers: []string{c.Addr}, Topic: topic}, prometheus.NewRegistry())
	const mine, other = "00112233aabbccdd", "ffeeddccbbaa9988"
	var msgs []delivery.Message
	var keys [][]byte
	for i := 1; i <= 2000; i++ {
		key := fmt.Appendf(nil, "u_%03d", i%37)
		if i <= 37 {
			keys = append(keys, key)
		}
		m := delivery.Message{Key: key, Value: fmt.Appendf(nil, `{"i":%d}`, i), EventID: fmt.Sprint(i)}
		switch i % 3 {
		case 0:
			m.Position = delivery.Position{Spool: mine, Index: uint64(i)}
		case 1:
			m.Position = delivery.Position{Spool: other, Index: uint64(i)}
		}
		msgs = append(msgs, m)
	}
	sendAll(t, p, msgs)

	tests := []struct {
		name     string
		from, to uint64
		floor    uint64
	}{
		{name: "all of it", from: 1, to: 2000},
		{name: "a window", from: 900, to: 1400},
		{name: "a window with a floor below it", from: 900, to: 1400, floor: 800},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			got, err := p.Held(ctx, delivery.HeldQuery{
				Spool: mine, From: tt.from, To: tt.to, Keys: keys, Floor: tt.floor,
				Since: time.Now().Add(-time.Hour),
			})
			if err != nil {
				t.Fatalf("Held: %v", err)
			}
			var want []uint64
			for i := tt.from; i <= tt.to; i++ {
				if i%3 == 0 {
					want = append(want, i)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("Held = %d indexes %v…, want %d: every third of [%d, %d]", len(got), got[:min(5, len(got))], len(want), tt.from, tt.to)
			}
		})
	}
}
