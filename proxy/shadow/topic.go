package shadow

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/compare"
)

// TopicOptions configure a Topic.
type TopicOptions struct {
	// Brokers and Config reach the cluster (kafka.ConsumerConfig: the
	// producer's TLS and SASL). Required.
	Brokers []string
	Config  *sarama.Config
	// Topic the legacy side's messages reach, and the consumer Group of
	// Strangler's own (one per instance: each looks for its own requests'
	// messages). Required.
	Topic, Group string
	// KeyPath finds a message's key in its value. Empty: DefaultKeyPath.
	KeyPath string
	// Wait is how long a comparison waits for a message. Zero: 10s.
	Wait time.Duration
	// MaxWaiting bounds the comparisons waiting at once. Zero: 4096.
	MaxWaiting int
	// Keep is how many arrived messages nobody asked for yet are kept.
	// Zero: DefaultRecorded.
	Keep   int
	Logger *zap.Logger
	Now    func() time.Time
}

// Topic is a LegacySource that consumes the topic the legacy side's
// messages reach, as a log shipper publishes them, with a consumer group
// of its own, from the newest offset. Messages arrive some time after the
// legacy answer: a comparison waits for its message (Await) off the worker
// pool. Its goroutines — the consumer loop, its error drain and the
// waiters' sweeper — stop with Close.
type Topic struct {
	o     TopicOptions
	log   *zap.Logger
	now   func() time.Time
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
	found atomic.Uint64
	// health is "" once the group consumes every partition, else why not.
	health     atomic.Pointer[string]
	readySince atomic.Pointer[time.Time]

	kept ring

	mu      sync.Mutex
	waiters map[string][]waiter
	waiting int
}

type waiter struct {
	deadline time.Time
	fn       func([]byte, bool)
	watch    bool // leaves the message for Take and Await (Watch)
}

// Interface guards.
var (
	_ Awaiter                     = (*Topic)(nil)
	_ sarama.ConsumerGroupHandler = topicHandler{}
)

// NewTopic starts consuming in the background: a cluster that is away is
// retried, and Health says so meanwhile.
func NewTopic(o TopicOptions) (*Topic, error) {
	switch {
	case len(o.Brokers) == 0:
		return nil, errors.New("legacy events topic: no brokers (kafka.brokers)")
	case o.Config == nil || o.Topic == "" || o.Group == "":
		return nil, errors.New("legacy events topic: config, topic and group are required")
	}
	if o.KeyPath == "" {
		o.KeyPath = DefaultKeyPath
	}
	if o.Wait <= 0 {
		o.Wait = 10 * time.Second
	}
	if o.MaxWaiting <= 0 {
		o.MaxWaiting = 4096
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	t := &Topic{o: o, log: o.Logger.Named("legacy_topic"), now: o.Now, kept: newRing(o.Keep), waiters: map[string][]waiter{}}
	t.setHealth("joining consumer group " + o.Group)
	t.ctx, t.stop = context.WithCancel(context.Background())
	t.wg.Go(t.consume)
	t.wg.Go(t.sweep)
	return t, nil
}

func (t *Topic) setHealth(why string) {
	if why == "" {
		t.health.Store(nil)
		return
	}
	t.health.Store(&why)
}

// Health is "" while the group consumes every partition of the topic.
func (t *Topic) Health() string {
	if h := t.health.Load(); h != nil {
		return *h
	}
	return ""
}

// ReadySince is when the group last got every partition: a request
// answered before it may have published before the consumer's first
// offset, so its message proves nothing by its absence.
func (t *Topic) ReadySince() time.Time {
	if p := t.readySince.Load(); p != nil {
		return *p
	}
	return time.Time{}
}

// Found counts the messages handed to a comparison.
func (t *Topic) Found() uint64 { return t.found.Load() }

// Name names the topic.
func (t *Topic) Name() string { return "the Kafka topic " + t.o.Topic }

// Wait is how long a comparison waits for its message.
func (t *Topic) Wait() time.Duration { return t.o.Wait }

// Take returns and forgets an arrived message with this key.
func (t *Topic) Take(key string) ([]byte, bool) {
	v, ok := t.kept.take(key)
	if ok {
		t.found.Add(1)
	}
	return v, ok
}

// Await calls fn once with the message when it arrives, or with false at
// deadline. It returns false (and never calls fn) when too many
// comparisons wait already.
func (t *Topic) Await(key string, deadline time.Time, fn func([]byte, bool)) bool {
	t.mu.Lock()
	if v, ok := t.kept.take(key); ok { // arrived meanwhile
		t.mu.Unlock()
		t.found.Add(1)
		fn(v, true)
		return true
	}
	if t.waiting >= t.o.MaxWaiting || t.ctx.Err() != nil {
		t.mu.Unlock()
		return false
	}
	t.waiters[key] = append(t.waiters[key], waiter{deadline: deadline, fn: fn})
	t.waiting++
	t.mu.Unlock()
	return true
}

// Watch calls fn once with the message with this key when it arrives
// (at once if it has), or with false at deadline, as Await does, but
// leaves the message for Take and Await: a capture records the message a
// comparison also waits for. The message is shared: fn must not modify
// it. It returns false (and never calls fn) when too many wait already.
func (t *Topic) Watch(key string, deadline time.Time, fn func([]byte, bool)) bool {
	t.mu.Lock()
	if v, ok := t.kept.peek(key); ok {
		t.mu.Unlock()
		fn(v, true)
		return true
	}
	if t.waiting >= t.o.MaxWaiting || t.ctx.Err() != nil {
		t.mu.Unlock()
		return false
	}
	t.waiters[key] = append(t.waiters[key], waiter{deadline: deadline, fn: fn, watch: true})
	t.waiting++
	t.mu.Unlock()
	return true
}

// arrived hands a message to whoever waits for it, or keeps it: kept too
// when only watchers wait, for the comparison that asks later.
func (t *Topic) arrived(value []byte) {
	key, ok := compare.Lookup(value, t.o.KeyPath)
	if !ok || key == "" {
		return
	}
	t.mu.Lock()
	ws := t.waiters[key]
	taken := false
	for _, w := range ws {
		taken = taken || !w.watch
	}
	if len(ws) > 0 {
		delete(t.waiters, key)
		t.waiting -= len(ws)
	}
	if !taken {
		// Under the lock: Await checks kept and registers atomically.
		t.kept.put(key, value)
	}
	t.mu.Unlock()
	for _, w := range ws {
		if !w.watch {
			t.found.Add(1)
		}
		w.fn(value, true)
	}
}

// sweep tells the waiters whose deadline passed that nothing came.
func (t *Topic) sweep() {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
		}
		now := t.now()
		var late []waiter
		t.mu.Lock()
		for k, ws := range t.waiters {
			keep := ws[:0]
			for _, w := range ws {
				if now.After(w.deadline) {
					late = append(late, w)
				} else {
					keep = append(keep, w)
				}
			}
			t.waiting -= len(ws) - len(keep)
			if len(keep) == 0 {
				delete(t.waiters, k)
			} else {
				t.waiters[k] = keep
			}
		}
		t.mu.Unlock()
		for _, w := range late {
			w.fn(nil, false)
		}
	}
}

