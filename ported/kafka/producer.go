package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/xdg-go/scram"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/internal/jitter"
	"github.com/strangler-proxy/strangler/ported/delivery"
)

var (
	// ErrDisabled is returned by NewProducer when no brokers are configured.
	ErrDisabled = errors.New("kafka: no brokers configured")
	// ErrNotConnected means the producer has not reached the cluster yet
	// (it keeps trying in the background).
	ErrNotConnected = errors.New("kafka: not connected")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("kafka: producer closed")
	// ErrAckTimeout means Publish gave up waiting for the broker's ack. The
	// message may still be delivered later; the client's retry is then a
	// duplicate that consumers drop by event_id.
	ErrAckTimeout = errors.New("kafka: no broker ack within publish_timeout")
)

// EventIDHeader carries delivery.Message.EventID so consumers can dedupe
// without parsing the value.
const EventIDHeader = "event_id"

// PositionHeader carries delivery.Message.Position as "SPOOL:INDEX" (the
// spool's id, a colon, the entry's decimal index): what a restarted spool
// reads back to skip what Kafka already holds (Held).
const PositionHeader = "spool_position"

// Interface guard: the producer is the `delivery: direct` sink.
var _ delivery.Sink = (*Producer)(nil)

// Option adjusts NewProducer for tests and special deployments.
type Option func(*options)

type options struct {
	now   func() time.Time
	creds aws.CredentialsProvider
	sign  tokenFunc
}

