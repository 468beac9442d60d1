// Package kafka delivers accepted events to Kafka with one idempotent sarama
// producer that is opened at start and kept for the life of the process. It
// serves two callers: Publish waits for the broker's ack (the `direct`
// delivery mode), and Send hands a message over and reports the ack later (the
// spool forwarder).
package kafka

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

// SASL mechanisms accepted in Config.SASL.Mechanism.
const (
	MechanismNone     = ""
	MechanismPlain    = "PLAIN"
	MechanismSCRAM256 = "SCRAM-SHA-256"
	MechanismSCRAM512 = "SCRAM-SHA-512"
	// MechanismMSKIAM is SASL/OAUTHBEARER carrying an AWS MSK IAM token.
	MechanismMSKIAM = "AWS_MSK_IAM"
)

// Defaults applied by WithDefaults to zero fields.
const (
	DefaultTopic               = "events.v1"
	DefaultVersion             = "2.2.0"
	DefaultClientID            = "strangler"
	DefaultCompression         = "lz4"
	DefaultDialTimeout         = 10 * time.Second
	DefaultReadTimeout         = 10 * time.Second
	DefaultWriteTimeout        = 10 * time.Second
	DefaultMetadataRefresh     = time.Minute
	DefaultPublishTimeout      = 5 * time.Second
	DefaultMaxBufferedBytes    = 32 << 20
	DefaultMaxInflightMessages = 4096
	DefaultRetryMax            = 10
	DefaultRetryBackoff        = 100 * time.Millisecond
	DefaultMaxRetryBackoff     = 2 * time.Second
	DefaultResumeTimeout       = 30 * time.Second
	DefaultHealthInterval      = 5 * time.Second
)

// Config is the `kafka:` section. An empty Brokers list disables Kafka: the
// proxy keeps accepted events in the spool.
type Config struct {
	// Brokers are the bootstrap host:port pairs. Empty ⇒ Kafka disabled.
	Brokers []string `mapstructure:"brokers"`
	// Topic receives the events. "" ⇒ "events.v1".
	Topic string `mapstructure:"topic"`
	// ClientID is sent to the brokers (quotas, logs). "" ⇒ "strangler".
	ClientID string `mapstructure:"client_id"`
	// Version is the Kafka protocol version to speak, e.g. "3.6.0". "" ⇒
	// 2.2.0: the first with SASL re-authentication (KIP-368), which MSK IAM
	// sessions need to outlive their token.
	Version string `mapstructure:"version"`

	SASL SASLConfig `mapstructure:"sasl"`
	TLS  TLSConfig  `mapstructure:"tls"`

	// Compression is one of none, gzip, snappy, lz4, zstd. "" ⇒ lz4.
	//
	// lz4 because events are small JSON documents sent with no linger, so
	// batches are short and zstd's better ratio shrinks to a few percent,
	// while its extra CPU is paid three times: here, on every MSK broker
	// (which decompresses each batch to validate it, and broker CPU is what
	// runs out first on small MSK instances) and in every consumer. lz4 is
	// the cheapest codec on all three that still roughly halves JSON bytes.
	Compression string `mapstructure:"compression"`

	// DialTimeout, ReadTimeout and WriteTimeout bound every broker
	// connection step. 0 ⇒ 10s each.
	DialTimeout  time.Duration `mapstructure:"dial_timeout"`
	ReadTimeout  time.Duration `mapstructure:"read_timeout"`
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	// MetadataRefresh is how often topic metadata is refreshed in the
	// background so a moved leader is found before a produce fails. 0 ⇒ 1m.
	MetadataRefresh time.Duration `mapstructure:"metadata_refresh"`
	// PublishTimeout bounds Publish (direct mode): past it the caller gets
	// ErrAckTimeout and answers 503. 0 ⇒ 5s.
	PublishTimeout time.Duration `mapstructure:"publish_timeout"`

	// MaxBufferedBytes and MaxInflightMessages bound what has been handed to
	// the producer and not yet acked; Send and Publish wait for room.
	// 0 ⇒ 32 MiB and 4096.
	MaxBufferedBytes    int64 `mapstructure:"max_buffered_bytes"`
	MaxInflightMessages int   `mapstructure:"max_inflight_messages"`

	// RetryMax is how many times sarama resends a message before failing it
	// back to the caller; RetryBackoff doubles per attempt up to
	// MaxRetryBackoff. 0 ⇒ 10, 100ms, 2s. Generous retries keep a leader
	// election from failing messages (which would cost a resend from the
	// spool), while the bound keeps Close finite.
	RetryMax        int           `mapstructure:"retry_max"`
	RetryBackoff    time.Duration `mapstructure:"retry_backoff"`
	MaxRetryBackoff time.Duration `mapstructure:"max_retry_backoff"`

	// ResumeTimeout bounds how long a restarted spool may spend reading the
	// end of the topic back to skip what Kafka already holds, counted from
	// the first connection. Past it, what was not found yet is sent again
	// (duplicates, never a loss). 0 ⇒ 30s.
	ResumeTimeout time.Duration `mapstructure:"resume_timeout"`

	// HealthInterval is how often the producer checks that a broker
	// answers: with no ack for that long it sends a metadata request.
	// strangler_kafka_connected and readiness (`delivery: direct`) turn 0
	// once no broker answered for two intervals and that request failed or
	// hung for one (so at most three intervals into an outage), and the
	// outage is logged once then, and once when a broker answers again.
	// 0 ⇒ 5s.
	HealthInterval time.Duration `mapstructure:"health_interval"`
}

