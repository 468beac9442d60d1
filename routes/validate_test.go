package routes

import (
	"strings"
	"testing"

	"github.com/strangler-proxy/strangler/compare"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		give string // YAML
		// want lists the expected problems in order; each problem is given
		// as fragments that must all appear in that one message (route,
		// field, fix).
		want [][]string
	}{
		{
			name: "valid config",
			give: `
routes:
  - {name: events, methods: [POST], path: /api/v1/events, mode: shadow, handler: events.ingest}
  - {name: campaign, methods: [GET], path: "/api/v1/campaigns/{id}", mode: canary, handler: campaigns.get, canary: {percent: 12.5, sticky: "cookie:PHPSESSID"}}
  - {name: campaigns, methods: [GET], path: /api/v1/campaigns, mode: ported, handler: campaigns.list, fallback: true}
  - {name: campaigns_admin, methods: [GET], host: admin.example.com, path: /api/v1/campaigns, mode: legacy}
  - {name: static, path: "/static/*"}
  - {name: root, path: /}
  - {name: other_param_name_other_tree, methods: [POST], path: "/api/v1/campaigns/{cid}", mode: legacy}
  - {name: ipv6, host: "[::1]", path: /api/v1/events}
`,
		},
		{
			name: "unknown handler (message of the brief)",
			give: `
routes:
  - {name: events, path: /api/v1/events}
  - {name: list, path: /api/v1/campaigns}
  - {name: campaign, path: "/api/v1/campaigns/{id}", mode: ported, handler: campaigns.gett}
`,
			want: [][]string{{`routes[2] "campaign": handler "campaigns.gett" is not registered; known handlers: campaigns.get, campaigns.list, events.ingest`}},
		},
		{
			name: "handler required unless legacy",
			give: `
routes:
  - {name: a, path: /a, mode: ported}
  - {name: b, path: /b, mode: shadow}
  - {name: c, path: /c, mode: canary, canary: {percent: 5}}
  - {name: d, path: /d, mode: legacy}
`,
			want: [][]string{
				{`routes[0] "a"`, "handler is required for mode ported", "set handler to one of: campaigns.get, campaigns.list, events.ingest"},
				{`routes[1] "b"`, "handler is required for mode shadow"},
				{`routes[2] "c"`, "handler is required for mode canary"},
			},
		},
		{
			name: "names",
			give: `
routes:
  - {path: /a}
  - {name: "Campaign Get", path: /b}
  - {name: dup, path: /c}
  - {name: dup, path: /d}
`,
			want: [][]string{
				{`routes[0] (unnamed)`, "name is required", "unique name"},
				{`routes[1] "Campaign Get"`, `name "Campaign Get" may use only a-z, 0-9, _, . and -`, `e.g. "campaign_get"`},
				{`routes[3] "dup"`, `name "dup" is already used by routes[2]`, "unique name"},
			},
		},
		{
			name: "methods",
			give: `
routes:
  - {name: a, path: /a, methods: [get, GETT, GET]}
`,
			want: [][]string{
				{`routes[0] "a"`, `methods: "GETT" is not a supported HTTP method`, "GET, HEAD, POST"},
				{`routes[0] "a"`, "methods: GET is listed twice", "list each method once"},
			},
		},
		{
			name: "bad paths",
			give: `
routes:
  - {name: p0, path: ""}
  - {name: p1, path: api/v1}
  - {name: p2, path: "/static/*/x"}
  - {name: p3, path: "/files/{name}.json"}
  - {name: p4, path: "/a/{id}/b/{id}"}
  - {name: p5, path: "/a//b"}
  - {name: p6, path: "/a/../b"}
  - {name: p7, path: "/a?x=1"}
  - {name: p8, path: "/a/{1d}"}
  - {name: p9, path: "/a b"}
`,
			want: [][]string{
				{`routes[0] "p0"`, "path is required", "e.g. /api/v1/events"},
				{`routes[1] "p1"`, `path "api/v1" must start with "/"`, `use "/api/v1"`},
				{`routes[2] "p2"`, "catch-all * must be the last segment", "/static/*"},
				{`routes[3] "p3"`, `segment "{name}.json" mixes text`, "must be a whole segment"},
				{`routes[4] "p4"`, "uses parameter {id} twice", "its own name"},
				{`routes[5] "p5"`, "empty segment (//)", "remove the extra slash"},
				{`routes[6] "p6"`, `".." segment`, "without it"},
				{`routes[7] "p7"`, "must not contain a query", "path only"},
				{`routes[8] "p8"`, "parameter {1d} must be a name", "e.g. {id}"},
				{`routes[9] "p9"`, "must not contain spaces", "decoded character"},
			},
		},
		{
			name: "duplicate method host path",
			give: `
routes:
  - {name: a, methods: [GET, POST], path: "/x/{id}"}
  - {name: b, methods: [POST, GET], path: "/x/{other}"}
  - {name: c, path: /y}
  - {name: d, path: /y}
  - {name: e, path: /y, host: a.example.com}
  - {name: f, methods: [GET], path: /y}
`,
			want: [][]string{
				{`routes[1] "b"`, `duplicates routes[0] "a" for method(s) POST,GET on any host`, "remove one, or narrow its methods or host"},
				{`routes[3] "d"`, `duplicates routes[2] "c" for method(s) *`},
			},
		},
		{
			name: "trailing slash pair",
			give: `
routes:
  - {name: a, methods: [GET], path: "/a/{id}"}
  - {name: b, methods: [GET], path: "/a/{name}/x"}
  - {name: c, methods: [GET], path: /a/static}
  - {name: d, path: /t}
  - {name: e, path: /t/}
  - {name: f, path: "/s/*"}
  - {name: g, path: /s}
  - {name: h, methods: [GET], path: "/z/{id}/", host: h.example.com}
  - {name: i, methods: [GET], path: "/z/{zid}", host: h.example.com}
`,
			want: [][]string{
				{`routes[4] "e"`, `path "/t/" differs from routes[3] "d" path "/t" only by a trailing slash`, "keep one"},
				{`routes[8] "i"`, `path "/z/{zid}" differs from routes[7] "h" path "/z/{id}/" only by a trailing slash`},
			},
		},
		{
			name: "modes and hosts",
			give: `
routes:
  - {name: a, path: /a, mode: portd}
  - {name: b, path: /b, host: "api.example.com:8080"}
  - {name: c, path: /c, host: "https://api.example.com"}
  - {name: d, path: /d, host: "bad_host!"}
`,
			want: [][]string{
				{`routes[0] "a"`, `mode "portd" is not valid`, "use one of legacy, shadow, canary, ported"},
				{`routes[1] "b"`, "must not include a port", `use "api.example.com"`},
				{`routes[2] "c"`, "must be a bare host name", "no scheme"},
				{`routes[3] "d"`, `host "bad_host!" is not a valid host name`},
			},
		},
		{
			name: "canary",
			give: `
routes:
  - {name: c0, path: /0, mode: canary, handler: campaigns.get}
  - {name: c1, path: /1, mode: canary, handler: campaigns.get, canary: {sticky: ip}}
  - {name: c2, path: /2, mode: canary, handler: campaigns.get, canary: {percent: 150}}
  - {name: c3, path: /3, mode: canary, handler: campaigns.get, canary: {percent: 12.34}}
  - {name: c4, path: /4, mode: canary, handler: campaigns.get, canary: {percent: -1}}
  - {name: c5, path: /5, mode: canary, handler: campaigns.get, canary: {percent: 5, sticky: session}}
  - {name: c6, path: /6, mode: canary, handler: campaigns.get, canary: {percent: 5, sticky: "cookie:"}}
  - {name: c7, path: /7, mode: canary, handler: campaigns.get, canary: {percent: 5, override_header: X-Canary}}
  - {name: c8, path: /8, mode: canary, handler: campaigns.get, canary: {percent: 5, override_header: X-Canary, override_token: hunter2}}
  - {name: c9, path: /9, mode: ported, handler: campaigns.get, canary: {sticky: ip}}
`,
			want: [][]string{
				{`routes[0] "c0"`, "canary.percent is required for mode canary", "canary: {percent: 5}"},
				{`routes[1] "c1"`, "canary.percent is required"},
				{`routes[2] "c2"`, "canary.percent 150 is out of range", "use 0 to 100"},
				{`routes[3] "c3"`, "canary.percent 12.34 is finer than 0.1", "e.g. 12.3"},
				{`routes[4] "c4"`, "canary.percent -1 is out of range"},
				{`routes[5] "c5"`, `canary.sticky "session"`, "use ip, cookie:NAME or header:NAME"},
				{`routes[6] "c6"`, `canary.sticky "cookie:"`, "non-empty token"},
				{`routes[7] "c7"`, "canary.override_token is required when canary.override_header is set", "at least 16 random characters"},
				{`routes[8] "c8"`, "canary.override_token is too short (7 characters)", "at least 16 random characters"},
			},
		},
		{
			name: "shadow",
			give: `
routes:
  - {name: s0, path: /0, mode: shadow, handler: events.ingest, shadow: {sample_percent: 0}}
  - {name: s1, path: /1, mode: shadow, handler: events.ingest, shadow: {sample_percent: 101}}
  - {name: s2, path: /2, mode: shadow, handler: events.ingest, shadow: {primary: php}}
  - {name: s3, path: /3, mode: shadow, handler: events.ingest, shadow: {ignore: [event_id, body.]}}
  - {name: s4, path: /4, mode: shadow, handler: events.ingest, shadow: {timeout: -1s}}
`,
			want: [][]string{
				{`routes[0] "s0"`, "shadow.sample_percent is 0", "change the mode to legacy or ported"},
				{`routes[1] "s1"`, "shadow.sample_percent 101 is out of range", "above 0 and at most 100"},
				{`routes[2] "s2"`, `shadow.primary "php" is not valid`, "use legacy"},
				{`routes[3] "s3"`, `shadow.ignore[0] "event_id" must be body.<json path> or header.<Name>`, "e.g. body.event_id"},
				{`routes[3] "s3"`, `shadow.ignore[1] "body."`},
				{`routes[4] "s4"`, "shadow.timeout -1s is negative", "such as 5s"},
			},
		},
		{
			name: "comparison rules",
			give: `
routes:
  - {name: r0, path: /0, mode: shadow, handler: events.ingest, shadow: {ignore: [status, body, "body.items[*].sku", header.Date], headers: [Content-Type, X-Cache], normalise: [{path: body.id, regex: "^cmp_", with: ""}], ignore_array_order: true, numeric_tolerance: 0.005, max_body_bytes: 4096, legacy_events_file: /tmp/ev.jsonl}}
  - {name: r1, path: /1, mode: shadow, handler: events.ingest, shadow: {ignore: ["body.items[x"]}}
  - {name: r2, path: /2, mode: shadow, handler: events.ingest, shadow: {normalise: [{path: body.id, regex: "("}]}}
  - {name: r3, path: /3, mode: shadow, handler: events.ingest, shadow: {numeric_tolerance: -1, max_body_bytes: -5, legacy_events_file: rel/ev.jsonl, legacy_events_topic: {topic: t}}}
  - {name: r4, path: /4, mode: shadow, handler: events.ingest, shadow: {headers: ["Bad Header"]}}
  - {name: r5, path: /5, mode: shadow, handler: events.ingest, shadow: {accept: [{path: body.a, kind: format}, {path: body.b, kind: colour, reason: x}], key_path: "a.*"}}
  - {name: r6, path: /6, mode: shadow, handler: events.ingest, shadow: {legacy_events_topic: {wait: -1s}}}
  - {name: r7, path: /7, mode: shadow, handler: events.ingest, shadow: {accept: [{path: body.a, kind: format}, {path: body.b, kind: colour, reason: x}]}}
`,
			want: [][]string{
				{`routes[1] "r1"`, `shadow.ignore[0] "body.items[x"`},
				{`routes[2] "r2"`, `shadow.normalise[0] "body.id": regex`},
				{`routes[3] "r3"`, "shadow.numeric_tolerance -1 must be 0 or a positive number"},
				{`routes[3] "r3"`, "shadow.max_body_bytes -5 is negative"},
				{`routes[3] "r3"`, "shadow.legacy_events_file and shadow.legacy_events_topic are both set"},
				{`routes[4] "r4"`, `shadow.headers[0] "Bad Header" is not a valid header name`},
				{`routes[5] "r5"`, `shadow.key_path "a.*" must name one value`},
				{`routes[6] "r6"`, "shadow.legacy_events_topic.topic is required"},
				{`routes[7] "r7"`, `shadow.accept[0] "body.a": reason is required`},
				{`routes[7] "r7"`, `shadow.accept[1] "body.b": kind "colour" is not one of`},
			},
		},
		{
			name: "budgets, verdict, capture",
			give: `
routes:
  - {name: ok, path: /ok, mode: canary, handler: campaigns.get, canary: {percent: 5}, budgets: {max_error_rate: 0.01, max_p99_ratio: 2, window: 10m, min_samples: 50}, verdict: {target_mismatch_rate: 0.01, allow_uncompared_side_effects: true}, capture: {percent: 1, file: /tmp/cap.jsonl}}
  - {name: b0, path: /b0, budgets: {max_mismatch_rate: 1.5, max_error_rate: -0.1}}
  - {name: b1, path: /b1, budgets: {window: 90s}}
  - {name: b2, path: /b2, budgets: {max_p99_ratio: 0.5, window: 2h}}
  - {name: v0, path: /v0, verdict: {target_mismatch_rate: 1.5, max_p99_ratio: 0.9}}
  - {name: c0, path: /c0, capture: {percent: 0, file: cap.jsonl}}
  - {name: c1, path: /c1, capture: {percent: 200, max_bytes: -1}}
`,
			want: [][]string{
				{`routes[1] "b0"`, "budgets.max_mismatch_rate 1.5 is out of range", "fraction from 0 to 1"},
				{`routes[1] "b0"`, "budgets.max_error_rate -0.1 is out of range"},
				{`routes[2] "b1"`, "budgets.window 1m30s must be whole minutes from 1m to 60m"},
				{`routes[2] "b1"`, "budgets sets no limit"},
				{`routes[3] "b2"`, "budgets.max_p99_ratio 0.5 must be at least 1"},
				{`routes[3] "b2"`, "budgets.window 2h0m0s must be whole minutes"},
				{`routes[4] "v0"`, "verdict.target_mismatch_rate 1.5 is out of range", "fraction such as 0.001"},
				{`routes[4] "v0"`, "verdict.max_p99_ratio 0.9 must be at least 1"},
				{`routes[5] "c0"`, "capture.percent 0 is out of range"},
				{`routes[5] "c0"`, `capture.file "cap.jsonl" must be an absolute path`},
				{`routes[6] "c1"`, "capture.percent 200 is out of range"},
				{`routes[6] "c1"`, "capture.file is required"},
				{`routes[6] "c1"`, "capture.max_bytes -1 is negative"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustDecode(t, tt.give)
			err := c.Validate(testRegistry())
			got := Problems(err)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n  %s", len(got), len(tt.want), strings.Join(got, "\n  "))
			}
			for i, frags := range tt.want {
				for _, f := range frags {
					if !strings.Contains(got[i], f) {
						t.Errorf("problem %d %q does not contain %q", i, got[i], f)
					}
				}
			}
			// Compile must agree with Validate.
			tb, cerr := Compile(c, testRegistry())
			if (cerr == nil) != (err == nil) || (tb == nil) == (cerr == nil) {
				t.Errorf("Compile = %v, %v; Validate = %v", tb, cerr, err)
			}
		})
	}
}

