package canary

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/routes"
)

// sessionIDs returns n PHPSESSID-like values (26 of [a-v0-9]), the same
// on every run.
func sessionIDs(n int) [][]byte {
	r := rand.New(rand.NewPCG(42, 7))
	const alphabet = "abcdefghijklmnopqrstuv0123456789"
	out := make([][]byte, n)
	for i := range out {
		b := make([]byte, 26)
		for j := range b {
			b[j] = alphabet[r.IntN(len(alphabet))]
		}
		out[i] = b
	}
	return out
}

// sequentialIPs returns n consecutive IPv4 addresses from 10.0.0.0: the
// keys a weak hash spreads worst.
func sequentialIPs(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)).To4()
	}
	return out
}

func TestHashIsFrozen(t *testing.T) {
	// The FNV part is hash/fnv's FNV-1a over salt, 0, key.
	f := fnv.New64a()
	f.Write([]byte("campaign\x00PHPSESSID-value"))
	pre := f.Sum64()
	pre ^= pre >> 33
	pre *= 0xff51afd7ed558ccd
	pre ^= pre >> 33
	pre *= 0xc4ceb9fe1a85ec53
	pre ^= pre >> 33
	if got := Hash("campaign", []byte("PHPSESSID-value")); got != pre {
		t.Fatalf("Hash = %#x, want FNV-1a+fmix64 %#x", got, pre)
	}
	// Pinned values: if these change, every canary client changes side.
	golden := []struct {
		salt, key string
		bucket    int
	}{
		{"campaign", "", 459},
		{"campaign", "abc", 203},
		{"events", "abc", 360},
		{"campaign", "10.0.0.1", 992},
	}
	for _, g := range golden {
		if got := Bucket(g.salt, []byte(g.key)); got != g.bucket {
			t.Errorf("Bucket(%q, %q) = %d, pinned %d", g.salt, g.key, got, g.bucket)
		}
	}
	if Bucket("ab", []byte("c")) == Bucket("a", []byte("bc")) && Bucket("ab", []byte("cd")) == Bucket("a", []byte("bcd")) {
		t.Fatal("salt and key run together")
	}
}

func TestShareStickinessMonotonicity(t *testing.T) {
	const n = 100_000
	for _, keys := range []struct {
		name string
		keys [][]byte
	}{{"session ids", sessionIDs(n)}, {"sequential ips", sequentialIPs(n)}} {
		t.Run(keys.name, func(t *testing.T) {
			buckets := make([]int, n)
			for i, k := range keys.keys {
				buckets[i] = Bucket("campaign", k)
				if again := Bucket("campaign", append([]byte(nil), k...)); again != buckets[i] {
					t.Fatalf("key %q: bucket %d then %d", k, buckets[i], again)
				}
			}
			onGo := make([]bool, n)
			for _, pct := range []float64{0, 0.1, 0.5, 1, 5, 10, 25, 50, 75, 99.9, 100} {
				pm := Permille(pct)
				count := 0
				for i, b := range buckets {
					now := Decide(b, pm)
					if onGo[i] && !now {
						t.Fatalf("at %v %% key %q went back from Go to legacy", pct, keys.keys[i])
					}
					onGo[i] = now
					if now {
						count++
					}
				}
				share := 100 * float64(count) / n
				if math.Abs(share-pct) > 0.5 {
					t.Errorf("at %v %%: measured share %.3f %%, off by more than 0.5", pct, share)
				}
				t.Logf("target %5.1f %% measured %7.3f %%", pct, share)
			}
		})
	}
}

func ctxWith(ip string, set func(h *fasthttp.RequestHeader)) *fasthttp.RequestCtx {
	var req fasthttp.Request
	req.SetRequestURI("/api/v1/campaigns/cmp_000042")
	if set != nil {
		set(&req.Header)
	}
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(&req, &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000}, nil)
	return ctx
}

func TestSplitterKeys(t *testing.T) {
	cookie := func(v string) func(h *fasthttp.RequestHeader) {
		return func(h *fasthttp.RequestHeader) { h.SetCookie("PHPSESSID", v) }
	}
	tests := []struct {
		name         string
		sticky       string
		ip           string
		set          func(h *fasthttp.RequestHeader)
		wantKey      string
		wantSource   Source
		wantFallback bool
	}{
		{"cookie", "cookie:PHPSESSID", "192.0.2.1", cookie("sess1"), "sess1", SourceCookie, false},
		{"cookie absent", "cookie:PHPSESSID", "192.0.2.1", nil, "\xc0\x00\x02\x01", SourceIP, true},
		{"cookie empty", "cookie:PHPSESSID", "192.0.2.1", cookie(""), "\xc0\x00\x02\x01", SourceIP, true},
		{"header", "header:X-User", "192.0.2.1", func(h *fasthttp.RequestHeader) { h.Set("x-user", "u42") }, "u42", SourceHeader, false},
		{"header absent", "header:X-User", "2001:db8::1", nil, string(net.ParseIP("2001:db8::1")), SourceIP, true},
		{"ip", "ip", "192.0.2.7", cookie("ignored"), "\xc0\x00\x02\x07", SourceIP, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := routes.ParseSticky(tt.sticky)
			if err != nil {
				t.Fatal(err)
			}
			s := New(Config{Route: "campaign", Sticky: st, Permille: 500})
			k := s.Key(ctxWith(tt.ip, tt.set))
			want := Key{Bucket: Bucket("campaign", []byte(tt.wantKey)), Source: tt.wantSource, Fallback: tt.wantFallback}
			if k != want {
				t.Fatalf("Key = %+v, want %+v", k, want)
			}
		})
	}
	// An injected client IP (trusted X-Forwarded-For) replaces RemoteIP.
	xff := func(*fasthttp.RequestCtx) net.IP { return net.ParseIP("198.51.100.9") }
	s := New(Config{Route: "campaign", Sticky: routes.Sticky{Kind: routes.StickyIP}, ClientIP: xff})
	if got, want := s.Key(ctxWith("10.0.0.1", nil)).Bucket, Bucket("campaign", net.ParseIP("198.51.100.9").To4()); got != want {
		t.Fatalf("bucket with injected client IP = %d, want %d", got, want)
	}
}