// SASLConfig selects broker authentication.
type SASLConfig struct {
	// Mechanism is "" (none), PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or
	// AWS_MSK_IAM.
	Mechanism string `mapstructure:"mechanism"`
	// Username and Password are used by PLAIN and SCRAM.
	Username string `mapstructure:"username"`
	Password string `mapstructure:"password"`
	// Region is the MSK cluster's AWS region (AWS_MSK_IAM only, required).
	Region string `mapstructure:"region"`
	// RoleARN, when set, is assumed through STS on top of the default
	// credential chain (AWS_MSK_IAM only).
	RoleARN string `mapstructure:"role_arn"`
}

// TLSConfig enables TLS to the brokers.
type TLSConfig struct {
	// Enabled turns TLS on. MSK's IAM and SCRAM listeners require it.
	Enabled bool `mapstructure:"enabled"`
	// CAFile is a PEM bundle trusted instead of the system roots. "" ⇒
	// system roots.
	CAFile string `mapstructure:"ca_file"`
	// InsecureSkipVerify disables certificate checks. Default false; for
	// local experiments only.
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify"`
	// ServerName overrides the name checked in the broker certificate. "" ⇒
	// the host of each broker address.
	ServerName string `mapstructure:"server_name"`
}

// Enabled reports whether brokers are configured.
func (c Config) Enabled() bool { return len(c.Brokers) > 0 }

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.Version == "" {
		c.Version = DefaultVersion
	}
	if c.Compression == "" {
		c.Compression = DefaultCompression
	}
	def(&c.DialTimeout, DefaultDialTimeout)
	def(&c.ReadTimeout, DefaultReadTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.MetadataRefresh, DefaultMetadataRefresh)
	def(&c.PublishTimeout, DefaultPublishTimeout)
	def(&c.RetryBackoff, DefaultRetryBackoff)
	def(&c.MaxRetryBackoff, DefaultMaxRetryBackoff)
	def(&c.ResumeTimeout, DefaultResumeTimeout)
	def(&c.HealthInterval, DefaultHealthInterval)
	if c.MaxBufferedBytes == 0 {
		c.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if c.MaxInflightMessages == 0 {
		c.MaxInflightMessages = DefaultMaxInflightMessages
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
	c.SASL.Mechanism = strings.ToUpper(c.SASL.Mechanism)
	return c
}

// Validate checks c after WithDefaults. It does no I/O: the CA file is read
// by NewProducer.
func (c Config) Validate() error {
	var errs []error
	for _, b := range c.Brokers {
		if !strings.Contains(b, ":") {
			errs = append(errs, fmt.Errorf("kafka.brokers: %q has no port", b))
		}
	}
	if c.Topic == "" {
		errs = append(errs, errors.New("kafka.topic: empty"))
	}
	if c.Version != "" {
		if _, err := sarama.ParseKafkaVersion(c.Version); err != nil {
			errs = append(errs, fmt.Errorf("kafka.version: %w", err))
		}
	}
	var codec sarama.CompressionCodec
	if err := codec.UnmarshalText([]byte(c.Compression)); err != nil {
		errs = append(errs, fmt.Errorf("kafka.compression: %q is not none, gzip, snappy, lz4 or zstd", c.Compression))
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{
		{"dial_timeout", c.DialTimeout}, {"read_timeout", c.ReadTimeout}, {"write_timeout", c.WriteTimeout},
		{"metadata_refresh", c.MetadataRefresh}, {"publish_timeout", c.PublishTimeout},
		{"retry_backoff", c.RetryBackoff}, {"max_retry_backoff", c.MaxRetryBackoff},
		{"resume_timeout", c.ResumeTimeout}, {"health_interval", c.HealthInterval},
	} {
		if d.d < 0 {
			errs = append(errs, fmt.Errorf("kafka.%s: negative", d.name))
		}
	}
	if c.MaxBufferedBytes < 0 || c.MaxInflightMessages < 0 || c.RetryMax < 0 {
		errs = append(errs, errors.New("kafka: max_buffered_bytes, max_inflight_messages and retry_max must not be negative"))
	}
	switch c.SASL.Mechanism {
	case MechanismNone:
	case MechanismPlain, MechanismSCRAM256, MechanismSCRAM512:
		if c.SASL.Username == "" || c.SASL.Password == "" {
			errs = append(errs, fmt.Errorf("kafka.sasl: %s needs username and password", c.SASL.Mechanism))
		}
	case MechanismMSKIAM:
		if c.SASL.Region == "" {
			errs = append(errs, errors.New("kafka.sasl.region: required for AWS_MSK_IAM"))
		}
	default:
		errs = append(errs, fmt.Errorf("kafka.sasl.mechanism: %q is not PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or AWS_MSK_IAM", c.SASL.Mechanism))
	}
	if !c.TLS.Enabled && (c.TLS.CAFile != "" || c.TLS.ServerName != "" || c.TLS.InsecureSkipVerify) {
		errs = append(errs, errors.New("kafka.tls: ca_file, server_name or insecure_skip_verify set but enabled is false"))
	}
	return errors.Join(errs...)
}
