package routes

import (
	"strings"
	"testing"
	"time"
)

func TestDecode(t *testing.T) {
	c := mustDecode(t, `
listen: ":8080"
kafka: {brokers: [a:9092], topic: events.v1}
all_legacy: true
routes:
  - name: events
    methods: [post]
    path: /api/v1/events
    mode: shadow
    handler: events.ingest
    fallback: true
    shadow: {primary: ported, sample_percent: 12.5, ignore: [body.event_id, header.Date], allow_unsafe: true, timeout: 750ms}
  - name: campaign
    path: /api/v1/campaigns/{id}
    mode: canary
    handler: campaigns.get
    canary: {percent: 0, sticky: "cookie:PHPSESSID", override_header: X-Canary, override_token: 0123456789abcdef}
`)
	if !c.AllLegacy || len(c.Routes) != 2 {
		t.Fatalf("got all_legacy=%v routes=%d, want true and 2", c.AllLegacy, len(c.Routes))
	}
	ev := c.Routes[0]
	if ev.Name != "events" || ev.Mode != ModeShadow || ev.Handler != "events.ingest" || !ev.Fallback || ev.Methods[0] != "post" {
		t.Errorf("events route decoded as %+v", ev)
	}
	sh := ev.Shadow
	if sh == nil || sh.Primary != SidePorted || *sh.SamplePercent != 12.5 || len(sh.Ignore) != 2 || !sh.AllowUnsafe || sh.Timeout != 750*time.Millisecond {
		t.Errorf("shadow decoded as %+v", sh)
	}
	cn := c.Routes[1].Canary
	if cn == nil || cn.Percent == nil || *cn.Percent != 0 || cn.Sticky != "cookie:PHPSESSID" || cn.OverrideHeader != "X-Canary" {
		t.Errorf("canary decoded as %+v", cn)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		give string
		want []string // each must appear in the error
	}{
		{
			name: "unknown route key",
			give: "routes:\n  - {name: events, path: /e, handlr: events.ingest}\n",
			want: []string{`routes[0] "events": unknown key(s) handlr`, "valid keys: name, methods, path, host, mode, handler"},
		},
		{
			name: "unknown shadow key",
			give: "routes:\n  - {name: events, path: /e, shadow: {sample: 5}}\n",
			want: []string{`routes[0] "events": shadow: unknown key(s) sample`, "valid keys: primary, sample_percent"},
		},
		{
			name: "unknown canary key in second route",
			give: "routes:\n  - {name: a, path: /a}\n  - {name: b, path: /b, canary: {pct: 5}}\n",
			want: []string{`routes[1] "b": canary: unknown key(s) pct`, "valid keys: percent, sticky"},
		},
		{
			name: "duration without unit",
			give: "routes:\n  - {name: events, path: /e, shadow: {timeout: 5}}\n",
			want: []string{`routes[0] "events": shadow.timeout`, `write a duration such as "5s"`},
		},
		{
			name: "methods not a list",
			give: "routes:\n  - {name: events, path: /e, methods: {get: 1}}\n",
			want: []string{`routes[0] "events": methods`},
		},
		{
			name: "routes not a list",
			give: "routes: {name: events}\n",
			want: []string{"routes"},
		},
		{
			name: "unnamed route",
			give: "routes:\n  - {path: /e, bogus: 1}\n",
			want: []string{`routes[0] (unnamed): unknown key(s) bogus`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := parse("c.yaml", []byte(tt.give))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			_, err = Decode(v)
			if err == nil {
				t.Fatal("Decode succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseSticky(t *testing.T) {
	tests := []struct {
		give    string
		want    Sticky
		wantErr bool
	}{
		{give: "", want: Sticky{Kind: StickyIP}},
		{give: "ip", want: Sticky{Kind: StickyIP}},
		{give: "cookie:PHPSESSID", want: Sticky{Kind: StickyCookie, Name: "PHPSESSID"}},
		{give: "header:X-User-Id", want: Sticky{Kind: StickyHeader, Name: "X-User-Id"}},
		{give: "cookie:", wantErr: true},
		{give: "header:a b", wantErr: true},
		{give: "session", wantErr: true},
		{give: "query:id", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseSticky(tt.give)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseSticky(%q) = %+v, %v; want %+v, err=%v", tt.give, got, err, tt.want, tt.wantErr)
		}
	}
}
