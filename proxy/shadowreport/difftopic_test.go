package shadowreport

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/ported/delivery"
	"github.com/strangler-proxy/strangler/ported/kafka"
	"github.com/strangler-proxy/strangler/ported/kafka/kafkatest"
	"github.com/strangler-proxy/strangler/routes"
)

// fakeSender records what it is given; block holds Send until released,
// fail makes Send refuse, nack makes the ack report an error.
type fakeSender struct {
	mu    sync.Mutex
	got   []delivery.Message
	block chan struct{}
	fail  error
	nack  error
}

func (f *fakeSender) Send(ctx context.Context, m delivery.Message, ack func(error)) error {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.fail != nil {
		return f.fail
	}
	f.mu.Lock()
	f.got = append(f.got, m)
	f.mu.Unlock()
	ack(f.nack)
	return nil
}

func closeTopic(t *testing.T, d *DiffTopic, within time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	return d.Close(ctx)
}

// TestDiffTopicCounts: sent, failed (nacked) and dropped (queue full,
// refused, closed) each add up, and the client-facing Write never blocks.
func TestDiffTopicCounts(t *testing.T) {
	t.Run("sent and keyed by route", func(t *testing.T) {
		f := &fakeSender{}
		d := NewDiffTopic(f, 4, zap.NewNop())
		for i := range 3 {
			if !d.Write(Entry{Route: "campaign", Outcome: compare.OutcomeMismatch, RequestID: string(rune('a' + i))}) {
				t.Fatal("write refused with room in the queue")
			}
		}
		if err := closeTopic(t, d, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if d.Sent() != 3 || len(f.got) != 3 || string(f.got[0].Key) != "campaign" {
			t.Fatalf("sent %d, got %d messages (first key %q)", d.Sent(), len(f.got), f.got[0].Key)
		}
		var e Entry
		if err := json.Unmarshal(f.got[2].Value, &e); err != nil || e.RequestID != "c" || e.Outcome != compare.OutcomeMismatch {
			t.Fatalf("third message %s: %v", f.got[2].Value, err)
		}
		if d.Write(Entry{Route: "x"}) || d.Dropped() != 1 {
			t.Fatalf("write after Close: dropped %d", d.Dropped())
		}
	})
	t.Run("full queue drops, never blocks", func(t *testing.T) {
		f := &fakeSender{block: make(chan struct{})}
		d := NewDiffTopic(f, 2, zap.NewNop())
		taken := 0
		for range 10 {
			if d.Write(Entry{Route: "r"}) {
				taken++
			}
		}
		// One is held by the blocked Send, two wait in the queue.
		if taken > 3 || d.Dropped() != uint64(10-taken) {
			t.Fatalf("taken %d dropped %d", taken, d.Dropped())
		}
		close(f.block)
		if err := closeTopic(t, d, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if d.Sent() != uint64(taken) {
			t.Fatalf("sent %d of %d taken", d.Sent(), taken)
		}
	})
	t.Run("refused and nacked", func(t *testing.T) {
		d := NewDiffTopic(&fakeSender{fail: kafka.ErrNotConnected}, 4, zap.NewNop())
		d.Write(Entry{Route: "r"})
		if err := closeTopic(t, d, 5*time.Second); err != nil || d.Dropped() != 1 || d.Sent() != 0 {
			t.Fatalf("refused: %v dropped %d", err, d.Dropped())
		}
		d = NewDiffTopic(&fakeSender{nack: errors.New("broker said no")}, 4, zap.NewNop())
		d.Write(Entry{Route: "r"})
		if err := closeTopic(t, d, 5*time.Second); err != nil || d.Failed() != 1 {
			t.Fatalf("nacked: %v failed %d", err, d.Failed())
		}
	})
	t.Run("close deadline drops the rest", func(t *testing.T) {
		f := &fakeSender{block: make(chan struct{})} // never released
		d := NewDiffTopic(f, 8, zap.NewNop())
		for range 5 {
			d.Write(Entry{Route: "r"})
		}
		if err := closeTopic(t, d, 50*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close = %v, want the deadline", err)
		}
		if d.Dropped() != 5 || d.Sent() != 0 {
			t.Fatalf("dropped %d sent %d, want all 5 dropped", d.Dropped(), d.Sent())
		}
	})
}

// TestDiffTopicToKafka: what the diff log gets also reaches a real Kafka
// protocol peer (kfake over TCP) through the sarama producer, one JSON
// event per mismatch or error, keyed by route; matches send nothing.
func TestDiffTopicToKafka(t *testing.T) {
	const topic = "shadow.diffs.v1"
	c := kafkatest.Start(t, kafkatest.Options{Topic: topic})
	p, err := kafka.NewProducer(kafka.Config{Brokers: []string{c.Addr}, Topic: topic}, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Until the producer has reached the cluster, diff events are dropped
	// (Send answers ErrNotConnected at once): wait for it.
	for deadline := time.Now().Add(15 * time.Second); p.Ping(context.Background()) != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("producer never connected to kfake")
		}
	}
	d := NewDiffTopic(p, 0, zap.NewNop())
	s, reg := newStats(t, newClock(), func(o *Options) { o.DiffTopic = d })
	col := s.Route("campaign")
	cmp := compare.MustCompile(compare.Rules{})
	base := jsonResponse(200, campaign)
	changed := jsonResponse(200, strings.Replace(campaign, `"active"`, `"paused"`, 1))
	// The noise learner's warm-up reports nothing as a mismatch until it has
	// seen enough pairs: feed it identical primary pairs first.
	for range 30 {
		col.LearnNoise(cmp.Diff(base, base))
	}
	for range 2 {
		compareOnce(col, cmp, base, base) // match: no event
	}
	for range 3 {
		if o := compareOnce(col, cmp, base, changed); o != compare.OutcomeMismatch {
			t.Fatalf("outcome %s, want mismatch", o)
		}
	}
	col.Errored(Request{ID: "req-err", Method: "GET", URI: "/x?token=secret"}, routes.SidePorted, errors.New("candidate timed out"))

	recs := c.Consume(4, 500*time.Millisecond, 30*time.Second)
	if len(recs) != 4 {
		t.Fatalf("%d diff events, want 4 (3 mismatches, 1 error)", len(recs))
	}
	outcomes := map[compare.Outcome]int{}
	for _, r := range recs {
		var e Entry
		if err := json.Unmarshal(r.Value, &e); err != nil {
			t.Fatalf("event %s: %v", r.Value, err)
		}
		if string(r.Key) != "campaign" || e.Route != "campaign" {
			t.Fatalf("event keyed %q for route %q", r.Key, e.Route)
		}
		outcomes[e.Outcome]++
		switch e.Outcome {
		case compare.OutcomeMismatch:
			if len(e.Diffs) != 1 || e.Diffs[0].Path != "body.status" || strings.Contains(e.URI, "abc") {
				t.Fatalf("mismatch event %s: want body.status and the token redacted", r.Value)
			}
		case compare.OutcomeError:
			if !strings.Contains(e.Error, "candidate timed out") || strings.Contains(e.URI, "secret") {
				t.Fatalf("error event %s", r.Value)
			}
		}
	}
	if outcomes[compare.OutcomeMismatch] != 3 || outcomes[compare.OutcomeError] != 1 {
		t.Fatalf("outcomes %v", outcomes)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := counterValue(t, reg, "strangler_shadow_difftopic_events_total", map[string]string{"result": "sent"}); got != 4 {
		t.Fatalf("sent counter %v, want 4", got)
	}
}
