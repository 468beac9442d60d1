package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/strangler-proxy/strangler/ported/delivery"
	"github.com/strangler-proxy/strangler/ported/kafka"
	"github.com/strangler-proxy/strangler/ported/kafka/kafkatest"
)

// waitFor polls cond until it holds, failing the test after a generous
// bound (the check itself has no timing in it).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within 20s: %s", what)
		}
	}
}

// strangler_kafka_connected and Ping follow whether a broker answers, for
// a broker that is gone (connections refused) and for a partition
// (connections open, requests hang): each outage logs one line when it
// starts and one when it ends, however long it lasts.
func TestConnectedFollowsOutagesAndPartitions(t *testing.T) {
	tests := []struct {
		name      string
		cut, heal func(c *kafkatest.Cluster)
	}{
		{"broker gone", (*kafkatest.Cluster).Stop, (*kafkatest.Cluster).Restart},
		{"network partition", (*kafkatest.Cluster).Partition, (*kafkatest.Cluster).Heal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := kafkatest.Start(t, kafkatest.Options{Topic: topic, DataDir: t.TempDir()})
			core, logs := observer.New(zap.InfoLevel)
			reg := prometheus.NewRegistry()
			const interval = 100 * time.Millisecond
			p, err := kafka.NewProducer(kafka.Config{
				Brokers: []string{c.Addr}, Topic: topic, HealthInterval: interval,
				DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
				PublishTimeout: 500 * time.Millisecond,
			}, zap.New(core), reg)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = p.Close(ctx)
			}()
			connected := func() bool { return metricValue(t, reg, "strangler_kafka_connected") == 1 }
			waitFor(t, "connected", connected)
			if err := p.Ping(context.Background()); err != nil {
				t.Fatalf("Ping while connected: %v", err)
			}

			tt.cut(c)
			waitFor(t, "strangler_kafka_connected 0 after the cut", func() bool { return !connected() })
			if err := p.Ping(context.Background()); err == nil {
				t.Error("Ping = nil while no broker answers")
			}
			// Requests keep failing meanwhile; that is not news.
			for range 3 {
				_ = p.Publish(context.Background(), delivery.Message{Key: []byte("u"), Value: []byte("{}"), EventID: "e"})
			}
			time.Sleep(10 * interval)
			tt.heal(c)
			waitFor(t, "strangler_kafka_connected 1 after healing", connected)
			waitFor(t, "the outage's end logged", func() bool { return logs.FilterMessage("kafka reachable again").Len() == 1 })
			waitFor(t, "Ping ok after healing", func() bool { return p.Ping(context.Background()) == nil })

			if n := logs.FilterMessage("kafka unreachable: no broker answer").Len(); n != 1 {
				t.Errorf("%d lines for the outage's start, want 1", n)
			}
			if n := logs.FilterMessage("kafka reachable again").Len(); n != 1 {
				t.Errorf("%d lines for the outage's end, want 1", n)
			}
			for _, e := range logs.All() {
				if e.Level >= zap.WarnLevel && e.Message != "kafka unreachable: no broker answer" {
					t.Errorf("other warning during the outage: %s %v", e.Message, e.ContextMap())
				}
			}
		})
	}
}

// With no brokers configured the series exists, at 0.
func TestConnectedExistsWithoutBrokers(t *testing.T) {
	reg := prometheus.NewRegistry()
	unregister, err := kafka.RegisterDisabled(reg)
	if err != nil {
		t.Fatal(err)
	}
	if v := metricValue(t, reg, "strangler_kafka_connected"); v != 0 {
		t.Errorf("strangler_kafka_connected = %v without brokers, want 0", v)
	}
	unregister()
	if _, err := kafka.RegisterDisabled(reg); err != nil {
		t.Errorf("register again after unregister: %v", err)
	}
}
