package routes

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// Precedence is by segment, left to right: a literal beats a parameter,
// which beats a catch-all, and a branch with no route for the rest of the
// path gives way to the next. What parameters are called, a sibling that
// differs by a trailing slash, or a literal prefix with no route of its
// own does not change which route wins (fasthttp/router's tree, used
// before, let each of them send such a request to legacy or to a less
// specific route).
func TestMatchPrecedence(t *testing.T) {
	tb := mustCompile(t, `
routes:
  - {name: lit, path: /p/new}
  - {name: param, path: "/p/{id}"}
  - {name: param_edit, path: "/p/{pid}/edit"}
  - {name: catch, path: "/p/*"}
  - {name: exact, path: /a}
  - {name: below_a, path: "/a/*"}
  - {name: deep, path: "/d/x/{id}"}
  - {name: d_catch, path: "/d/*"}
  - {name: root_catch, path: "/*"}
  - {name: h_param, host: h.example, path: "/{x}"}
  - {name: h_catch, host: h.example, path: "/*"}
  - {name: get_catch, methods: [GET], path: "/m/*"}
  - {name: get_deep, methods: [GET], path: "/m/a/b"}
  - {name: any_m, path: /m/a}
  - {name: named_lit, path: "/n/{b}/x"}
  - {name: named_param, path: "/n/{a}/{c}"}
`)
	for _, tt := range []struct {
		method, host, path, want string
		vals                     map[string]string
	}{
		{"GET", "o.example", "/p/new", "lit", nil},
		{"GET", "o.example", "/p/7", "param", map[string]string{"id": "7"}},
		{"GET", "o.example", "/p/new/edit", "param_edit", map[string]string{"pid": "new"}},
		{"GET", "o.example", "/p/7/edit", "param_edit", map[string]string{"pid": "7"}},
		{"GET", "o.example", "/p/7/view", "catch", map[string]string{CatchAllParam: "7/view"}},
		{"GET", "o.example", "/p/", "catch", map[string]string{CatchAllParam: ""}},
		{"GET", "o.example", "/p/7/", "catch", map[string]string{CatchAllParam: "7/"}},
		{"GET", "o.example", "/a", "exact", nil},
		{"GET", "o.example", "/a/", "below_a", map[string]string{CatchAllParam: ""}},
		{"GET", "o.example", "/d/x", "d_catch", map[string]string{CatchAllParam: "x"}},
		{"GET", "o.example", "/d/x/", "d_catch", map[string]string{CatchAllParam: "x/"}},
		{"GET", "o.example", "/d/x/1", "deep", map[string]string{"id": "1"}},
		{"GET", "o.example", "/", "root_catch", map[string]string{CatchAllParam: ""}},
		{"GET", "o.example", "/pp", "root_catch", map[string]string{CatchAllParam: "pp"}},
		{"GET", "h.example", "/q", "h_param", map[string]string{"x": "q"}},
		{"GET", "h.example", "/q/", "h_catch", map[string]string{CatchAllParam: "q/"}},
		{"GET", "h.example", "/p/7", "h_catch", map[string]string{CatchAllParam: "p/7"}},
		{"GET", "o.example", "/m/a", "get_catch", map[string]string{CatchAllParam: "a"}},
		{"POST", "o.example", "/m/a", "any_m", nil},
		{"GET", "o.example", "/m/a/b", "get_deep", nil},
		{"GET", "o.example", "/n/1/x", "named_lit", map[string]string{"b": "1"}},
		{"GET", "o.example", "/n/1/y", "named_param", map[string]string{"a": "1", "c": "y"}},
	} {
		ctx := newCtx(tt.method, tt.host, tt.path)
		m := tb.Match(ctx)
		if m.Route == nil || m.Route.Name != tt.want {
			t.Errorf("%s %s %s matched %v, want %s", tt.method, tt.host, tt.path, m.Route, tt.want)
			continue
		}
		if got := params(ctx, m.Route); fmt.Sprint(got) != fmt.Sprint(orEmpty(tt.vals)) {
			t.Errorf("%s %s %s: parameters %v, want %v", tt.method, tt.host, tt.path, got, tt.vals)
		}
	}
}

// A ctx matched again answers Param for its last match only, and a copy
// of the request given the Params reads the same values from its own path.
func TestParamsFollowTheLastMatch(t *testing.T) {
	tb := mustCompile(t, `
routes:
  - {name: lit, path: /p/new}
  - {name: param, path: "/p/{id}"}
`)
	ctx := newCtx("GET", "o.example", "/p/7")
	tb.Match(ctx)
	var cp fasthttp.RequestCtx
	ctx.Request.CopyTo(&cp.Request)
	SetParams(&cp, ParamsOf(ctx))
	if Param(ctx, "id") != "7" || Param(&cp, "id") != "7" {
		t.Fatalf("id = %q, copy's %q; want 7", Param(ctx, "id"), Param(&cp, "id"))
	}
	for _, uri := range []string{"/p/new", "/nope"} {
		ctx.Request.SetRequestURI(uri)
		tb.Match(ctx)
		if v := Param(ctx, "id"); v != "" {
			t.Errorf("after matching %s, Param(id) = %q from the earlier match", uri, v)
		}
	}
	SetParams(&cp, Params{})
	if v := Param(&cp, "id"); v != "" {
		t.Errorf("zero Params set, Param(id) = %q", v)
	}
}