func TestValidateNeverLeaksOverrideToken(t *testing.T) {
	const token = "sekrit-but-short"
	c := mustDecode(t, `
routes:
  - {name: c, path: /c, mode: canary, handler: nope, canary: {percent: 200, override_header: "X Bad", override_token: "`+token[:10]+`"}}
`)
	err := c.Validate(testRegistry())
	if err == nil {
		t.Fatal("Validate succeeded, want problems")
	}
	if strings.Contains(err.Error(), token[:10]) {
		t.Errorf("error %q contains the override token", err)
	}
}

func TestCompileDefaults(t *testing.T) {
	tb := mustCompile(t, `
routes:
  - {name: s, path: /s, mode: shadow, handler: events.ingest}
  - {name: c, path: /c, mode: canary, handler: campaigns.get, canary: {percent: 12.3}}
  - {name: l, path: /l, handler: campaigns.list}
`)
	rs := tb.Routes()
	s, c, l := rs[0], rs[1], rs[2]
	if s.Shadow == nil || s.Shadow.Primary != SideLegacy || *s.Shadow.SamplePercent != DefaultShadowSamplePercent || s.Shadow.Timeout != DefaultShadowTimeout {
		t.Errorf("shadow defaults: %+v", s.Shadow)
	}
	if s.Handler == nil || s.HandlerName != "events.ingest" {
		t.Errorf("shadow route handler not resolved: %+v", s)
	}
	if c.Canary.Sticky != DefaultSticky || c.Canary.StickyKey() != (Sticky{Kind: StickyIP}) || c.Canary.Permille() != 123 {
		t.Errorf("canary defaults: %+v permille=%d", c.Canary, c.Canary.Permille())
	}
	if l.Mode != ModeLegacy || l.Handler == nil || l.Shadow != nil || l.Canary != nil {
		t.Errorf("legacy route: %+v", l)
	}
	if s.Shadow.MaxBodyBytes != DefaultShadowMaxBodyBytes || s.Shadow.Comparator() == nil {
		t.Errorf("shadow comparison defaults: max_body_bytes=%d comparator=%v", s.Shadow.MaxBodyBytes, s.Shadow.Comparator())
	}
	want := Verdict{TargetMismatchRate: DefaultVerdictTargetMismatchRate,
		MaxErrorRateGap: DefaultVerdictMaxErrorRateGap, MaxP99Ratio: DefaultVerdictMaxP99Ratio}
	if c.Verdict == nil || *c.Verdict != want || c.Budgets != nil || c.Capture != nil {
		t.Errorf("verdict/budgets/capture defaults: %+v %+v %+v", c.Verdict, c.Budgets, c.Capture)
	}
	tb = mustCompile(t, `
routes:
  - {name: b, path: /b, budgets: {max_error_rate: 0.05}, capture: {percent: 2, file: /tmp/c.jsonl}}
`)
	b := tb.Routes()[0]
	if b.Budgets.Window != DefaultBudgetWindow || b.Budgets.MinSamples != DefaultBudgetMinSamples || b.Capture.MaxBytes != DefaultCaptureMaxBytes {
		t.Errorf("budgets/capture defaults: %+v %+v", b.Budgets, b.Capture)
	}
}

