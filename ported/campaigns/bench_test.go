package campaigns

import (
	"fmt"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// BenchmarkCampaignGet is the whole Go handler for GET /api/v1/campaigns/{id}:
// snapshot lookup plus JSON encoding into the response (target: <= 200 ns,
// 0 allocs).
func BenchmarkCampaignGet(b *testing.B) {
	set := shippedSet(b)
	h := NewGet(staticSource{set}, func() time.Time { return parityNow })
	// Each id's request is matched once, as the front door does before it
	// calls the handler; the loop is the handler alone.
	ctxs := make([]fasthttp.RequestCtx, 1000)
	for i := range ctxs {
		matchID(b, &ctxs[i], fmt.Sprintf("cmp_%06d", 1+i*9))
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ctx := &ctxs[i%len(ctxs)]
		ctx.Response.Reset()
		if err := h.Serve(ctx); err != nil || ctx.Response.StatusCode() != 200 {
			b.Fatal(err, ctx.Response.StatusCode())
		}
	}
}

// BenchmarkListByCountry is GET /api/v1/campaigns with a country filter,
// default and maximum page sizes, with and without the active filter.
func BenchmarkListByCountry(b *testing.B) {
	set := shippedSet(b)
	for _, q := range []string{"country=DE", "country=DE&limit=100", "country=DE&active=true&limit=20", "country=JP&active=false&limit=100&cursor=Y21wXzAwNTAwMA"} {
		b.Run(q, func(b *testing.B) {
			h := NewList(staticSource{set}, func() time.Time { return parityNow })
			var ctx fasthttp.RequestCtx
			ctx.Request.SetRequestURI("/api/v1/campaigns?" + q)
			b.ReportAllocs()
			for b.Loop() {
				ctx.Response.Reset()
				if err := h.Serve(&ctx); err != nil || ctx.Response.StatusCode() != 200 {
					b.Fatal(err, ctx.Response.StatusCode())
				}
			}
		})
	}
}