// params reads every parameter of r through Param.
func params(ctx *fasthttp.RequestCtx, r *Route) map[string]string {
	out := map[string]string{}
	for _, p := range r.params {
		out[p.name] = Param(ctx, p.name)
	}
	return out
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// specMatch is the matching rule written out route by route, with none of
// the trie: the host's routes before hostless ones, within each the
// method's routes before those for every method, and among the routes
// whose segments all match, the one whose kinds read left to right are
// the most specific (literal, then parameter, then catch-all).
// It also gives the route's parameters, cut from the request's segments.
func specMatch(routes []*Route, method, host, path string) (*Route, map[string]string) {
	reqSegs := strings.Split(path[1:], "/")
	matches := func(r *Route) bool {
		for i, s := range r.segs {
			if s.kind == segCatchAll {
				return len(reqSegs) > i
			}
			if i >= len(reqSegs) {
				return false
			}
			if s.kind == segParam && reqSegs[i] == "" || s.kind == segLiteral && reqSegs[i] != s.text {
				return false
			}
		}
		return len(reqSegs) == len(r.segs)
	}
	for _, h := range []string{host, ""} {
		for _, withMethods := range []bool{true, false} {
			var best *Route
			for _, r := range routes {
				if r.Host != h || (r.Methods != nil) != withMethods || withMethods && !slices.Contains(r.Methods, method) || !matches(r) {
					continue
				}
				if best == nil || slices.CompareFunc(r.segs, best.segs, func(a, b pathSeg) int { return int(a.kind) - int(b.kind) }) < 0 {
					best = r
				}
			}
			if best != nil {
				vals := map[string]string{}
				for i, s := range best.segs {
					switch s.kind {
					case segParam:
						vals[s.text] = reqSegs[i]
					case segCatchAll:
						vals[CatchAllParam] = strings.Join(reqSegs[i:], "/")
					}
				}
				return best, vals
			}
		}
	}
	return nil, nil
}

// The trie picks what specMatch picks, and Param gives each parameter's
// segment, over many random tables and requests.
func TestMatchAgreesWithSpec(t *testing.T) {
	rnd := rand.New(rand.NewPCG(14, 6))
	routeSegs := []string{"a", "b", "ab", "{x}", "{y}", "{z}"}
	reqSegs := []string{"a", "b", "ab", "c", "a%2Fb", "%61", ""}
	pick := func(from []string, n int) string {
		var b strings.Builder
		for range n {
			b.WriteString("/" + from[rnd.IntN(len(from))])
		}
		return b.String()
	}
	tables, requests := 0, 0
	for tables < 3000 {
		var c Config
		for i := range 1 + rnd.IntN(10) {
			path := pick(routeSegs, rnd.IntN(5))
			switch rnd.IntN(4) {
			case 0:
				path += "/*"
			case 1:
				path += "/"
			}
			if path == "" {
				path = "/"
			}
			rc := RouteConfig{Name: fmt.Sprintf("r%d", i), Path: path}
			if rnd.IntN(2) == 0 {
				rc.Methods = []string{"GET"}
			}
			if rnd.IntN(4) == 0 {
				rc.Host = "h.example"
			}
			c.Routes = append(c.Routes, rc)
		}
		tb, err := Compile(c, nil)
		if err != nil {
			continue // duplicate shapes and trailing-slash pairs are refused
		}
		tables++
		for range 30 {
			uri := pick(reqSegs, rnd.IntN(6))
			if uri == "" {
				uri = "/"
			}
			method := []string{"GET", "POST", "PROPFIND"}[rnd.IntN(3)]
			host := []string{"h.example", "o.example"}[rnd.IntN(2)]
			ctx := newCtx(method, host, uri)
			got := tb.Match(ctx).Route
			want, wantVals := specMatch(tb.routes, method, host, string(ctx.Path()))
			if got != want {
				t.Fatalf("%s %s %s (path %q): matched %v, the rule picks %v; table %v", method, host, uri, ctx.Path(), got, want, c.Routes)
			}
			requests++
			if got != nil && fmt.Sprint(params(ctx, got)) != fmt.Sprint(wantVals) {
				t.Fatalf("%s %s: parameters %v, want %v", method, uri, params(ctx, got), wantVals)
			}
		}
	}
	t.Logf("%d tables, %d requests", tables, requests)
}

// BenchmarkParam is what a handler pays to read {id} of a matched lookup.
func BenchmarkParam(b *testing.B) {
	tb := mustCompile(b, matchYAML)
	ctx := newCtx("GET", "example.com", "/api/v1/campaigns/cmp_000042")
	if tb.Match(ctx).Route == nil || Param(ctx, "id") != "cmp_000042" {
		b.Fatal("no match")
	}
	b.ReportAllocs()
	for b.Loop() {
		if len(Param(ctx, "id")) != 10 {
			b.Fatal("wrong id")
		}
	}
}
