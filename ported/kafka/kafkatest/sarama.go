package kafkatest

import (
	"time"

	"github.com/IBM/sarama"

	"github.com/strangler-proxy/strangler/ported/kafka"
)

// ReadAll reads every record of the topic with a sarama consumer, partition
// by partition up to the high watermark it finds at the call, each
// partition's records in log order. It fails the test on any error or if
// reading takes longer than timeout.
func (c *Cluster) ReadAll(timeout time.Duration) map[int32][]*sarama.ConsumerMessage {
	c.t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_2_0_0
	cfg.MetricRegistry = kafka.DiscardMetrics()
	cfg.Net.DialTimeout, cfg.Net.ReadTimeout = 5*time.Second, 5*time.Second
	if c.cliTLS != nil {
		cfg.Net.TLS.Enable, cfg.Net.TLS.Config = true, c.cliTLS.Clone()
	}
	if c.o.Mechanism != "" {
		cfg.Net.SASL.Enable, cfg.Net.SASL.User, cfg.Net.SASL.Password = true, c.o.User, c.o.Pass
		cfg.Net.SASL.Mechanism = sarama.SASLMechanism(c.o.Mechanism)
		if c.o.Mechanism != "PLAIN" {
			c.t.Fatalf("kafkatest.ReadAll: SASL %s is not wired for sarama here", c.o.Mechanism)
		}
	}
	client, err := sarama.NewClient([]string{c.Addr}, cfg)
	if err != nil {
		c.t.Fatalf("sarama client: %v", err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		c.t.Fatalf("sarama consumer: %v", err)
	}
	defer consumer.Close()
	parts, err := client.Partitions(c.o.Topic)
	if err != nil {
		c.t.Fatalf("partitions of %s: %v", c.o.Topic, err)
	}
	deadline := time.After(timeout)
	out := map[int32][]*sarama.ConsumerMessage{}
	for _, p := range parts {
		hwm, err := client.GetOffset(c.o.Topic, p, sarama.OffsetNewest)
		if err != nil {
			c.t.Fatalf("high watermark of %s/%d: %v", c.o.Topic, p, err)
		}
		low, err := client.GetOffset(c.o.Topic, p, sarama.OffsetOldest)
		if err != nil {
			c.t.Fatalf("low watermark of %s/%d: %v", c.o.Topic, p, err)
		}
		if low >= hwm {
			continue
		}
		pc, err := consumer.ConsumePartition(c.o.Topic, p, low)
		if err != nil {
			c.t.Fatalf("consume %s/%d: %v", c.o.Topic, p, err)
		}
		for done := false; !done; {
			select {
			case m := <-pc.Messages():
				out[p] = append(out[p], m)
				done = m.Offset >= hwm-1
			case err := <-pc.Errors():
				c.t.Fatalf("consume %s/%d: %v", c.o.Topic, p, err)
			case <-deadline:
				c.t.Fatalf("reading %s/%d took more than %s (%d of %d records)", c.o.Topic, p, timeout, len(out[p]), hwm-low)
			}
		}
		pc.AsyncClose()
		for range pc.Messages() {
		}
	}
	return out
}
