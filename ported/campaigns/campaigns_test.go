package campaigns

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/ported/campaign"
	"github.com/strangler-proxy/strangler/ported/campaign/campaigngen"
	"github.com/strangler-proxy/strangler/routes"
)

var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

type staticSource struct{ set *campaign.Set }

func (s staticSource) Set() *campaign.Set { return s.set }

// lookupRoute is the lookup's route as config.yaml ships it.
var lookupRoute = func() *routes.Table {
	tb, err := routes.Compile(routes.Config{Routes: []routes.RouteConfig{
		{Name: "campaign_get", Methods: []string{"GET"}, Path: "/api/v1/campaigns/{id}"},
	}}, nil)
	if err != nil {
		panic(err)
	}
	return tb
}()

// matchID points ctx at the lookup of id and matches it as the front door
// does before it calls Get, which reads {id} from the path.
func matchID(t testing.TB, ctx *fasthttp.RequestCtx, id string) {
	t.Helper()
	ctx.Request.SetRequestURI("/api/v1/campaigns/" + url.PathEscape(id))
	if m := lookupRoute.Match(ctx); m.Route == nil || routes.Param(ctx, "id") != id {
		t.Fatalf("id %q: the lookup route did not match it (path %q)", id, ctx.Path())
	}
}

func testSet(t testing.TB, n int) *campaign.Set {
	t.Helper()
	set, err := campaign.NewSet(campaigngen.Generate(n, 7, 11))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

type response struct {
	status      int
	contentType string
	body        []byte
}

func serve(t testing.TB, h interface {
	Serve(*fasthttp.RequestCtx) error
}, uri, id, requestID string) response {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI(uri)
	if id != "" {
		matchID(t, &ctx, id)
	}
	if requestID != "" {
		ctx.Request.Header.Set("X-Request-Id", requestID)
	}
	if err := h.Serve(&ctx); err != nil {
		t.Fatalf("Serve %s: %v", uri, err)
	}
	return response{ctx.Response.StatusCode(), string(ctx.Response.Header.ContentType()), append([]byte(nil), ctx.Response.Body()...)}
}

// publicCampaign mirrors the contract's representation, decoded with the
// standard library as an independent check of the hand-written encoder.
type publicCampaign struct {
	ID           string   `json:"id"`
	AdvertiserID string   `json:"advertiser_id"`
	Name         string   `json:"name"`
	Status       string   `json:"status"`
	Countries    []string `json:"countries"`
	StartsAt     string   `json:"starts_at"`
	EndsAt       string   `json:"ends_at"`
	Budget       struct {
		AmountMinor int64  `json:"amount_minor"`
		Currency    string `json:"currency"`
	} `json:"budget"`
	Active bool `json:"active"`
}

type page struct {
	Data       []publicCampaign `json:"data"`
	NextCursor *string          `json:"next_cursor"`
}

func decodeStrict(t testing.TB, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

func checkPublic(t testing.TB, got publicCampaign, c *campaign.Campaign, now time.Time) {
	t.Helper()
	want := publicCampaign{
		ID: c.ID, AdvertiserID: c.AdvertiserID, Name: c.Name, Status: c.Status, Countries: c.Countries,
		StartsAt: c.StartsAt.UTC().Format(time.RFC3339), EndsAt: c.EndsAt.UTC().Format(time.RFC3339),
		Active: c.ActiveAt(now),
	}
	want.Budget.AmountMinor, want.Budget.Currency = c.Budget.AmountMinor, c.Budget.Currency
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("campaign %s:\n got %+v\nwant %+v", c.ID, got, want)
	}
}

func TestGet(t *testing.T) {
	set := testSet(t, 200)
	h := NewGet(staticSource{set}, func() time.Time { return testNow })
	var activeID, inactiveID string
	for _, c := range set.Sorted("") {
		if c.ActiveAt(testNow) && activeID == "" {
			activeID = c.ID
		}
		if !c.ActiveAt(testNow) && inactiveID == "" {
			inactiveID = c.ID
		}
	}
	tests := []struct {
		name, id, requestID string
		wantStatus          int
		wantBody            string // exact, for errors
	}{
		{name: "active", id: activeID, wantStatus: 200},
		{name: "inactive", id: inactiveID, wantStatus: 200},
		{name: "missing", id: "cmp_999999", wantStatus: 404, wantBody: `{"error":"not_found","message":"campaign not found"}`},
		{name: "malformed", id: `x'"<>%`, wantStatus: 404, wantBody: `{"error":"not_found","message":"campaign not found"}`},
		{name: "no id", id: "", wantStatus: 404, wantBody: `{"error":"not_found","message":"campaign not found"}`},
		{name: "request id echoed", id: "nope", requestID: "req-1:a/b+c=", wantStatus: 404,
			wantBody: `{"error":"not_found","message":"campaign not found","request_id":"req-1:a/b+c="}`},
		{name: "unsafe request id dropped", id: "nope", requestID: `a"b`, wantStatus: 404,
			wantBody: `{"error":"not_found","message":"campaign not found"}`},
		{name: "long request id dropped", id: "nope", requestID: strings.Repeat("a", 129), wantStatus: 404,
			wantBody: `{"error":"not_found","message":"campaign not found"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := serve(t, h, "/api/v1/campaigns/x", tt.id, tt.requestID)
			if r.status != tt.wantStatus || r.contentType != "application/json" {
				t.Fatalf("got %d %q %s", r.status, r.contentType, r.body)
			}
			if tt.wantBody != "" {
				if string(r.body) != tt.wantBody {
					t.Fatalf("body %s, want %s", r.body, tt.wantBody)
				}
				return
			}
			var got publicCampaign
			decodeStrict(t, r.body, &got)
			c, _ := set.Campaign(tt.id)
			checkPublic(t, got, c, testNow)
		})
	}
}

func TestGetExactBody(t *testing.T) {
	f := &campaign.File{Version: 1, Campaigns: []campaign.Campaign{{
		ID: "cmp_000001", AdvertiserID: "adv_0001", Name: "Fish & \"Chips\" </b> \\ é 夏\u2028\u2029\n\t\x01\x7f",
		Status: "active", Countries: []string{"DE", "FR"},
		StartsAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 3600)),
		EndsAt:   time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC),
		Budget:   campaign.Budget{AmountMinor: 123456789012, Currency: "EUR"},
	}}}
	set, err := campaign.NewSet(f)
	if err != nil {
		t.Fatal(err)
	}
	r := serve(t, NewGet(staticSource{set}, func() time.Time { return testNow }), "/", "cmp_000001", "")
	want := `{"id":"cmp_000001","advertiser_id":"adv_0001","name":"Fish & \"Chips\" </b> \\ é 夏\u2028\u2029\n\t\u0001` + "\x7f" +
		`","status":"active","countries":["DE","FR"],"starts_at":"2025-12-31T23:00:00Z","ends_at":"2026-12-31T23:59:59Z",` +
		`"budget":{"amount_minor":123456789012,"currency":"EUR"},"active":true}`
	if r.status != 200 || string(r.body) != want {
		t.Fatalf("got %d\n%s\nwant\n%s", r.status, r.body, want)
	}
}

func TestListBadParams(t *testing.T) {
	h := NewList(staticSource{testSet(t, 50)}, func() time.Time { return testNow })
	cursor := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		query     string
		wantField string // "" = 200
		wantMsg   string
	}{
		{"", "", ""},
		{"country=US&active=true&limit=5", "", ""},
		{"country=us", "", ""},
		{"country=u%53", "", ""},
		{"limit=100", "", ""},
		{"limit=1&&", "", ""},
		{"&&limit=1", "", ""},
		{"cursor=" + cursor("cmp_000010"), "", ""},
		{"cursor=" + cursor("zzz"), "", ""},
		{"country=USA", "country", msgCountry},
		{"country=U", "country", msgCountry},
		{"country=", "country", msgCountry},
		{"country", "country", msgCountry},
		{"country=1A", "country", msgCountry},
		{"country=U%0A", "country", msgCountry},
		{"country=US%0A", "country", msgCountry},
		{"country=%C3%9Cx", "country", msgCountry},
		{"active=TRUE", "active", msgActive},
		{"active=1", "active", msgActive},
		{"active=", "active", msgActive},
		{"limit=0", "limit", msgLimit},
		{"limit=-1", "limit", msgLimit},
		{"limit=101", "limit", msgLimit},
		{"limit=abc", "limit", msgLimit},
		{"limit=020", "limit", msgLimit},
		{"limit=+5", "limit", msgLimit},
		{"limit=5.0", "limit", msgLimit},
		{"limit=1000", "limit", msgLimit},
		{"limit=", "limit", msgLimit},
		{"cursor=", "cursor", msgCursor},
		{"cursor=!!", "cursor", msgCursor},
		{"cursor=" + cursor("cmp_000010") + "=", "cursor", msgCursor},
		{"cursor=" + base64.StdEncoding.EncodeToString([]byte("cmp_00001?>")), "cursor", msgCursor},
		{"cursor=A", "cursor", msgCursor},
		{"cursor=Y21wXzAwMDAxMQ", "", ""},
		{"cursor=Y21wXzAwMDAxMR", "cursor", msgCursor}, // non-canonical trailing bits
		{"cursor=" + cursor("a b"), "cursor", msgCursor},
		{"cursor=" + cursor("a/b"), "cursor", msgCursor},
		{"cursor=" + cursor(strings.Repeat("x", 65)), "cursor", msgCursor},
		{"sort=id", "sort", msgUnknown},
		{"Country=US", "Country", msgUnknown},
		{"a%20b=1", "query", msgUnknown},
		{"=x", "query", msgUnknown},
		{"page[size]=1", "query", msgUnknown},
		{"country=US&country=DE", "country", msgDuplicate},
		{"limit=5&limit=5", "limit", msgDuplicate},
		// Left to right, the first problem wins.
		{"limit=0&country=USA", "limit", msgLimit},
		{"country=USA&limit=0", "country", msgCountry},
		{"x=1&limit=0", "x", msgUnknown},
		{"limit=5&x=1", "x", msgUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := serve(t, h, "/api/v1/campaigns?"+tt.query, "", "")
			if r.contentType != "application/json" {
				t.Fatalf("content type %q", r.contentType)
			}
			if tt.wantField == "" {
				if r.status != 200 {
					t.Fatalf("got %d %s", r.status, r.body)
				}
				var p page
				decodeStrict(t, r.body, &p)
				return
			}
			want := fmt.Sprintf(`{"error":"bad_request","message":%q,"field":%q}`, tt.wantMsg, tt.wantField)
			if r.status != 400 || string(r.body) != want {
				t.Fatalf("got %d %s, want 400 %s", r.status, r.body, want)
			}
		})
	}
}

// Walking next_cursor to the end must yield exactly the filtered set, in id
// order, in pages of at most limit, with a null cursor only at the end.
func TestListWalk(t *testing.T) {
	set := testSet(t, 600)
	h := NewList(staticSource{set}, func() time.Time { return testNow })
	for _, filter := range []string{"", "country=DE", "country=jp", "active=true", "active=false", "country=FR&active=true", "country=ZZ"} {
		for _, limit := range []int{0, 1, 7, 100} {
			t.Run(fmt.Sprintf("%s/limit=%d", filter, limit), func(t *testing.T) {
				var want []string
				for _, c := range set.Sorted("") {
					if matches(c, filter) {
						want = append(want, c.ID)
					}
				}
				pageSize := limit
				if limit == 0 {
					pageSize = DefaultLimit
				}
				var got []string
				cursor := ""
				for pages := 0; ; pages++ {
					if pages > len(want)+1 {
						t.Fatal("pagination does not end")
					}
					q := filter
					if limit > 0 {
						q += fmt.Sprintf("&limit=%d", limit)
					}
					if cursor != "" {
						q += "&cursor=" + cursor
					}
					r := serve(t, h, "/api/v1/campaigns?"+q, "", "")
					if r.status != 200 {
						t.Fatalf("%s: %d %s", q, r.status, r.body)
					}
					var p page
					decodeStrict(t, r.body, &p)
					if len(p.Data) > pageSize {
						t.Fatalf("%s: %d items, limit %d", q, len(p.Data), pageSize)
					}
					for _, pc := range p.Data {
						c, _ := set.Campaign(pc.ID)
						checkPublic(t, pc, c, testNow)
						got = append(got, pc.ID)
					}
					if p.NextCursor == nil {
						break
					}
					if len(p.Data) != pageSize {
						t.Fatalf("%s: short page (%d) with a next cursor", q, len(p.Data))
					}
					cursor = *p.NextCursor
				}
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Fatalf("walk got %d ids, want %d\n got %v\nwant %v", len(got), len(want), got, want)
				}
			})
		}
	}
}

func matches(c *campaign.Campaign, filter string) bool {
	for _, kv := range strings.Split(filter, "&") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "country":
			if !c.AllowsCountry(strings.ToUpper(v)) {
				return false
			}
		case "active":
			if c.ActiveAt(testNow) != (v == "true") {
				return false
			}
		}
	}
	return true
}

