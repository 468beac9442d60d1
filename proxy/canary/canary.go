// Package canary splits a route's traffic between legacy and Go by a
// stable hash of a sticky key, so a client stays on one side and raising
// the percentage only ever moves clients from legacy to Go. The same
// bucket decides shadow sampling, and a QA override header with a
// configured token forces a side.
//
// Bucket = Hash(route name, sticky key) mod 1000, 0.1 % per bucket. A
// request goes to Go when bucket < permille: raising the permille only adds
// buckets, so nobody moves back and forth (monotonic by construction).
// The route name salts the hash so routes split clients independently: a
// user in the first 10 % of one route is not always in the first 10 % of
// every route, and one unlucky session does not carry every canary at once.
package canary

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/routes"
)

// Buckets is the number of hash buckets: one per 0.1 %.
const Buckets = 1000

// FNV-1a 64 constants (hash/fnv).
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// Hash is FNV-1a 64 over salt, a zero byte and key, finished with
// MurmurHash3's fmix64 so that keys differing in their last bytes (IPs,
// sequential session IDs) spread over every bucket. It is frozen: a change
// reshuffles every client of every canary. Not maphash, whose seed changes
// per process.
func Hash(salt string, key []byte) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(salt); i++ {
		h ^= uint64(salt[i])
		h *= fnvPrime
	}
	h *= fnvPrime // the zero separator: "ab"+"c" and "a"+"bc" differ
	for _, c := range key {
		h ^= uint64(c)
		h *= fnvPrime
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// Bucket returns the key's bucket in [0, Buckets).
func Bucket(salt string, key []byte) int { return int(Hash(salt, key) % Buckets) }

// Decide reports whether a bucket is inside a permille share.
func Decide(bucket, permille int) bool { return bucket < permille }

// Permille converts a percentage to buckets, rounding to the nearest
// 0.1 % and clamping to [0, Buckets]; a positive percentage never rounds
// to 0 (a 0.04 % sample still samples 0.1 %).
func Permille(percent float64) int {
	switch {
	case !(percent > 0):
		return 0
	case percent >= 100:
		return Buckets
	}
	return max(1, int(percent*10+0.5))
}

// Source says where a decision's key came from.
type Source string

// Key sources.
const (
	SourceCookie   Source = "cookie"
	SourceHeader   Source = "header"
	SourceIP       Source = "ip"
	SourceOverride Source = "override" // the QA override header decided
)

// ClientIPFunc returns the client's address. strangler run passes the
// legacy forwarder's ClientIP, which follows X-Forwarded-For from
// legacy.trusted_proxies; nil means ctx.RemoteIP().
type ClientIPFunc func(ctx *fasthttp.RequestCtx) net.IP

// Config is one route's split.
type Config struct {
	// Route is the route name: the hash salt.
	Route string
	// Sticky names the key. A request without the cookie or header (a
	// first visit before the session cookie is set) falls back to the
	// client IP: it may land on the other side once the cookie exists,
	// which is the price of not pinning clients that have no key yet.
	Sticky routes.Sticky
	// Permille of buckets sent to Go (canary) or sampled (shadow).
	Permille int
	// OverrideHeader and OverrideToken enable the QA override; both empty
	// disable it. See Splitter.Decide for the header's format.
	OverrideHeader string
	OverrideToken  string
	// ClientIP: nil means ctx.RemoteIP().
	ClientIP ClientIPFunc
}

// Splitter decides for one route. Immutable, safe for concurrent use;
// build a new one when the route table changes.
type Splitter struct {
	salt     string
	sticky   routes.Sticky
	permille int
	override string
	tokenSum [sha256.Size]byte
	clientIP ClientIPFunc
}

// New builds a Splitter from c.
func New(c Config) *Splitter {
	s := &Splitter{salt: c.Route, sticky: c.Sticky, permille: min(max(c.Permille, 0), Buckets), clientIP: c.ClientIP}
	if c.OverrideHeader != "" && c.OverrideToken != "" {
		s.override = c.OverrideHeader
		s.tokenSum = sha256.Sum256([]byte(c.OverrideToken))
	}
	if s.clientIP == nil {
		s.clientIP = (*fasthttp.RequestCtx).RemoteIP
	}
	return s
}

// ForCanary builds the canary split of a route. routes.Compile sets the
// Canary block of every canary route; without one the split sends nothing
// to Go.
func ForCanary(r *routes.Route, ip ClientIPFunc) *Splitter {
	c := Config{Route: r.Name, Sticky: r.Canary.StickyKey(), Permille: r.Canary.Permille(), ClientIP: ip}
	if r.Canary != nil {
		c.OverrideHeader, c.OverrideToken = r.Canary.OverrideHeader, r.Canary.OverrideToken
	}
	return New(c)
}

// ForShadow builds the shadow sampler of a route: the same salt and sticky
// key as its canary (a client sampled at 10 % is exactly a client the 10 %
// canary will send to Go), shadow.sample_percent as the share.
func ForShadow(r *routes.Route, ip ClientIPFunc) *Splitter {
	pct := routes.DefaultShadowSamplePercent
	if r.Shadow != nil && r.Shadow.SamplePercent != nil {
		pct = *r.Shadow.SamplePercent
	}
	return New(Config{Route: r.Name, Sticky: r.Canary.StickyKey(), Permille: Permille(pct), ClientIP: ip})
}

// Key is a request's place in the split.
type Key struct {
	Bucket int
	Source Source
	// Fallback: the sticky cookie or header was absent, the client IP
	// was used.
	Fallback bool
}

// Key hashes the request's sticky key.
func (s *Splitter) Key(ctx *fasthttp.RequestCtx) Key {
	var v []byte
	src := SourceIP
	switch s.sticky.Kind {
	case routes.StickyCookie:
		v, src = ctx.Request.Header.Cookie(s.sticky.Name), SourceCookie
	case routes.StickyHeader:
		v, src = ctx.Request.Header.Peek(s.sticky.Name), SourceHeader
	}
	fallback := false
	if src != SourceIP && len(v) == 0 {
		src, fallback = SourceIP, true
	}
	if src == SourceIP {
		ip := s.clientIP(ctx)
		if ip4 := ip.To4(); ip4 != nil {
			ip = ip4
		}
		v = ip
	}
	return Key{Bucket: Bucket(s.salt, v), Source: src, Fallback: fallback}
}

// Sample reports whether a shadowed request is copied to the candidate.
func (s *Splitter) Sample(ctx *fasthttp.RequestCtx) bool {
	return Decide(s.Key(ctx).Bucket, s.permille)
}

// Decision is a canary's answer for one request.
type Decision struct {
	// Side is routes.SidePorted (Go) or routes.SideLegacy.
	Side routes.Side
	Key
	// OverrideRejected: the override header was present but its token did
	// not match; the hash decided. Worth counting: a tester with a stale
	// token, or someone guessing.
	OverrideRejected bool
}

// Decide picks the side of a canary request.
//
// The QA override header, when configured, is honoured only with the
// configured token, compared in constant time. Its value is either
// `go; token=TOKEN` / `legacy; token=TOKEN` (`ported` is accepted for
// `go`), or the bare `TOKEN`, which forces Go (the routes package's
// documented form). The proxy should delete the header before forwarding,
// so the token reaches no upstream log.
func (s *Splitter) Decide(ctx *fasthttp.RequestCtx) Decision {
	var d Decision
	if s.override != "" {
		if v := ctx.Request.Header.Peek(s.override); len(v) > 0 {
			if side, ok := s.checkOverride(string(v)); ok {
				return Decision{Side: side, Key: Key{Bucket: -1, Source: SourceOverride}}
			}
			d.OverrideRejected = true
		}
	}
	d.Key = s.Key(ctx)
	d.Side = routes.SideLegacy
	if Decide(d.Bucket, s.permille) {
		d.Side = routes.SidePorted
	}
	return d
}

// OverrideHeader returns the configured override header name, "" if none.
func (s *Splitter) OverrideHeader() string { return s.override }

// Permille returns the split's share in buckets.
func (s *Splitter) Permille() int { return s.permille }

func (s *Splitter) checkOverride(v string) (routes.Side, bool) {
	side, token := routes.SidePorted, strings.TrimSpace(v)
	if word, params, ok := strings.Cut(v, ";"); ok {
		switch strings.ToLower(strings.TrimSpace(word)) {
		case "go", "ported":
		case "legacy":
			side = routes.SideLegacy
		default:
			return "", false
		}
		name, val, ok := strings.Cut(strings.TrimSpace(params), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "token") {
			return "", false
		}
		token = strings.TrimSpace(val)
	}
	// Hashing first makes the comparison's time independent of the
	// token's length as well as its content.
	sum := sha256.Sum256([]byte(token))
	return side, subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}
