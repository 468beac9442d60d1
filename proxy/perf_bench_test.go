package proxy

import (
	"bufio"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/strangler-proxy/strangler/internal/linelog"
	"github.com/strangler-proxy/strangler/routes"
)

// benchCtx is a request context as the front door sees it: parsed from raw
// bytes with header names kept as sent, from a loopback client.
func benchCtx(tb testing.TB, raw string) *fasthttp.RequestCtx {
	tb.Helper()
	var req fasthttp.Request
	req.Header.DisableNormalizing()
	if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		tb.Fatal(err)
	}
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	return ctx
}

// noop is a handler that answers nothing: the benchmarks measure what the
// front door does around it.
var noop = routes.HandlerFunc(func(*fasthttp.RequestCtx) error { return nil })

// BenchmarkDispatch is the front door's choice of a side: the live table's
// route match plus the mode switch, down to the call of the (no-op)
// legacy or Go handler. Issue 14's P6 asks 0 allocs/op.
func BenchmarkDispatch(b *testing.B) {
	reg := routes.Registry{"ping": noop, "campaigns.get": noop}
	rcs := []routes.RouteConfig{
		{Name: "ping", Methods: []string{"GET"}, Path: "/api/v1/ping", Mode: routes.ModePorted, Handler: "ping"},
		{Name: "legacy-exact", Methods: []string{"GET"}, Path: "/account", Mode: routes.ModeLegacy},
		{Name: "campaign", Methods: []string{"GET"}, Path: "/api/v1/campaigns/{id}", Mode: routes.ModePorted, Handler: "campaigns.get"},
		{Name: "canary", Methods: []string{"GET"}, Path: "/api/v1/canary", Mode: routes.ModeCanary, Handler: "ping",
			Canary: &routes.CanaryConfig{Percent: new(50.0), Sticky: "header:X-User"}},
	}
	plane := emptyPlane(b)
	b.Cleanup(func() { _ = plane.Close() })
	if err := plane.Publish(compile(b, rcs, false, reg)); err != nil {
		b.Fatal(err)
	}
	s, err := New(Options{Plane: plane, Legacy: noop})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, uri string }{
		{"unmatched_legacy", "/index.php?page=1"},
		{"legacy_route", "/account"},
		{"ported_exact", "/api/v1/ping"},
		{"ported_param", "/api/v1/campaigns/cmp_004242"},
		{"canary", "/api/v1/canary"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := benchCtx(b, "GET "+bc.uri+" HTTP/1.1\r\nHost: shop.example\r\nX-User: u1\r\n\r\n")
			x := new(exchange)
			b.ReportAllocs()
			for b.Loop() {
				ctx.ResetUserValues()
				x.route, x.mode, x.backend, x.rr, x.side = routeUnmatched, modeNone, backendProxy, nil, ""
				if err := s.dispatch(ctx, x); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScreen is the front door's header hygiene (framing, Host,
// path policy) and limits on a typical browser request head.
func BenchmarkScreen(b *testing.B) {
	ctx := benchCtx(b, "GET /account/orders?page=2 HTTP/1.1\r\nHost: shop.example\r\n"+
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n"+
		"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-GB,en;q=0.9\r\n"+
		"Accept-Encoding: gzip, deflate, br\r\nCookie: PHPSESSID=abcdef0123456789; theme=dark\r\n"+
		"Referer: https://shop.example/account\r\nConnection: keep-alive\r\n\r\n")
	l := limits{maxLine: 8192, maxBody: 1 << 30}
	b.ReportAllocs()
	for b.Loop() {
		if err := l.check(&ctx.Request.Header); err != nil {
			b.Fatal(err)
		}
		if err := screen(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAccessLog is one access-log line as `strangler run` writes it:
// encoded by the front door (linelog.Line) into the bounded buffer of
// internal/linelog, to a file and to a pipe another goroutine drains (a log
// shipper); and, for comparison, the line as zap's JSON encoder built it
// before issue 14, buffered and (as it was) with one write(2) per line.
// cpu-ns/op is the whole process's CPU time per line (getrusage), the
// flusher and its write(2) included: P5 asks < 1 µs.
func BenchmarkAccessLog(b *testing.B) {
	ctx := benchCtx(b, "GET /api/v1/campaigns/cmp_004242?country=DE HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	ctx.Response.SetStatusCode(200)
	ctx.Response.SetBodyString(strings.Repeat("x", 512))
	x := &exchange{route: "campaign", mode: "legacy", backend: backendLegacy}
	x.id = append(x.idBuf[:0], "0123456789abcdef0123456789abcdef"...)

	file := func(b *testing.B) io.Writer {
		f, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		return f
	}
	pipe := func(b *testing.B) io.Writer {
		r, w, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, r); close(done) }()
		b.Cleanup(func() { w.Close(); <-done; r.Close() })
		return w
	}
	for _, bc := range []struct {
		name     string
		out      func(*testing.B) io.Writer
		buffered bool
		zap      bool
	}{
		{"buffered_file", file, true, false},
		{"buffered_pipe", pipe, true, false},
		{"zap_encoder_buffered_file", file, true, true},
		{"zap_encoder_unbuffered_file", file, false, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			out := bc.out(b)
			var lw *linelog.Writer
			if bc.buffered {
				lw = linelog.New(out, linelog.Options{})
				out = lw
			}
			write := func() { (&Server{access: out}).logAccess(ctx, x, 200, time.Now(), 1234*time.Microsecond) }
			if bc.zap {
				ws := zapcore.Lock(zapcore.AddSync(out))
				log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), ws, zapcore.InfoLevel)).Named("access")
				write = func() { zapAccessLine(log, ctx, x, 200, 1234*time.Microsecond) }
			}
			b.ReportAllocs()
			c0 := cpuTime()
			for b.Loop() {
				write()
			}
			if lw != nil {
				_ = lw.Close() // the lines still buffered are part of the cost
			}
			b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// zapAccessLine is the access line as the front door wrote it through zap
// before issue 14, kept for BenchmarkAccessLog's comparison.
func zapAccessLine(log *zap.Logger, ctx *fasthttp.RequestCtx, x *exchange, status int, elapsed time.Duration) {
	ce := log.Check(zapcore.InfoLevel, "request")
	if ce == nil {
		return
	}
	ce.Write(
		zap.String("request_id", bview(x.id)),
		zap.String("method", bview(ctx.Method())),
		zap.String("host", bview(ctx.Request.Header.Host())),
		zap.String("path", bview(ctx.RequestURI())),
		zap.String("route", x.route),
		zap.String("mode", x.mode),
		zap.String("backend", x.backend),
		zap.Int("status", status),
		zap.Duration("duration", elapsed),
		zap.Int64("bytes_in", bytesIn(x)),
		zap.Int64("bytes_out", bytesOut(&ctx.Response)),
		zap.String("remote", bview(appendIP(x.remote[:0], ctx.RemoteIP()))),
	)
}

// bview is b as a string without a copy, as the zap line viewed request
// memory (zap's JSON core encodes during Write).
func bview(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// cpuTime is this process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
