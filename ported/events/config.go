package events

import (
	"fmt"
	"time"
)

// Defaults applied by Config.WithDefaults to zero values.
const (
	// DefaultMaxBodyBytes is the contract's body limit; the PHP twin has the
	// same constant, so changing it breaks parity until PHP changes too.
	DefaultMaxBodyBytes = 64 << 10
	// DefaultPublishTimeout bounds one Sink.Publish: a group-committed spool
	// fsync takes milliseconds, a broker ack under acks=all a few seconds.
	DefaultPublishTimeout = 5 * time.Second
)

// Delivery modes of Config.Delivery.
const (
	DeliverySpool  = "spool"
	DeliveryDirect = "direct"
)

// Config is the `events:` section of config.yaml. It is static: a change
// needs a restart.
type Config struct {
	// MaxBodyBytes answers 413 to larger bodies. Zero means 65536.
	MaxBodyBytes int `mapstructure:"max_body_bytes"`
	// Delivery picks the Sink main builds: "spool" (append to the durable
	// local spool, a forwarder moves it to Kafka) or "direct" (the 202 waits
	// for the broker's ack). Empty means "spool". The handler itself only
	// sees a delivery.Sink.
	Delivery string `mapstructure:"delivery"`
	// PublishTimeout bounds the wait for the sink before answering 503.
	// Zero means 5s.
	PublishTimeout time.Duration `mapstructure:"publish_timeout"`
}

// WithDefaults returns c with zero values replaced by their defaults.
func (c Config) WithDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Delivery == "" {
		c.Delivery = DeliverySpool
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	return c
}

// Validate checks c after WithDefaults. It does no I/O.
func (c Config) Validate() error {
	switch {
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("events: max_body_bytes %d < 0", c.MaxBodyBytes)
	case c.Delivery != DeliverySpool && c.Delivery != DeliveryDirect:
		return fmt.Errorf("events: delivery %q, want %q or %q", c.Delivery, DeliverySpool, DeliveryDirect)
	case c.PublishTimeout < 0:
		return fmt.Errorf("events: publish_timeout %s < 0", c.PublishTimeout)
	}
	return nil
}