// WithNow sets the clock (MSK IAM token refresh). Default time.Now.
func WithNow(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithCredentialsProvider replaces the AWS default credential chain used to
// sign MSK IAM tokens.
func WithCredentialsProvider(p aws.CredentialsProvider) Option {
	return func(o *options) { o.creds = p }
}

// connectBackoff bounds the pause between attempts to reach the cluster.
const (
	minConnectBackoff = 250 * time.Millisecond
	maxConnectBackoff = 30 * time.Second
)

// Producer is one sarama client and idempotent AsyncProducer, opened once
// the cluster is first reachable and kept until Close (sarama reconnects
// brokers on its own). It is safe for concurrent use.
type Producer struct {
	cfg    Config
	log    *zap.Logger
	sc     *sarama.Config
	m      *metrics
	budget *budget

	closing   chan struct{} // closed by Close
	closeOnce sync.Once
	connected chan struct{} // closed once client and ap are set
	wg        sync.WaitGroup

	// mu guards the fields below. Send holds it shared while writing to
	// ap.Input(), so Close (exclusive) never closes the producer under a
	// writer: sarama panics on a send after AsyncClose.
	mu      sync.RWMutex
	client  sarama.Client
	ap      sarama.AsyncProducer
	dialing sarama.Client // the client of a connect attempt in progress
	closed  bool

	health *health
	now    func() time.Time
}

// pending rides in ProducerMessage.Metadata and routes the outcome back to
// whoever sent the message.
type pending struct {
	ack  func(error)
	size int64
}

// NewProducer validates cfg and starts connecting in the background; it
// fails only on bad configuration, so the proxy starts (and spools) while
// the cluster is away. Close it after the spool.
func NewProducer(cfg Config, log *zap.Logger, reg prometheus.Registerer, opts ...Option) (*Producer, error) {
	cfg = cfg.WithDefaults()
	if !cfg.Enabled() {
		return nil, ErrDisabled
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{now: time.Now, sign: signMSKToken}
	for _, opt := range opts {
		opt(&o)
	}
	log = log.Named("kafka")
	h := newHealth(log, o.now, cfg.HealthInterval)
	m, err := newMetrics(reg, h)
	if err != nil {
		return nil, err
	}
	sc, err := saramaConfig(cfg, log, m, o)
	if err != nil {
		return nil, err
	}
	p := &Producer{
		cfg:       cfg,
		log:       log,
		sc:        sc,
		m:         m,
		budget:    newBudget(cfg.MaxInflightMessages, cfg.MaxBufferedBytes),
		closing:   make(chan struct{}),
		connected: make(chan struct{}),
		health:    h,
		now:       o.now,
	}
	p.wg.Add(2)
	go p.connect()
	go p.monitor()
	return p, nil
}

func saramaConfig(cfg Config, log *zap.Logger, m *metrics, o options) (*sarama.Config, error) {
	sc := sarama.NewConfig()
	sc.ClientID = cfg.ClientID
	if cfg.Version != "" {
		v, err := sarama.ParseKafkaVersion(cfg.Version)
		if err != nil {
			return nil, fmt.Errorf("kafka.version: %w", err)
		}
		sc.Version = v
	}
	sc.MetricRegistry = discardRegistry{}
	sc.ChannelBufferSize = 256

	sc.Net.DialTimeout = cfg.DialTimeout
	sc.Net.ReadTimeout = cfg.ReadTimeout
	sc.Net.WriteTimeout = cfg.WriteTimeout
	// Idempotence requires one request in flight per connection; it is also
	// what keeps a retried batch from overtaking the next one (per-key order).
	sc.Net.MaxOpenRequests = 1

	// Only our topic's metadata: cheaper on big clusters, and NewClient then
	// does not need a reachable broker.
	sc.Metadata.Full = false
	sc.Metadata.RefreshFrequency = cfg.MetadataRefresh
	sc.Metadata.Retry.Max = 3
	sc.Metadata.Retry.Backoff = 250 * time.Millisecond
	sc.Metadata.Timeout = cfg.DialTimeout + cfg.ReadTimeout

	sc.Producer.Idempotent = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	// The broker's wait for in-sync replicas must end before our read
	// timeout does, or a slow ISR looks like a dead broker.
	sc.Producer.Timeout = cfg.ReadTimeout / 2
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	if err := sc.Producer.Compression.UnmarshalText([]byte(cfg.Compression)); err != nil {
		return nil, fmt.Errorf("kafka.compression: %w", err)
	}
	sc.Producer.Retry.Max = cfg.RetryMax
	sc.Producer.Retry.BackoffFunc = func(retries, _ int) time.Duration {
		d := cfg.RetryBackoff << min(retries, 16)
		return jitter.Down(min(d, cfg.MaxRetryBackoff), 0.5)
	}
	// The retry buffer never holds more than what the budget lets in flight;
	// sizing it at least that large means sarama never fails a message with
	// ErrProducerRetryBufferOverflow.
	sc.Producer.Retry.MaxBufferLength = max(4096, cfg.MaxInflightMessages)
	sc.Producer.Retry.MaxBufferBytes = max(32<<20, cfg.MaxBufferedBytes)
	// InitProducerId attempts within one connect attempt; connect retries.
	sc.Producer.Transaction.Retry.Max = 2
	// Held's consumer reads what exists and stops: a fetch at the end of a
	// partition (and the last one before a consumer closes) need not wait
	// the default 500ms for more.
	sc.Consumer.MaxWaitTime = 50 * time.Millisecond

	if cfg.TLS.Enabled {
		tc, err := tlsConfig(cfg.TLS)
		if err != nil {
			return nil, err
		}
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = tc
	}
	if cfg.SASL.Mechanism != MechanismNone {
		sc.Net.SASL.Enable = true
		sc.Net.SASL.Handshake = true
		sc.Net.SASL.Version = sarama.SASLHandshakeV1
	}
	switch cfg.SASL.Mechanism {
	case MechanismPlain:
		sc.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		sc.Net.SASL.User, sc.Net.SASL.Password = cfg.SASL.Username, cfg.SASL.Password
	case MechanismSCRAM256, MechanismSCRAM512:
		sc.Net.SASL.Mechanism = sarama.SASLMechanism(cfg.SASL.Mechanism)
		sc.Net.SASL.User, sc.Net.SASL.Password = cfg.SASL.Username, cfg.SASL.Password
		hash := scram.SHA512
		if cfg.SASL.Mechanism == MechanismSCRAM256 {
			hash = scram.SHA256
		}
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: hash} }
	case MechanismMSKIAM:
		creds := o.creds
		if creds == nil {
			ctx, cancel := context.WithTimeout(context.Background(), cfg.DialTimeout)
			defer cancel()
			var err error
			if creds, err = defaultCredentials(ctx, cfg.SASL); err != nil {
				return nil, err
			}
		}
		sc.Net.SASL.Mechanism = sarama.SASLTypeOAuth
		sc.Net.SASL.TokenProvider = &mskTokenProvider{
			region:  cfg.SASL.Region,
			creds:   creds,
			sign:    o.sign,
			now:     o.now,
			timeout: cfg.DialTimeout,
			log:     log,
			onSign:  m.tokenSigned.Inc,
		}
	}
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("kafka: sarama config: %w", err)
	}
	return sc, nil
}

// connect retries until the cluster answers (a client plus an InitProducerId)
// or Close.
func (p *Producer) connect() {
	defer p.wg.Done()
	backoff := minConnectBackoff
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for attempt := 1; ; attempt++ {
		err := p.dial()
		if err == nil || errors.Is(err, ErrClosed) {
			return
		}
		p.health.failed(err)
		// The outage itself is logged once, by the health check.
		wait := jitter.Down(backoff, 0.5)
		if ce := p.log.Check(zap.DebugLevel, "kafka unreachable; retrying"); ce != nil {
			ce.Write(zap.Int("attempt", attempt), zap.Duration("backoff", wait),
				zap.Strings("brokers", p.cfg.Brokers), zap.Error(err))
		}
		timer.Reset(wait)
		select {
		case <-p.closing:
			return
		case <-timer.C:
		}
		backoff = min(backoff*2, maxConnectBackoff)
	}
}

