package proxy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/legacy-passthrough"
	"github.com/strangler-proxy/strangler/ported/campaign"
	"github.com/strangler-proxy/strangler/ported/campaigns"
	"github.com/strangler-proxy/strangler/ported/events"
	"github.com/strangler-proxy/strangler/proxy/control"
	"github.com/strangler-proxy/strangler/routes"
)

type setSource struct{ s *campaign.Set }

func (s setSource) Set() *campaign.Set { return s.s }

// BenchmarkLookupShadow is the lookup route GET /api/v1/campaigns/{id}
// served by legacy alone, then shadowed at 100 % (legacy primary, the Go
// handler as candidate, every pair compared), in one run against one front
// door on loopback TCP. The stand-in monolith answers each id with the
// bytes the Go handler produces, chunked as Nginx does for PHP. Reported:
// client p50/p99 per request and, for the shadow, the share of copies
// skipped because the pool was full.
func BenchmarkLookupShadow(b *testing.B) {
	set, err := events.FileCampaigns("../examples/monolith/data/campaigns.json")
	if err != nil {
		b.Fatal(err)
	}
	now := func() time.Time { return intakeNow }
	goGet := campaigns.NewGet(setSource{set}, now)
	reg := routes.Registry{campaigns.GetName: goGet}
	table := func(mode routes.Mode) *routes.Table {
		return compile(b, []routes.RouteConfig{{
			Name: "campaign", Methods: []string{"GET"}, Path: "/api/v1/campaigns/{id}", Mode: mode, Handler: campaigns.GetName,
		}}, false, reg)
	}
	const ids = 500
	bodies := make(map[string][]byte, ids)
	var paths []string
	legacyOnly := table(routes.ModeLegacy)
	for i := range ids {
		id := fmt.Sprintf("cmp_%06d", 1+i*7)
		path := "/api/v1/campaigns/" + id
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(path)
		if legacyOnly.Match(&ctx).Route == nil {
			b.Fatalf("%s unmatched", path)
		}
		if err := goGet.Serve(&ctx); err != nil {
			b.Fatal(err)
		}
		bodies[id] = append([]byte(nil), ctx.Response.Body()...)
		paths = append(paths, path)
	}
	up := startLookupUpstream(b, bodies)
	fwd, err := legacy.New(legacy.Config{Upstream: "http://" + up}, zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	defer fwd.Close()

	metrics := prometheus.NewRegistry()
	plane, err := control.New(control.Options{Registerer: metrics, ShadowRegistry: reg, ShadowLegacy: fwd})
	if err != nil {
		b.Fatal(err)
	}
	defer plane.Close()
	publish := func(t *routes.Table) {
		if err := plane.Publish(t); err != nil {
			b.Fatal(err)
		}
	}
	publish(legacyOnly)
	srv, err := New(Options{Plane: plane, Legacy: fwd, Registerer: metrics})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
	}()
	client := &fasthttp.HostClient{Addr: ln.Addr().String(), MaxConns: 512, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	defer client.CloseIdleConnections()

	for _, mode := range []routes.Mode{routes.ModeLegacy, routes.ModeShadow} {
		b.Run(string(mode), func(b *testing.B) {
			publish(table(mode))
			before := srv.stats.Route("campaign").Snapshot().Counts
			var (
				mu  sync.Mutex
				lat []time.Duration
			)
			b.SetParallelism(8) // 8 × GOMAXPROCS concurrent clients
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				var mine []time.Duration
				for i := 0; pb.Next(); i++ {
					req.SetRequestURI("http://shop.example" + paths[i%len(paths)])
					start := time.Now()
					if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
						b.Errorf("lookup: %v %d", err, resp.StatusCode())
						return
					}
					mine = append(mine, time.Since(start))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			}
			if mode == routes.ModeShadow {
				// Let the pool finish before reading its figures.
				for srv.engine.InFlight() > 0 {
					time.Sleep(time.Millisecond)
				}
				after := srv.stats.Route("campaign").Snapshot().Counts
				n := float64(after.Compared + after.Skipped + after.Errors - before.Compared - before.Skipped - before.Errors)
				if n > 0 {
					b.ReportMetric(float64(after.Skipped-before.Skipped)/n, "skipped/req")
					b.ReportMetric(float64(after.Mismatch-before.Mismatch)/n, "mismatch/req")
				}
			}
		})
	}
}

// startLookupUpstream stands in for Nginx + PHP on loopback: each id's
// body, streamed (chunked) as Nginx does for PHP's output.
func startLookupUpstream(b *testing.B, bodies map[string][]byte) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{
		NoDefaultServerHeader: true,
		Handler: func(ctx *fasthttp.RequestCtx) {
			body, ok := bodies[string(ctx.Path()[len("/api/v1/campaigns/"):])]
			if !ok {
				ctx.SetStatusCode(404)
				return
			}
			ctx.SetContentType("application/json")
			ctx.SetBodyStreamWriter(func(w *bufio.Writer) { _, _ = w.Write(body) })
		},
	}
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	b.Cleanup(func() { _ = srv.Shutdown(); <-done })
	return ln.Addr().String()
}
