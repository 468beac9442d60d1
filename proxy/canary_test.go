package proxy

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/routes"
)

// Through the front door: each user stays on one side, the share of users
// on Go is the configured percentage, raising it only moves users from
// legacy to Go, and the QA override needs its token and never reaches an
// upstream.
func TestCanaryThroughTheFrontDoor(t *testing.T) {
	const (
		overrideHeader = "X-Strangler-Canary"
		token          = "0123456789abcdef-qa"
	)
	var sawOverride []string
	side := func(name string) routes.Handler {
		return routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
			if v := ctx.Request.Header.Peek(overrideHeader); v != nil {
				sawOverride = append(sawOverride, name+": "+string(v))
			}
			ctx.SetBodyString(name)
			return nil
		})
	}
	reg := routes.Registry{"h": side("go")}
	table := func(percent float64) []routes.RouteConfig {
		return []routes.RouteConfig{{
			Name: "c", Path: "/c", Mode: routes.ModeCanary, Handler: "h",
			Canary: &routes.CanaryConfig{Percent: pct(percent), Sticky: "header:X-User", OverrideHeader: overrideHeader, OverrideToken: token},
		}}
	}
	h := newHarness(t, harnessOptions{legacy: side("legacy"), routes: table(30), reg: reg})

	const users = 2000
	onGo := map[int]bool{}
	for u := range users {
		first := h.roundTrip(t, get("/c", fmt.Sprintf("X-User: user-%d", u))).body
		if again := h.roundTrip(t, get("/c", fmt.Sprintf("X-User: user-%d", u))).body; again != first {
			t.Fatalf("user %d moved from %s to %s between two requests", u, first, again)
		}
		onGo[u] = first == "go"
	}
	n := 0
	for _, g := range onGo {
		if g {
			n++
		}
	}
	// 2000 users at 30 %: the binomial standard deviation is 1.02 points
	// (the canary package checks 0.5 points over 100,000 keys).
	if share := float64(n) / users; math.Abs(share-0.30) > 0.04 {
		t.Errorf("share on Go %.3f, want 0.30 ± 0.04", share)
	}

	h.publish(t, compile(t, table(50), false, reg))
	moved := 0
	for u := range users {
		b := h.roundTrip(t, get("/c", fmt.Sprintf("X-User: user-%d", u))).body
		switch {
		case onGo[u] && b != "go":
			t.Fatalf("user %d went back to legacy when the percentage rose", u)
		case !onGo[u] && b == "go":
			moved++
		}
	}
	if moved == 0 {
		t.Error("raising the percentage moved nobody to Go")
	}

	h.publish(t, compile(t, table(0), false, reg))
	tests := []struct {
		name, value, want string
	}{
		{"token forces Go", token, "go"},
		{"go; token= form", "go; token=" + token, "go"},
		{"legacy; token= form", "legacy; token=" + token, "legacy"},
		{"wrong token is ignored", "0123456789abcdef-xx", "legacy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.roundTrip(t, get("/c", "X-User: someone", overrideHeader+": "+tt.value))
			if r.body != tt.want {
				t.Errorf("answered by %s, want %s", r.body, tt.want)
			}
		})
	}
	if len(sawOverride) > 0 {
		t.Errorf("the override header reached a side: %s", strings.Join(sawOverride, "; "))
	}
	if v := counterValue(t, h.reg, "strangler_canary_override_rejected_total", map[string]string{"route": "c"}); v != 1 {
		t.Errorf("rejected overrides counted %v, want 1", v)
	}
}