func (p *Producer) dial() error {
	client, err := sarama.NewClient(p.cfg.Brokers, p.sc)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = client.Close()
		return ErrClosed
	}
	p.dialing = client
	p.mu.Unlock()

	ap, err := sarama.NewAsyncProducerFromClient(client)

	p.mu.Lock()
	defer p.mu.Unlock()
	p.dialing = nil
	if err != nil {
		_ = client.Close() // may already be closed by Close
		if p.closed {
			return ErrClosed
		}
		return fmt.Errorf("kafka producer: %w", err)
	}
	if p.closed {
		_ = ap.Close()
		_ = client.Close()
		return ErrClosed
	}
	p.client, p.ap = client, ap
	p.wg.Add(2)
	go p.drainSuccesses(ap)
	go p.drainErrors(ap)
	close(p.connected)
	p.health.answered()
	p.log.Info("kafka producer connected", zap.Strings("brokers", p.cfg.Brokers), zap.String("topic", p.cfg.Topic))
	return nil
}

func (p *Producer) drainSuccesses(ap sarama.AsyncProducer) {
	defer p.wg.Done()
	for msg := range ap.Successes() {
		p.settle(msg, nil)
	}
}

func (p *Producer) drainErrors(ap sarama.AsyncProducer) {
	defer p.wg.Done()
	for perr := range ap.Errors() {
		p.settle(perr.Msg, perr.Err)
	}
}

func (p *Producer) settle(msg *sarama.ProducerMessage, err error) {
	pd, ok := msg.Metadata.(*pending)
	if !ok {
		return // not ours; sarama only returns what was sent
	}
	p.budget.release(pd.size)
	n, b := p.budget.usage()
	p.m.inflight.Set(float64(n))
	p.m.inflightB.Set(float64(b))
	if err != nil {
		p.m.errors.Inc()
		p.health.failed(err)
		pd.ack(fmt.Errorf("kafka produce: %w", err))
		return
	}
	p.m.acked.Inc()
	p.health.answered()
	pd.ack(nil)
}

// Send hands m to the producer and returns once sarama has taken it; ack is
// then called exactly once, from a producer goroutine, with nil when the
// brokers acked it (acks=all) or the error that failed it after retries. If
// Send returns an error, ack is never called. m's byte slices must stay
// unchanged until ack runs. Messages sent in order by one goroutine keep
// their order per key (idempotent producer, one request in flight). Send
// waits while max_inflight_messages or max_buffered_bytes is reached; it
// returns ErrNotConnected at once while the cluster has not been reached.
func (p *Producer) Send(ctx context.Context, m delivery.Message, ack func(error)) error {
	select {
	case <-p.connected:
	case <-p.closing:
		return ErrClosed
	default:
		return ErrNotConnected
	}
	size := int64(len(m.Key) + len(m.Value))
	if err := p.budget.acquire(ctx, p.closing, size); err != nil {
		return err
	}
	msg := &sarama.ProducerMessage{
		Topic:    p.cfg.Topic,
		Key:      sarama.ByteEncoder(m.Key),
		Value:    sarama.ByteEncoder(m.Value),
		Metadata: &pending{ack: ack, size: size},
	}
	msg.Headers = headers(m)
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		p.budget.release(size)
		return ErrClosed
	}
	select {
	case p.ap.Input() <- msg:
		p.m.produced.Inc()
		n, b := p.budget.usage()
		p.m.inflight.Set(float64(n))
		p.m.inflightB.Set(float64(b))
		return nil
	case <-ctx.Done():
		p.budget.release(size)
		return ctx.Err()
	case <-p.closing:
		p.budget.release(size)
		return ErrClosed
	}
}

var (
	eventIDKey  = []byte(EventIDHeader)
	positionKey = []byte(PositionHeader)
)

// headers are m's event_id and spool_position headers, in one allocation.
func headers(m delivery.Message) []sarama.RecordHeader {
	pos := m.Position.Spool != ""
	if m.EventID == "" && !pos {
		return nil
	}
	hs := make([]sarama.RecordHeader, 0, 2)
	buf := make([]byte, 0, len(m.EventID)+len(m.Position.Spool)+21)
	if m.EventID != "" {
		buf = append(buf, m.EventID...)
		hs = append(hs, sarama.RecordHeader{Key: eventIDKey, Value: buf[:len(buf):len(buf)]})
	}
	if pos {
		start := len(buf)
		buf = append(buf, m.Position.Spool...)
		buf = append(buf, ':')
		buf = strconv.AppendUint(buf, m.Position.Index, 10)
		hs = append(hs, sarama.RecordHeader{Key: positionKey, Value: buf[start:]})
	}
	return hs
}

