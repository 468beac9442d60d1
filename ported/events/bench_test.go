package events

import (
	"context"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/ported/delivery"
)

// lastSink keeps only the last message: a recording sink whose memory does
// not grow with b.N.
type lastSink struct{ last delivery.Message }

func (s *lastSink) Publish(_ context.Context, m delivery.Message) error {
	s.last = m
	return nil
}

// BenchmarkIngest measures Serve for a valid purchase with items, campaign
// and metadata, from parsed request to written 202, without the network.
func BenchmarkIngest(b *testing.B) {
	sink := &lastSink{}
	h, err := New(Options{Campaigns: fixtureCampaigns(b), Sink: sink, Now: func() time.Time { return fixedNow }})
	if err != nil {
		b.Fatal(err)
	}
	body := purchase().bytes()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/api/v1/events")
	ctx.Request.Header.SetContentType("application/json")
	ctx.Request.Header.Set("X-Request-Id", "req-bench")
	ctx.Request.SetBody(body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		if err := h.Serve(&ctx); err != nil || ctx.Response.StatusCode() != 202 {
			b.Fatalf("Serve = %v, %d %s", err, ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

// BenchmarkValidate is the pure validation step alone.
func BenchmarkValidate(b *testing.B) {
	set := fixtureCampaigns(b)
	body := purchase().bytes()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, vs, err := Validate(body, fixedNow, set); err != nil || len(vs) > 0 {
			b.Fatal(err, vs)
		}
	}
}