// A cursor naming an id that has since left the set resumes after it.
func TestListCursorAfterRemovedID(t *testing.T) {
	set := testSet(t, 30)
	h := NewList(staticSource{set}, func() time.Time { return testNow })
	cur := base64.RawURLEncoding.EncodeToString([]byte("cmp_000010a"))
	r := serve(t, h, "/api/v1/campaigns?limit=2&cursor="+cur, "", "")
	var p page
	decodeStrict(t, r.body, &p)
	if r.status != 200 || len(p.Data) != 2 || p.Data[0].ID != "cmp_000011" || p.Data[1].ID != "cmp_000012" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if p.NextCursor == nil || *p.NextCursor != base64.RawURLEncoding.EncodeToString([]byte("cmp_000012")) {
		t.Fatalf("next cursor %v", p.NextCursor)
	}
}

// retryingSource has no data yet and says when it tries again.
type retryingSource struct {
	staticSource
	after time.Duration
}

func (r retryingSource) RetryAfter() time.Duration { return r.after }

// Before the hot cache ever loaded, both lookups answer the contract's
// JSON 503 with Retry-After (never a 404 a client would take for an
// answer) and return ErrNoData, which lets a route with fallback ask the
// monolith instead.
func TestNoData(t *testing.T) {
	now := func() time.Time { return testNow }
	tests := []struct {
		name  string
		src   Source
		after string
	}{
		{"source without a schedule", staticSource{}, "5"},
		{"hot cache retrying in 2.2s", retryingSource{after: 2200 * time.Millisecond}, "3"},
	}
	for _, tt := range tests {
		for _, h := range []interface {
			Serve(*fasthttp.RequestCtx) error
		}{NewGet(tt.src, now), NewList(tt.src, now)} {
			var ctx fasthttp.RequestCtx
			ctx.Request.SetRequestURI("/api/v1/campaigns")
			ctx.Request.Header.Set("X-Request-Id", "req-7")
			matchID(t, &ctx, "cmp_000001")
			err := h.Serve(&ctx)
			if !errors.Is(err, ErrNoData) {
				t.Fatalf("%s, %T: error %v, want ErrNoData", tt.name, h, err)
			}
			if a, ok := err.(interface{ Answered() bool }); !ok || !a.Answered() {
				t.Errorf("%s, %T: ErrNoData does not say the answer is written", tt.name, h)
			}
			r := &ctx.Response
			want := `{"error":"unavailable","message":"campaign data unavailable","request_id":"req-7"}`
			if r.StatusCode() != 503 || string(r.Body()) != want || string(r.Header.ContentType()) != "application/json" ||
				string(r.Header.Peek("Retry-After")) != tt.after {
				t.Errorf("%s, %T: %d %q %s Retry-After %q; want 503 %s, Retry-After %s", tt.name, h, r.StatusCode(),
					r.Header.ContentType(), r.Body(), r.Header.Peek("Retry-After"), want, tt.after)
			}
		}
	}
}

// With data, a filter that matches nothing is an empty page, not an error.
func TestEmptyPage(t *testing.T) {
	h := NewList(staticSource{testSet(t, 10)}, func() time.Time { return testNow })
	r := serve(t, h, "/api/v1/campaigns?country=ZZ", "", "")
	if r.status != 200 || string(r.body) != `{"data":[],"next_cursor":null}` {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	// A cursor past the last id, too.
	r = serve(t, h, "/api/v1/campaigns?cursor="+base64.RawURLEncoding.EncodeToString([]byte("zzz")), "", "")
	if r.status != 200 || string(r.body) != `{"data":[],"next_cursor":null}` {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}