// parsePosition reads a spool_position header value.
func parsePosition(v []byte) (delivery.Position, bool) {
	i := bytes.LastIndexByte(v, ':')
	if i <= 0 {
		return delivery.Position{}, false
	}
	idx, err := strconv.ParseUint(string(v[i+1:]), 10, 64)
	if err != nil {
		return delivery.Position{}, false
	}
	return delivery.Position{Spool: string(v[:i]), Index: idx}, true
}

// Publish sends m and waits for the brokers' ack, at most publish_timeout:
// the `delivery: direct` sink. Any error means the event is not known to be
// in Kafka and the caller should answer 503.
func (p *Producer) Publish(ctx context.Context, m delivery.Message) error {
	tctx, cancel := context.WithTimeout(ctx, p.cfg.PublishTimeout)
	defer cancel()
	// Publish may return before sarama is done with the bytes (timeout), and
	// callers such as a fasthttp handler reuse their buffers after return.
	m = delivery.Message{
		Key:     append([]byte(nil), m.Key...),
		Value:   append([]byte(nil), m.Value...),
		EventID: m.EventID,
	}
	done := make(chan error, 1)
	err := p.Send(tctx, m, func(err error) { done <- err })
	if err == nil {
		select {
		case err = <-done:
		case <-tctx.Done():
			err = tctx.Err()
		}
	}
	if err == nil {
		return nil
	}
	if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		err = ErrAckTimeout
		// No answer in time counts against readiness like a failure.
		p.health.failed(err)
	}
	return fmt.Errorf("publish %s: %w: %w", m.EventID, delivery.ErrUnavailable, err)
}

// Ping is the readiness of `delivery: direct`: nil while the producer is
// connected (see Connected) and the latest outcome (a produce, a probe, a
// publish waiting longer than publish_timeout) was not a failure.
func (p *Producer) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-p.closing:
		return ErrClosed
	default:
	}
	return p.health.err()
}

// Connected reports what strangler_kafka_connected shows: a broker has
// answered, and no outage is declared since (no answer for two health
// intervals while the probe asked since then failed or hung an interval).
func (p *Producer) Connected() bool { return p.health.connected() }

// Close stops taking messages, lets sarama flush what it holds (retrying
// as configured) and stops the producer's goroutines, within ctx. A
// closeGrace before ctx's deadline (at once when less is left, or when ctx
// ends without one) the client is closed under sarama, so its retries fail
// at once and their acks report the error; sarama then needs at most one
// retry backoff to stop. If it is still stopping when ctx ends, Close
// returns without waiting (its goroutines end by themselves), so that the
// shutdown keeps its bound. Close the spool (which uses Send) before the
// producer.
func (p *Producer) Close(ctx context.Context) error {
	p.closeOnce.Do(func() { close(p.closing) })
	p.mu.Lock()
	already := p.closed
	p.closed = true
	ap, client, dialing := p.ap, p.client, p.dialing
	p.mu.Unlock()
	if already {
		p.wg.Wait()
		return nil
	}
	if dialing != nil {
		_ = dialing.Close() // aborts a connect attempt stuck on InitProducerId
	}
	if ap != nil {
		ap.AsyncClose()
	}
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	var err error
	force, stop := p.forceAt(ctx)
	defer stop()
	select {
	case <-done:
	case <-force:
		err = fmt.Errorf("kafka close: flush cut short: %w", context.DeadlineExceeded)
		if client != nil {
			_ = client.Close()
		}
		select {
		case <-done:
		case <-ctx.Done():
			p.m.unregister()
			return fmt.Errorf("kafka close: %w (sarama still stopping, not waited for)", ctx.Err())
		}
	}
	if client != nil && !client.Closed() {
		if cerr := client.Close(); cerr != nil && !errors.Is(cerr, sarama.ErrClosedClient) {
			err = errors.Join(err, fmt.Errorf("kafka close client: %w", cerr))
		}
	}
	p.m.unregister()
	return err
}

// forceAt fires when Close must stop waiting for the flush: closeGrace
// before ctx's deadline, or when ctx ends.
func (p *Producer) forceAt(ctx context.Context) (<-chan struct{}, func()) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return ctx.Done(), func() {}
	}
	fire := make(chan struct{})
	t := time.AfterFunc(time.Until(deadline)-p.closeGrace(), func() { close(fire) })
	return fire, func() { t.Stop() }
}

// closeGrace is what sarama needs to stop once its client is closed: the
// longest retry backoff it may be sleeping in, and a second.
func (p *Producer) closeGrace() time.Duration { return p.cfg.MaxRetryBackoff + time.Second }