func TestRoutesSplitIndependently(t *testing.T) {
	keys := sessionIDs(100_000)
	both := 0
	for _, k := range keys {
		if Decide(Bucket("campaign", k), 500) && Decide(Bucket("events", k), 500) {
			both++
		}
	}
	if share := float64(both) / float64(len(keys)); math.Abs(share-0.25) > 0.01 {
		t.Fatalf("%.3f of keys are in both 50 %% canaries, want about 0.25", share)
	}
}

func TestOverride(t *testing.T) {
	const token = "0123456789abcdef-qa"
	pct := 0.0
	r := &routes.Route{Name: "campaign", Mode: routes.ModeCanary, Canary: &routes.CanaryConfig{
		Percent: &pct, Sticky: "cookie:PHPSESSID", OverrideHeader: "X-Strangler-Side", OverrideToken: token}}
	s := ForCanary(r, nil)
	tests := []struct {
		name         string
		value        string
		wantSide     routes.Side
		wantSource   Source
		wantRejected bool
	}{
		{"none", "", routes.SideLegacy, SourceIP, false},
		{"bare token forces go", token, routes.SidePorted, SourceOverride, false},
		{"go with token", "go; token=" + token, routes.SidePorted, SourceOverride, false},
		{"ported with token", "Ported;token=" + token, routes.SidePorted, SourceOverride, false},
		{"legacy with token", "legacy; token=" + token, routes.SideLegacy, SourceOverride, false},
		{"wrong token", "go; token=" + token + "x", routes.SideLegacy, SourceIP, true},
		{"token prefix", "go; token=" + token[:10], routes.SideLegacy, SourceIP, true},
		{"no token", "go", routes.SideLegacy, SourceIP, true},
		{"unknown side", "php; token=" + token, routes.SideLegacy, SourceIP, true},
		{"other parameter", "go; key=" + token, routes.SideLegacy, SourceIP, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := ctxWith("192.0.2.1", func(h *fasthttp.RequestHeader) {
				if tt.value != "" {
					h.Set("X-Strangler-Side", tt.value)
				}
			})
			d := s.Decide(ctx)
			if d.Side != tt.wantSide || d.Source != tt.wantSource || d.OverrideRejected != tt.wantRejected {
				t.Fatalf("Decide = %+v, want side %s source %s rejected %v", d, tt.wantSide, tt.wantSource, tt.wantRejected)
			}
		})
	}
	// Without a configured token the header means nothing.
	plain := New(Config{Route: "campaign", Permille: 0})
	d := plain.Decide(ctxWith("192.0.2.1", func(h *fasthttp.RequestHeader) { h.Set("X-Strangler-Side", "go; token=") }))
	if d.Side != routes.SideLegacy || d.OverrideRejected {
		t.Fatalf("unconfigured override: %+v", d)
	}
}

func TestSamplerSharesTheCanaryHash(t *testing.T) {
	ten, hundred := 10.0, 100.0
	r := &routes.Route{Name: "campaign", Mode: routes.ModeShadow,
		Shadow: &routes.ShadowConfig{SamplePercent: &ten},
		Canary: &routes.CanaryConfig{Percent: &ten, Sticky: "cookie:PHPSESSID"}}
	sampler, split := ForShadow(r, nil), ForCanary(r, nil)
	sampled := 0
	for i, id := range sessionIDs(20_000) {
		ctx := ctxWith(fmt.Sprintf("10.1.%d.%d", i>>8&255, i&255), func(h *fasthttp.RequestHeader) { h.SetCookieBytesKV([]byte("PHPSESSID"), id) })
		s := sampler.Sample(ctx)
		if s != (split.Decide(ctx).Side == routes.SidePorted) {
			t.Fatalf("session %s: sampled %v but canary side %s", id, s, split.Decide(ctx).Side)
		}
		if s {
			sampled++
		}
	}
	if share := float64(sampled) / 20_000; math.Abs(share-0.10) > 0.01 {
		t.Fatalf("sampled share %.3f, want about 0.10", share)
	}
	r.Shadow.SamplePercent = &hundred
	if p := ForShadow(r, nil).Permille(); p != Buckets {
		t.Fatalf("100 %% sample permille = %d", p)
	}
}

func TestPermille(t *testing.T) {
	tests := []struct {
		give float64
		want int
	}{{0, 0}, {-1, 0}, {math.NaN(), 0}, {0.04, 1}, {0.1, 1}, {0.15, 2}, {1, 10}, {12.3, 123}, {99.9, 999}, {100, 1000}, {250, 1000}}
	for _, tt := range tests {
		if got := Permille(tt.give); got != tt.want {
			t.Errorf("Permille(%v) = %d, want %d", tt.give, got, tt.want)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	st, _ := routes.ParseSticky("cookie:PHPSESSID")
	s := New(Config{Route: "campaign", Sticky: st, Permille: 100})
	ctx := ctxWith("192.0.2.1", func(h *fasthttp.RequestHeader) { h.SetCookie("PHPSESSID", "k1v2l3m4n5o6p7q8r9s0t1u2v3") })
	b.ReportAllocs()
	for b.Loop() {
		s.Decide(ctx)
	}
}
