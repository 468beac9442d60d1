package spool_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/strangler-proxy/strangler/ported/kafka"
	"github.com/strangler-proxy/strangler/ported/kafka/kafkatest"
)

// checkFirstCopiesInOrder decodes the records sarama read back and fails
// the test when, for one key, the first copy of an event comes after the
// first copy of a later one. It returns the copies of each event.
func checkFirstCopiesInOrder(t *testing.T, parts map[int32][]*sarama.ConsumerMessage) map[string]int {
	t.Helper()
	copies := map[string]int{}
	last := map[string]int{}
	for p, recs := range parts {
		for _, r := range recs {
			var e event
			if err := json.Unmarshal(r.Value, &e); err != nil {
				t.Fatalf("record %d/%d: %q: %v", p, r.Offset, r.Value, err)
			}
			if string(r.Key) != e.UserID {
				t.Fatalf("record %d/%d: key %q, want the user_id %q", p, r.Offset, r.Key, e.UserID)
			}
			copies[e.EventID]++
			if copies[e.EventID] > 1 {
				continue
			}
			if prev, ok := last[e.UserID]; ok && e.Seq < prev {
				t.Errorf("partition %d offset %d: first copy of %s (seq %d) after seq %d of the same user",
					p, r.Offset, e.EventID, e.Seq, prev)
			}
			last[e.UserID] = e.Seq
		}
	}
	return copies
}

// Broker outages longer than the producer's retries, while publishers
// keep going: nothing accepted is lost, and events keep their spool order
// per key. sarama gives up on the batches it holds (at once, when it finds
// no leader) and moves to a new idempotent epoch, so anything of the same
// key it still held would be written before the spool resends the failed
// ones; the forwarder never lets it hold two.
func TestOutagesLoseNothingAndKeepPerKeyOrder(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.Options{Topic: topic, DataDir: t.TempDir()})
	p := openProducer(t, kafka.Config{
		Brokers: []string{c.Addr}, Topic: topic,
		RetryMax: 3, RetryBackoff: 10 * time.Millisecond, MaxRetryBackoff: 50 * time.Millisecond,
	})
	defer closeProducer(t, p)
	s := openSpool(t, spoolConfig(t.TempDir()))
	if err := s.Forward(context.Background(), p); err != nil {
		t.Fatalf("Forward: %v", err)
	}
	// Each user publishes in its own goroutine, so its events have one
	// order; a round publishes a share with the broker up, stops it,
	// publishes another share into the spool, and restarts it once the
	// producer has given up on what it held.
	const users, rounds, share = 16, 3, 50
	next := make([]int, users)
	publishShare := func() {
		var wg sync.WaitGroup
		for u := range users {
			wg.Go(func() {
				for range share {
					if err := s.Publish(context.Background(), eventMsg(u, next[u])); err != nil {
						t.Errorf("Publish user %d seq %d: %v", u, next[u], err)
						return
					}
					next[u]++
					time.Sleep(time.Millisecond)
				}
			})
		}
		wg.Wait()
	}
	for round := range rounds {
		publishShare()
		c.Stop()
		publishShare()
		if st := s.Stats(); st.Entries == 0 {
			t.Errorf("outage %d: nothing spooled while the broker was down", round+1)
		}
		time.Sleep(1500 * time.Millisecond) // past RetryMax × backoff
		c.Restart()                         // same port, same topic, same data
	}
	publishShare()
	perUser := (2*rounds + 1) * share
	waitDrained(t, s, 60*time.Second)
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("spool Close: %v", err)
	}
	copies := checkFirstCopiesInOrder(t, c.ReadAll(30*time.Second))
	dups := 0
	for u := range users {
		for i := range perUser {
			n := copies[eventMsg(u, i).EventID]
			if n == 0 {
				t.Fatalf("%s lost", eventMsg(u, i).EventID)
			}
			dups += n - 1
		}
	}
	t.Logf("3 outages: %d events, %d duplicates", users*perUser, dups)
}