// The comparison compiled with the route is the one its rules describe:
// what is ignored makes no difference, what is not does.
func TestShadowComparator(t *testing.T) {
	tb := mustCompile(t, `
routes:
  - {name: s, path: /s, mode: shadow, handler: events.ingest, shadow: {ignore: [body.event_id], numeric_tolerance: 0.01}}
`)
	c := tb.Routes()[0].Shadow.Comparator()
	resp := func(body string) compare.Response {
		return compare.Response{Status: 202, Header: [][2]string{{"Content-Type", "application/json"}}, Body: []byte(body)}
	}
	if r := c.Diff(resp(`{"event_id":"a","amount":1.001}`), resp(`{"event_id":"b","amount":1.0}`)); !r.Equal() {
		t.Errorf("ignored and tolerated differences reported: %+v", r.Diffs)
	}
	if r := c.Diff(resp(`{"event_id":"a","status":"accepted"}`), resp(`{"event_id":"a","status":"rejected"}`)); len(r.Diffs) != 1 || r.Diffs[0].Path != "body.status" {
		t.Errorf("got %+v, want one difference at body.status", r.Diffs)
	}
}

// Compile refuses same-shape paths before build sees them, so this drives
// build directly with two: the second must become a problem naming both,
// not take the first's place, and the other routes must still register.
func TestBuildRefusesATakenPlace(t *testing.T) {
	mk := func(i int, name, path string) *Route {
		pp, msg := parsePath(path)
		if msg != "" {
			t.Fatal(msg)
		}
		return &Route{Name: name, Path: path, Mode: ModeLegacy, index: i, segs: pp.segs, params: pp.params}
	}
	routes := []*Route{
		mk(0, "files", "/files/{id}"),
		mk(1, "same_shape", "/files/{name}"),
		mk(2, "static", "/s/*"),
		mk(3, "static_again", "/s/*"),
		mk(4, "other", "/other"),
	}
	var p problems
	tb := &Table{routes: routes}
	tb.build(routes, &p)
	if len(p) != 2 {
		t.Fatalf("got problems %q, want two", p)
	}
	for i, want := range [][]string{
		{`routes[1] "same_shape": path "/files/{name}"`, `routes[0] "files" path "/files/{id}"`},
		{`routes[3] "static_again": path "/s/*"`, `routes[2] "static"`},
	} {
		for _, f := range want {
			if !strings.Contains(p[i], f) {
				t.Errorf("problem %q does not contain %q", p[i], f)
			}
		}
	}
	for path, want := range map[string]string{"/files/42": "files", "/s/x": "static", "/other": "other"} {
		if m := tb.Match(newCtx("GET", "example.com", path)); m.Route == nil || m.Route.Name != want {
			t.Errorf("%s matched %+v, want route %s", path, m.Route, want)
		}
	}
}