// consume joins the group and consumes until Close, retrying a cluster
// that is away with a growing pause.
func (t *Topic) consume() {
	backoff := 250 * time.Millisecond
	for t.ctx.Err() == nil {
		err := t.session()
		if t.ctx.Err() != nil {
			return
		}
		t.setHealth(fmt.Sprintf("consumer group %s: %v", t.o.Group, err))
		t.readySince.Store(nil)
		t.log.Warn("legacy events topic: consumer stopped; retrying", zap.String("topic", t.o.Topic), zap.Duration("in", backoff), zap.Error(err))
		select {
		case <-t.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// session runs one consumer group until it fails or Close.
func (t *Topic) session() error {
	client, err := sarama.NewClient(t.o.Brokers, t.o.Config)
	if err != nil {
		return err
	}
	defer func() { closeBounded(client.Close) }()
	group, err := sarama.NewConsumerGroupFromClient(t.o.Group, client)
	if err != nil {
		return err
	}
	var drain sync.WaitGroup
	drain.Go(func() { // sarama deadlocks unless Errors is drained
		for err := range group.Errors() {
			t.log.Warn("legacy events topic", zap.String("topic", t.o.Topic), zap.Error(err))
		}
	})
	defer func() {
		// Closing the group closes Errors, which ends the drain; a group
		// stuck closing leaves the drain to end when it does.
		if closeBounded(group.Close) {
			drain.Wait()
		}
	}()
	h := topicHandler{t: t, client: client}
	for t.ctx.Err() == nil {
		if err := group.Consume(t.ctx, []string{t.o.Topic}, h); err != nil {
			return err
		}
	}
	return nil
}

// closeBounded closes without letting a stuck broker hold Close for ever;
// it reports whether the close finished in time.
func closeBounded(c func() error) bool {
	done := make(chan struct{})
	go func() { _ = c(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(5 * time.Second):
		return false
	}
}

// Close stops consuming. Waiting comparisons are dropped: the report is
// going away with the process.
func (t *Topic) Close() error {
	t.stop()
	t.wg.Wait()
	t.mu.Lock()
	clear(t.waiters)
	t.waiting = 0
	t.mu.Unlock()
	return nil
}

type topicHandler struct {
	t      *Topic
	client sarama.Client
}

// Setup checks the group holds every partition: a group shared with
// another instance sees only part of the legacy side's messages.
func (h topicHandler) Setup(s sarama.ConsumerGroupSession) error {
	t := h.t
	all, err := h.client.Partitions(t.o.Topic)
	switch got := len(s.Claims()[t.o.Topic]); {
	case err != nil:
		t.setHealth(fmt.Sprintf("partitions of %s: %v", t.o.Topic, err))
	case got < len(all):
		t.setHealth(fmt.Sprintf("consumer group %s holds %d of the %d partitions of %s: another member shares it; give each instance its own group",
			t.o.Group, got, len(all), t.o.Topic))
	default:
		now := t.now()
		t.readySince.Store(&now)
		t.setHealth("")
	}
	return nil
}

func (h topicHandler) Cleanup(sarama.ConsumerGroupSession) error {
	h.t.readySince.Store(nil)
	h.t.setHealth("consumer group " + h.t.o.Group + " is rebalancing")
	return nil
}

func (h topicHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-c.Messages():
			if !ok {
				return nil
			}
			h.t.arrived(m.Value)
			s.MarkMessage(m, "")
		case <-s.Context().Done():
			return nil
		}
	}
}
