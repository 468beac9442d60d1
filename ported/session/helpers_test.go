package session

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/internal/monolith"
)

// startRedis runs a real redis-server for one test (Debian's, as the
// monolith launcher does); it fails the test when redis-server is missing.
func startRedis(t testing.TB) *monolith.KV {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	k, err := monolith.StartRedis(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("start redis: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("redis logs:\n%s", k.LogTail())
		}
		_ = k.Stop()
	})
	return k
}

func startMemcached(t testing.TB) *monolith.KV {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	k, err := monolith.StartMemcached(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("start memcached: %v", err)
	}
	t.Cleanup(func() { _ = k.Stop() })
	return k
}

// phpExt are the -d settings that load the session extensions under php -n.
var phpExt = []string{"extension=igbinary", "extension=msgpack", "extension=redis", "extension=memcached"}

// requestWithCookie is a server-side request carrying the Cookie lines
// given, parsed from a raw head as the front door gets it.
func requestWithCookie(t testing.TB, cookies ...string) *fasthttp.RequestCtx {
	t.Helper()
	raw := "GET /account HTTP/1.1\r\nHost: example.test\r\nX-Request-Id: rid-1\r\n"
	for _, c := range cookies {
		raw += "Cookie: " + c + "\r\n"
	}
	raw += "\r\n"
	var ctx fasthttp.RequestCtx
	if err := ctx.Request.Read(bufioReader(raw)); err != nil {
		t.Fatal(err)
	}
	return &ctx
}

func itoa(i int) string { return strconv.Itoa(i) }
