package spool

import (
	"errors"
	"fmt"
	"time"
)

// Defaults applied by WithDefaults to zero fields.
const (
	DefaultDir                = "var/spool"
	DefaultMaxBytes           = 1 << 30
	DefaultMaxBatch           = 512
	DefaultQueueSize          = 4096
	DefaultSegmentSize        = 4 << 20
	DefaultFullRetryAfter     = 30 * time.Second
	DefaultForwardWindow      = 1024
	DefaultRetryBackoff       = 100 * time.Millisecond
	DefaultMaxRetryBackoff    = 10 * time.Second
	DefaultCheckpointInterval = 100 * time.Millisecond
	DefaultIdempotencyWindow  = 24 * time.Hour
	DefaultIdempotencyMaxKeys = 250_000
)

// Config is the `spool:` section: the durable local log in front of Kafka.
type Config struct {
	// Dir holds the log segments and the checkpoint. "" ⇒ var/spool.
	Dir string `mapstructure:"dir"`
	// MaxBytes caps the on-disk bytes of events not yet acked by Kafka;
	// past it Publish answers BackpressureError. 0 ⇒ 1 GiB. The directory
	// can hold up to about two segments more (acked entries wait for their
	// segment to be dropped); a single event larger than the cap is still
	// accepted into an empty spool.
	MaxBytes int64 `mapstructure:"max_bytes"`
	// MaxEntries caps the number of un-acked events. 0 ⇒ no count cap.
	MaxEntries int64 `mapstructure:"max_entries"`
	// GroupCommitInterval is how long an append that finds no other append
	// waiting holds its fsync for company. 0 (the default) never holds:
	// under load appends queue behind the running fsync and the next one
	// covers them all, so a hold only adds latency there (measured: a 2ms
	// hold halved intake throughput at 32 connections). A hold saves fsyncs
	// only on a lightly loaded disk.
	GroupCommitInterval time.Duration `mapstructure:"group_commit_interval"`
	// MaxBatch caps the appends covered by one fsync. 0 ⇒ 512.
	MaxBatch int `mapstructure:"max_batch"`
	// QueueSize bounds appends waiting for the committer. 0 ⇒ 4096.
	QueueSize int `mapstructure:"queue_size"`
	// SegmentSize is the target size of one log file. Acked entries are
	// dropped by rewriting the rest of their segment, so smaller segments
	// make that cheaper. 0 ⇒ 4 MiB.
	SegmentSize int `mapstructure:"segment_size"`
	// FullRetryAfter is the Retry-After given when the spool is full and
	// Kafka is not draining it. 0 ⇒ 30s. (While it drains: 1s.)
	FullRetryAfter time.Duration `mapstructure:"full_retry_after"`

	// ForwardWindow bounds events sent to Kafka and not yet acked; of one
	// key there is never more than one in flight. 0 ⇒ 1024.
	ForwardWindow int `mapstructure:"forward_window"`
	// RetryBackoff is the first pause after a failed send; it doubles up to
	// MaxRetryBackoff while the brokers stay away, and each pause is drawn
	// from [d/2, d] (internal/jitter). 0 ⇒ 100ms and 10s.
	RetryBackoff    time.Duration `mapstructure:"retry_backoff"`
	MaxRetryBackoff time.Duration `mapstructure:"max_retry_backoff"`
	// CheckpointInterval is the most often the acked position is fsynced.
	// A crash replays at most this much already-acked traffic. 0 ⇒ 100ms.
	CheckpointInterval time.Duration `mapstructure:"checkpoint_interval"`

	// IdempotencyWindow is how long the Idempotency-Key of an accepted
	// event is remembered: a retry within it gets the first answer and
	// publishes nothing. 0 ⇒ 24h.
	IdempotencyWindow time.Duration `mapstructure:"idempotency_window"`
	// IdempotencyMaxKeys caps the keys remembered (about 190 bytes of
	// memory each: 250,000 ≈ 48 MB); past it the oldest are forgotten
	// before their window ends, and counted. 0 ⇒ 250,000.
	IdempotencyMaxKeys int `mapstructure:"idempotency_max_keys"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Dir == "" {
		c.Dir = DefaultDir
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.SegmentSize == 0 {
		c.SegmentSize = DefaultSegmentSize
	}
	if c.FullRetryAfter == 0 {
		c.FullRetryAfter = DefaultFullRetryAfter
	}
	if c.ForwardWindow == 0 {
		c.ForwardWindow = DefaultForwardWindow
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.MaxRetryBackoff == 0 {
		c.MaxRetryBackoff = DefaultMaxRetryBackoff
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = DefaultCheckpointInterval
	}
	if c.IdempotencyWindow == 0 {
		c.IdempotencyWindow = DefaultIdempotencyWindow
	}
	if c.IdempotencyMaxKeys == 0 {
		c.IdempotencyMaxKeys = DefaultIdempotencyMaxKeys
	}
	return c
}

// Validate checks c after WithDefaults; it does no I/O.
func (c Config) Validate() error {
	var errs []error
	if c.MaxBytes < 0 || c.MaxEntries < 0 {
		errs = append(errs, errors.New("spool: max_bytes and max_entries must not be negative"))
	}
	if c.MaxBatch < 0 || c.QueueSize < 0 || c.SegmentSize < 0 || c.ForwardWindow < 0 {
		errs = append(errs, errors.New("spool: max_batch, queue_size, segment_size and forward_window must not be negative"))
	}
	if c.SegmentSize > 0 && c.SegmentSize < 64<<10 {
		errs = append(errs, fmt.Errorf("spool.segment_size: %d is below 64 KiB", c.SegmentSize))
	}
	if c.MaxBytes > 0 && c.SegmentSize > 0 && c.MaxBytes < int64(c.SegmentSize) {
		errs = append(errs, fmt.Errorf("spool.max_bytes: %d is below segment_size %d", c.MaxBytes, c.SegmentSize))
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{
		{"group_commit_interval", c.GroupCommitInterval},
		{"full_retry_after", c.FullRetryAfter}, {"retry_backoff", c.RetryBackoff},
		{"max_retry_backoff", c.MaxRetryBackoff}, {"checkpoint_interval", c.CheckpointInterval},
		{"idempotency_window", c.IdempotencyWindow},
	} {
		if d.d < 0 {
			errs = append(errs, fmt.Errorf("spool.%s: negative", d.name))
		}
	}
	if c.IdempotencyMaxKeys < 0 {
		errs = append(errs, errors.New("spool.idempotency_max_keys: negative"))
	}
	if c.RetryBackoff > c.MaxRetryBackoff {
		errs = append(errs, errors.New("spool: retry_backoff exceeds max_retry_backoff"))
	}
	return errors.Join(errs...)
}
