package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/ported/delivery"
	"github.com/strangler-proxy/strangler/ported/events"
	"github.com/strangler-proxy/strangler/ported/kafka"
	"github.com/strangler-proxy/strangler/ported/kafka/kafkatest"
	"github.com/strangler-proxy/strangler/proxy/control"
	"github.com/strangler-proxy/strangler/proxy/shadow"
	"github.com/strangler-proxy/strangler/routes"
)

var intakeNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// purchaseEvent is a valid intake event (examples/monolith/CONTRACT.md).
func purchaseEvent(i int) string {
	return fmt.Sprintf(`{"type":"purchase","user_id":"u_user%05d","session_id":"s_session0004",`+
		`"occurred_at":%q,"country":"US","currency":"EUR","amount":25.5,`+
		`"items":[{"sku":"SKU-1","qty":2,"price":10.25},{"sku":"SKU-2","qty":1,"price":5}],"campaign_id":"cmp_000001"}`,
		i, intakeNow.Add(-30*time.Minute).Format(time.RFC3339))
}

func intake(t testing.TB, sink delivery.Sink) routes.Handler {
	t.Helper()
	set, err := events.FileCampaigns("../examples/monolith/data/campaigns.json")
	if err != nil {
		t.Fatal(err)
	}
	h, err := events.New(events.Options{Campaigns: set, Sink: sink, Now: func() time.Time { return intakeNow }})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Shadowing the intake never publishes an event twice: with a legacy
// primary the Go candidate's sink records and Kafka sees nothing; with a
// Go primary Kafka sees each event once, although the noise sample asks
// the Go side a second time (its shadow twin records).
func TestShadowingTheIntakeNeverPublishesTwice(t *testing.T) {
	cluster := kafkatest.Start(t, kafkatest.Options{Topic: "events.v1"})
	producer, err := kafka.NewProducer(kafka.Config{Brokers: []string{cluster.Addr}, Topic: "events.v1"}, zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = producer.Close(ctx)
	})
	waitFor(t, "the producer to connect", func() bool { return producer.Ping(context.Background()) == nil })

	php := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		drainBody(ctx)
		jsonAnswer(ctx, 202, fmt.Sprintf(`{"status":"accepted","event_id":%q,"received_at":"2026-03-01T12:00:00.000Z"}`, randomID()))
		return nil
	})
	const n = 25
	published := 0
	for _, primary := range []routes.Side{routes.SideLegacy, routes.SidePorted} {
		t.Run(string(primary)+" primary", func(t *testing.T) {
			rec := shadow.NewRecordingSink(0)
			live := routes.Registry{"events.ingest": intake(t, producer)}
			shadowReg := routes.Registry{"events.ingest": intake(t, rec)}
			h := newHarness(t, harnessOptions{
				legacy: php,
				routes: []routes.RouteConfig{{
					Name: "events", Methods: []string{"POST"}, Path: "/api/v1/events", Mode: routes.ModeShadow, Handler: "events.ingest",
					Shadow: &routes.ShadowConfig{Primary: primary, AllowUnsafe: true},
				}},
				reg:   live,
				mod:   func(o *Options) { o.Recorded = rec },
				plane: func(o *control.Options) { o.ShadowRegistry = shadowReg },
			})
			var ids []string
			for i := range n {
				body := purchaseEvent(i)
				r := h.roundTrip(t, fmt.Sprintf("POST /api/v1/events HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
				if r.status != 202 {
					t.Fatalf("event %d: %d %s", i, r.status, r.body)
				}
				var v struct {
					EventID string `json:"event_id"`
				}
				_ = json.Unmarshal([]byte(r.body), &v)
				ids = append(ids, v.EventID)
			}
			s := h.snapshot(t, "events", n)
			if s.Counts.Compared != n {
				t.Fatalf("counts %+v, want %d compared", s.Counts, n)
			}
			if primary == routes.SidePorted {
				published += n
			}
			recs := cluster.Consume(published, time.Second, 15*time.Second)
			if len(recs) != published {
				t.Fatalf("Kafka holds %d events, want %d: shadowing published", len(recs), published)
			}
			if primary == routes.SidePorted {
				seen := map[string]int{}
				for _, r := range recs {
					var v struct {
						EventID string `json:"event_id"`
					}
					_ = json.Unmarshal(r.Value, &v)
					seen[v.EventID]++
				}
				for _, id := range ids {
					if seen[id] != 1 {
						t.Errorf("event %s published %d times", id, seen[id])
					}
				}
			}
			// The recording sink took the Go candidate's events (legacy
			// primary) or the Go twin's (Go primary, noise sample).
			if rec.Recorded() == 0 {
				t.Error("the shadow sink recorded nothing: the Go shadow side never ran")
			}
		})
	}
}
