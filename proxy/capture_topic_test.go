package proxy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/ported/kafka"
	"github.com/strangler-proxy/strangler/ported/kafka/kafkatest"
	"github.com/strangler-proxy/strangler/proxy/capture"
	"github.com/strangler-proxy/strangler/proxy/control"
	"github.com/strangler-proxy/strangler/proxy/shadow"
	"github.com/strangler-proxy/strangler/routes"
)

// With the legacy side's messages on a topic (a log shipper publishes them
// after the answer), a capture records each request's message once it
// arrives, and says so when none came within the topic's wait: an offline
// run then skips that record instead of taking it for "nothing
// published".
func TestCaptureRecordsTheTopicsMessage(t *testing.T) {
	cluster := kafkatest.Start(t, kafkatest.Options{Topic: "legacy.events"})
	sc, err := kafka.ConsumerConfig(kafka.Config{Brokers: []string{cluster.Addr}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := shadow.NewTopic(shadow.TopicOptions{Brokers: []string{cluster.Addr}, Config: sc, Topic: "legacy.events",
		Group: "strangler-capture-test", Wait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = topic.Close() })
	waitFor(t, "the topic's group to join", func() bool { return topic.Health() == "" && !topic.ReadySince().IsZero() })

	file := filepath.Join(t.TempDir(), "capture.jsonl")
	var n atomic.Int64
	php := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		drainBody(ctx)
		jsonAnswer(ctx, 202, fmt.Sprintf(`{"status":"accepted","event_id":"ev-%d"}`, n.Add(1)))
		return nil
	})
	h := newHarness(t, harnessOptions{
		legacy: php,
		routes: []routes.RouteConfig{{Name: "events", Path: "/events", Capture: &routes.CaptureConfig{Percent: 100, File: file},
			Shadow: &routes.ShadowConfig{LegacyEventsTopic: &routes.LegacyTopic{Topic: "legacy.events"}}}},
		plane: func(o *control.Options) {
			o.LegacyTopic = func(routes.LegacyTopic, string) (control.LegacySource, error) { return topic, nil }
		},
	})
	for range 3 {
		h.roundTrip(t, "POST /events HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
	}
	// The shipper publishes the first two events after their answers; the
	// third never reaches the topic.
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := 1; i <= 2; i++ {
		v := fmt.Sprintf(`{"event_id":"ev-%d","amount":%d,"email_sha256":"f00d"}`, i, i)
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "legacy.events", Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	byID := map[string]capture.Record{}
	recs := waitRecords(t, file, 3)
	for _, r := range recs {
		if r.Answer == nil {
			t.Fatalf("record without its answer: %+v", r)
		}
		byID[r.Answer.Body] = r
	}
	for i := 1; i <= 3; i++ {
		r := byID[fmt.Sprintf(`{"status":"accepted","event_id":"ev-%d"}`, i)]
		want := fmt.Sprintf(`{"event_id":"ev-%d","amount":%d,"email_sha256":"[redacted]"}`, i, i)
		switch {
		case i <= 2 && (string(r.Published) != want || r.PublishedUnknown):
			t.Errorf("ev-%d: published %s (unknown %v), want %s", i, r.Published, r.PublishedUnknown, want)
		case i == 3 && (r.Published != nil || !r.PublishedUnknown):
			t.Errorf("ev-3: published %s (unknown %v), want unknown: it never came", r.Published, r.PublishedUnknown)
		}
	}
}

// waitRecords reads the capture file until it holds n records.
func waitRecords(t *testing.T, file string, n int) []capture.Record {
	t.Helper()
	var recs []capture.Record
	waitFor(t, fmt.Sprintf("%d captured requests", n), func() bool {
		f, err := os.Open(file)
		if err != nil {
			return false
		}
		defer f.Close()
		recs = recs[:0]
		_ = capture.Read(f, func(r capture.Record) error { recs = append(recs, r); return nil })
		return len(recs) == n
	})
	return recs
}
