package spool_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/strangler-proxy/strangler/ported/delivery"
	"github.com/strangler-proxy/strangler/ported/kafka"
	"github.com/strangler-proxy/strangler/ported/kafka/kafkatest"
	"github.com/strangler-proxy/strangler/ported/spool"
)

const topic = "events.v1"

type event struct {
	EventID string `json:"event_id"`
	UserID  string `json:"user_id"`
	Seq     int    `json:"seq"`
}

func eventMsg(user, seq int) delivery.Message {
	e := event{EventID: fmt.Sprintf("evt_u%02d_%04d", user, seq), UserID: fmt.Sprintf("user_%02d", user), Seq: seq}
	v, _ := json.Marshal(e)
	return delivery.Message{Key: []byte(e.UserID), Value: v, EventID: e.EventID}
}

func logger(t *testing.T) *zap.Logger { return zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)) }

func openProducer(t *testing.T, cfg kafka.Config) *kafka.Producer {
	t.Helper()
	p, err := kafka.NewProducer(cfg, logger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	return p
}

func closeProducer(t *testing.T, p *kafka.Producer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Errorf("producer Close: %v", err)
	}
}

func spoolConfig(dir string) spool.Config {
	return spool.Config{
		Dir: dir, SegmentSize: 64 << 10,
		RetryBackoff: 20 * time.Millisecond, MaxRetryBackoff: 500 * time.Millisecond,
		CheckpointInterval: 20 * time.Millisecond,
	}
}

func openSpool(t *testing.T, cfg spool.Config) *spool.Spool {
	t.Helper()
	s, err := spool.Open(cfg, logger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("spool.Open: %v", err)
	}
	return s
}

func waitDrained(t *testing.T, s *spool.Spool, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := s.Stats()
		if st.Acked == st.Last && st.Entries == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("spool not drained within %s: %+v", timeout, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// byEvent indexes consumed records and checks key = user_id and per-key order.
func byEvent(t *testing.T, c *kafkatest.Cluster, want int, settle time.Duration) (ids map[string]int, total int) {
	t.Helper()
	recs := c.Consume(want, settle, 30*time.Second)
	ids = map[string]int{}
	lastSeq := map[string]int{}
	for _, r := range recs {
		var e event
		if err := json.Unmarshal(r.Value, &e); err != nil {
			t.Fatalf("record value %q: %v", r.Value, err)
		}
		if string(r.Key) != e.UserID {
			t.Fatalf("record key %q, want the user_id %q", r.Key, e.UserID)
		}
		if h := header(r, kafka.EventIDHeader); h != e.EventID {
			t.Fatalf("record headers %v, want event_id %s", r.Headers, e.EventID)
		}
		// A first copy must never come after a later event of the same key.
		if ids[e.EventID] == 0 {
			if prev, ok := lastSeq[e.UserID]; ok && e.Seq < prev {
				t.Fatalf("%s (seq %d) arrived after seq %d of the same user", e.EventID, e.Seq, prev)
			}
			lastSeq[e.UserID] = e.Seq
		}
		ids[e.EventID]++
	}
	return ids, len(recs)
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// publishUsers publishes perUser events for each of users users, one
// goroutine per user so each key's order is defined.
func publishUsers(t *testing.T, sink delivery.Sink, users, perUser int, pause time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	for u := range users {
		wg.Go(func() {
			for i := range perUser {
				if err := sink.Publish(context.Background(), eventMsg(u, i)); err != nil {
					t.Errorf("Publish user %d seq %d: %v", u, i, err)
					return
				}
				time.Sleep(pause)
			}
		})
	}
	wg.Wait()
}

func TestSpoolToKafkaExactlyOnceInOrder(t *testing.T) {
	tests := []struct {
		name, mechanism string
	}{
		{"PLAIN over TLS", "PLAIN"},
		{"SCRAM-SHA-512 over TLS", "SCRAM-SHA-512"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := kafkatest.Start(t, kafkatest.Options{Topic: topic, TLS: true, Mechanism: tt.mechanism, User: "proxy", Pass: "pw-123"})
			p := openProducer(t, kafka.Config{
				Brokers: []string{c.Addr}, Topic: topic,
				TLS:  kafka.TLSConfig{Enabled: true, CAFile: c.CAFile},
				SASL: kafka.SASLConfig{Mechanism: tt.mechanism, Username: "proxy", Password: "pw-123"},
			})
			defer closeProducer(t, p)
			s := openSpool(t, spoolConfig(t.TempDir()))
			if err := s.Forward(context.Background(), p); err != nil {
				t.Fatalf("Forward: %v", err)
			}
			const users, perUser = 8, 40
			publishUsers(t, s, users, perUser, 0)
			waitDrained(t, s, 30*time.Second)
			if err := s.Close(context.Background()); err != nil {
				t.Fatalf("spool Close: %v", err)
			}
			ids, total := byEvent(t, c, users*perUser, 500*time.Millisecond)
			if len(ids) != users*perUser || total != users*perUser {
				t.Fatalf("consumed %d records, %d distinct; want each of %d exactly once", total, len(ids), users*perUser)
			}
		})
	}
}

func TestFullSpoolAnswersBackpressure(t *testing.T) {
	// A configured but unreachable cluster: the forwarder cannot drain.
	p := openProducer(t, kafka.Config{Brokers: []string{"127.0.0.1:1"}, Topic: topic})
	defer closeProducer(t, p)
	cfg := spoolConfig(t.TempDir())
	cfg.MaxEntries = 50
	cfg.FullRetryAfter = 20 * time.Second
	s := openSpool(t, cfg)
	if err := s.Forward(context.Background(), p); err != nil {
		t.Fatalf("Forward: %v", err)
	}
	for i := range 50 {
		if err := s.Publish(context.Background(), eventMsg(0, i)); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
	err := s.Publish(context.Background(), eventMsg(0, 50))
	var bp *delivery.BackpressureError
	if !errors.As(err, &bp) || bp.RetryAfter() != 20*time.Second {
		t.Fatalf("Publish into the full spool = %v, want BackpressureError with Retry-After 20s", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with an unreachable cluster = %v, want the deadline reported", err)
	}
}

func TestUnackedEventsForwardedAfterRestart(t *testing.T) {
	dir := t.TempDir()
	c := kafkatest.Start(t, kafkatest.Options{Topic: topic})
	c.Stop() // the cluster is away while events arrive

	p := openProducer(t, kafka.Config{Brokers: []string{c.Addr}, Topic: topic})
	s := openSpool(t, spoolConfig(dir))
	if err := s.Forward(context.Background(), p); err != nil {
		t.Fatalf("Forward: %v", err)
	}
	publishUsers(t, s, 4, 25, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want the deadline reported", err)
	}
	closeProducer(t, p)

	c.Restart()
	p = openProducer(t, kafka.Config{Brokers: []string{c.Addr}, Topic: topic})
	defer closeProducer(t, p)
	s = openSpool(t, spoolConfig(dir))
	if st := s.Stats(); st.Entries != 100 {
		t.Fatalf("after restart %d entries spooled, want 100", st.Entries)
	}
	if err := s.Forward(context.Background(), p); err != nil {
		t.Fatalf("Forward: %v", err)
	}
	waitDrained(t, s, 30*time.Second)
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("spool Close: %v", err)
	}
	ids, total := byEvent(t, c, 100, 500*time.Millisecond)
	if len(ids) != 100 || total != 100 {
		t.Fatalf("consumed %d records (%d distinct), want the 100 spooled events once", total, len(ids))
	}
}
