package shadow

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strangler-proxy/strangler/ported/kafka"
	"github.com/strangler-proxy/strangler/ported/kafka/kafkatest"
)

func newTopic(t *testing.T, c *kafkatest.Cluster, group string) *Topic {
	t.Helper()
	sc, err := kafka.ConsumerConfig(kafka.Config{Brokers: []string{c.Addr}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := NewTopic(TopicOptions{Brokers: []string{c.Addr}, Config: sc, Topic: "legacy.events", Group: group, Wait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tp.Close() })
	return tp
}

func waitHealthy(t *testing.T, tp *Topic) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for tp.Health() != "" || tp.ReadySince().IsZero() {
		if time.Now().After(deadline) {
			t.Fatalf("topic never ready: %s", tp.Health())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// produce publishes as the monolith's shipper would, with another client
// (franz-go's): sarama is the one under test, consuming.
func produce(t *testing.T, addr string, values ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, v := range values {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "legacy.events", Key: []byte("u_1"), Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// The legacy side's messages are consumed from the topic, over TCP from a
// Kafka-protocol broker, by a group of Strangler's own, and handed to the
// comparison waiting for each by its key.
func TestTopicDeliversMessagesByKey(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.Options{Topic: "legacy.events", Partitions: 3})
	tp := newTopic(t, c, "strangler-shadow-test")
	if tp.Health() == "" {
		t.Fatal("healthy before joining the group")
	}
	waitHealthy(t, tp)

	var mu sync.Mutex
	got := map[string]string{}
	var wg sync.WaitGroup
	for i := range 5 {
		key := fmt.Sprintf("ev-%d", i)
		wg.Add(1)
		if !tp.Await(key, time.Now().Add(10*time.Second), func(msg []byte, ok bool) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if ok {
				got[key] = string(msg)
			}
		}) {
			t.Fatal("Await refused")
		}
	}
	var values []string
	for i := range 5 {
		values = append(values, fmt.Sprintf(`{"event_id":"ev-%d","amount":%d}`, i, i))
	}
	values = append(values, `{"event_id":"nobody-waits"}`, `not json`)
	produce(t, c.Addr, values...)
	wg.Wait()
	for i := range 5 {
		if want := values[i]; got[fmt.Sprintf("ev-%d", i)] != want {
			t.Errorf("ev-%d: got %q, want %q", i, got[fmt.Sprintf("ev-%d", i)], want)
		}
	}
	// One that arrived with nobody waiting is kept for a later Take.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if v, ok := tp.Take("nobody-waits"); ok {
			if !strings.Contains(string(v), "nobody-waits") {
				t.Fatalf("Take: %q", v)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a message nobody waited for was not kept")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if tp.Found() != 6 {
		t.Errorf("found %d, want 6", tp.Found())
	}
	// A message that never comes ends its wait at the deadline.
	done := make(chan bool, 1)
	tp.Await("never", time.Now().Add(100*time.Millisecond), func(_ []byte, ok bool) { done <- ok })
	select {
	case ok := <-done:
		if ok {
			t.Fatal("a message that never came was found")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the wait never ended")
	}
}

// A group another member shares holds only part of the partitions: the
// source says so rather than miss messages quietly.
func TestTopicSharedGroupIsUnhealthy(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.Options{Topic: "legacy.events", Partitions: 4})
	a := newTopic(t, c, "shared")
	waitHealthy(t, a)
	b := newTopic(t, c, "shared")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(a.Health()+b.Health(), "another member shares it") {
		if time.Now().After(deadline) {
			t.Fatalf("health %q / %q, want a shared group reported", a.Health(), b.Health())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Without a cluster the source says why it cannot tell.
func TestTopicWithoutCluster(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.Options{Topic: "legacy.events"})
	c.Stop()
	tp := newTopic(t, c, "g")
	time.Sleep(300 * time.Millisecond)
	if h := tp.Health(); h == "" {
		t.Fatal("healthy without a cluster")
	}
}

// A capture watches for the message a comparison also needs: Watch gets it
// and leaves it, whether it arrives before the comparison asks (kept for
// Take) or while both wait (each gets it once).
func TestTopicWatchLeavesTheMessage(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.Options{Topic: "legacy.events", Partitions: 2})
	tp := newTopic(t, c, "strangler-shadow-watch")
	waitHealthy(t, tp)
	type got struct {
		msg string
		ok  bool
	}
	watch := func(key string, wait time.Duration) chan got {
		ch := make(chan got, 1)
		if !tp.Watch(key, time.Now().Add(wait), func(msg []byte, ok bool) { ch <- got{string(msg), ok} }) {
			t.Fatal("Watch refused")
		}
		return ch
	}
	recv := func(ch chan got) got {
		t.Helper()
		select {
		case g := <-ch:
			return g
		case <-time.After(10 * time.Second):
			t.Fatal("no call within 10s")
			return got{}
		}
	}

	// Watched alone: the message stays for the comparison's Take, and a
	// Watch after it arrived gets it at once.
	first := watch("ev-a", 10*time.Second)
	produce(t, c.Addr, `{"event_id":"ev-a"}`)
	if g := recv(first); !g.ok || g.msg != `{"event_id":"ev-a"}` {
		t.Fatalf("watch: %+v", g)
	}
	if g := recv(watch("ev-a", time.Second)); !g.ok {
		t.Fatalf("watch after arrival: %+v", g)
	}
	if v, ok := tp.Take("ev-a"); !ok || string(v) != `{"event_id":"ev-a"}` {
		t.Fatalf("Take after Watch: %q %v", v, ok)
	}

	// Watched and awaited: both get it; it is the comparison's then.
	w := watch("ev-b", 10*time.Second)
	awaited := make(chan got, 1)
	tp.Await("ev-b", time.Now().Add(10*time.Second), func(msg []byte, ok bool) { awaited <- got{string(msg), ok} })
	produce(t, c.Addr, `{"event_id":"ev-b"}`)
	if g, a := recv(w), recv(awaited); !g.ok || !a.ok {
		t.Fatalf("watch %+v await %+v", g, a)
	}
	if _, ok := tp.Take("ev-b"); ok {
		t.Fatal("an awaited message was kept too")
	}

	// Never arrives: false at the deadline.
	if g := recv(watch("ev-never", 50*time.Millisecond)); g.ok {
		t.Fatalf("a message that never came: %+v", g)
	}
}
