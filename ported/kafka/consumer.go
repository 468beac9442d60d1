package kafka

import (
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// ConsumerConfig is the sarama configuration for a consumer of the same
// cluster as the producer: the same brokers' version, timeouts, TLS and
// SASL (MSK IAM included), with no producer settings in play. The shadow
// side reads the legacy side's published messages with it.
func ConsumerConfig(cfg Config, log *zap.Logger) (*sarama.Config, error) {
	if log == nil {
		log = zap.NewNop()
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// The token counter only; kept private.
	m, err := newMetrics(prometheus.NewRegistry(), newHealth(log, time.Now, time.Minute))
	if err != nil {
		return nil, err
	}
	sc, err := saramaConfig(cfg, log.Named("kafka"), m, options{now: time.Now, sign: signMSKToken})
	if err != nil {
		return nil, err
	}
	sc.Consumer.Return.Errors = true
	// Only messages published from now on: the legacy side's messages for
	// requests this process will compare.
	sc.Consumer.Offsets.Initial = sarama.OffsetNewest
	sc.Consumer.Offsets.AutoCommit.Enable = true
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	return sc, sc.Validate()
}
