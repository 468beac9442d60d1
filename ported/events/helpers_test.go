package events

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/strangler-proxy/strangler/ported/campaign"
	"github.com/strangler-proxy/strangler/ported/delivery"
)

func TestMain(m *testing.M) {
	// fasthttp refreshes its Date header from one process-wide goroutine
	// that never stops.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
}

// fixedNow is the clock of every test, PHP's STRANGLER_FIXED_NOW in the
// parity test. Its milliseconds make truncation and the nanosecond window
// edges visible.
var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 250_000_000, time.UTC)

const fixedNowText = "2026-03-01T12:00:00.250Z"

// ts is fixedNow+d as RFC 3339 with nanoseconds, quoted for a doc.
func ts(d time.Duration) string { return strconv.Quote(fixedNow.Add(d).Format(time.RFC3339Nano)) }

// fixtureCampaigns are the first four campaigns of the shipped
// campaigns.json (ported/campaign/campaigngen fixtures), so unit tests and
// the parity test name the same ids.
func fixtureCampaigns(t testing.TB) *campaign.Set {
	t.Helper()
	d := func(y int, m time.Month, day int) time.Time { return time.Date(y, m, day, 0, 0, 0, 0, time.UTC) }
	four := []string{"DE", "FR", "GB", "US"}
	set, err := campaign.NewSet(&campaign.File{Version: 1, Campaigns: []campaign.Campaign{
		{ID: "cmp_000001", AdvertiserID: "adv_0489", Name: "a", Status: "active", Countries: four, StartsAt: d(2025, 1, 1), EndsAt: d(2028, 1, 1), Budget: campaign.Budget{Currency: "EUR"}},
		{ID: "cmp_000002", AdvertiserID: "adv_0436", Name: "b", Status: "paused", Countries: four, StartsAt: d(2025, 1, 1), EndsAt: d(2028, 1, 1), Budget: campaign.Budget{Currency: "EUR"}},
		{ID: "cmp_000003", AdvertiserID: "adv_0291", Name: "c", Status: "ended", Countries: four, StartsAt: d(2025, 1, 1), EndsAt: d(2025, 6, 1), Budget: campaign.Budget{Currency: "EUR"}},
		{ID: "cmp_000004", AdvertiserID: "adv_0153", Name: "d", Status: "active", Countries: four, StartsAt: d(2027, 7, 1), EndsAt: d(2027, 12, 31), Budget: campaign.Budget{Currency: "EUR"}},
		// Ends inside the 7-day window: active one second before, not at.
		{ID: "cmp_000042", AdvertiserID: "adv_0042", Name: "e", Status: "active", Countries: []string{"JP"}, StartsAt: d(2026, 1, 1), EndsAt: d(2026, 2, 27), Budget: campaign.Budget{Currency: "JPY"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// doc is a JSON object as ordered members with raw JSON values, so tests
// can drop, replace and duplicate members and keep full control of the bytes.
type doc []member

type member struct{ key, raw string }

// set replaces every member named key (keeping the first one's position)
// or appends it.
func (d doc) set(key, raw string) doc {
	out := make(doc, 0, len(d)+1)
	done := false
	for _, m := range d {
		if m.key == key {
			if !done {
				out = append(out, member{key, raw})
				done = true
			}
			continue
		}
		out = append(out, m)
	}
	if !done {
		out = append(out, member{key, raw})
	}
	return out
}

// add appends a member even when the name exists (duplicate keys).
func (d doc) add(key, raw string) doc { return append(d[:len(d):len(d)], member{key, raw}) }

func (d doc) del(key string) doc {
	out := make(doc, 0, len(d))
	for _, m := range d {
		if m.key != key {
			out = append(out, m)
		}
	}
	return out
}

func (d doc) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range d {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.key)
		b.Write(k)
		b.WriteByte(':')
		b.WriteString(m.raw)
	}
	b.WriteByte('}')
	return b.String()
}

func (d doc) bytes() []byte { return []byte(d.String()) }

// Valid events, one per type.
func pageView() doc {
	return doc{{"type", `"page_view"`}, {"user_id", `"u_alice0001"`}, {"occurred_at", ts(-time.Hour)}, {"country", `"DE"`}}
}

func click() doc {
	return doc{{"type", `"click"`}, {"user_id", `"u_bob000002"`}, {"session_id", `"s_AbCdEf123456"`},
		{"occurred_at", ts(-time.Minute)}, {"country", `"fr"`}, {"campaign_id", `"cmp_000001"`}}
}

func signup() doc {
	return doc{{"type", `"signup"`}, {"user_id", `"u_carol0003"`}, {"occurred_at", ts(-2 * time.Hour)},
		{"country", `"GB"`}, {"email", `"  Carol.Smith+ads@Example.CO.UK "`}}
}

func purchase() doc {
	return doc{{"type", `"purchase"`}, {"user_id", `"u_dave00004"`}, {"session_id", `"s_session0004"`},
		{"occurred_at", ts(-30 * time.Minute)}, {"country", `"US"`}, {"currency", `"EUR"`}, {"amount", `25.5`},
		{"items", `[{"sku":"SKU-1","qty":2,"price":10.25},{"sku":"SKU-2","qty":1,"price":5}]`},
		{"campaign_id", `"cmp_000001"`}, {"metadata", `{"source":"newsletter","ab":"b"}`}}
}

func refund() doc {
	return doc{{"type", `"refund"`}, {"user_id", `"u_erin00005"`}, {"occurred_at", ts(-3 * 24 * time.Hour)},
		{"country", `"DE"`}, {"currency", `"JPY"`}, {"amount", `1500`},
		{"original_event_id", `"0b6f6a4e-3f0c-4d5e-9a1b-2c3d4e5f6a7b"`}}
}

// ruleCase is a valid event broken in one way, with the violations it must
// report as "field code", in order.
type ruleCase struct {
	name string
	body []byte
	want []string
}

// ruleCases breaks every rule at least once, alone. The parity corpus sends
// the same bodies to PHP.
func ruleCases() []ruleCase {
	items := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = `{"sku":"SKU-1","qty":1,"price":1}`
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	meta := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(`"k%02d":"v"`, i)
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	c := func(name string, d doc, want ...string) ruleCase { return ruleCase{name, d.bytes(), want} }
	long := strings.Repeat("é", 257)
	return []ruleCase{
		c("type missing", pageView().del("type"), "type required"),
		c("type number", pageView().set("type", `5`), "type wrong_type"),
		c("type null", pageView().set("type", `null`), "type wrong_type"),
		c("type unknown", pageView().set("type", `"view"`), "type type_unknown"),
		c("type wrong case", pageView().set("type", `"Page_View"`), "type type_unknown"),
		c("user_id missing", pageView().del("user_id"), "user_id required"),
		c("user_id number", pageView().set("user_id", `42`), "user_id wrong_type"),
		c("user_id upper", pageView().set("user_id", `"U_ALICE0001"`), "user_id user_id_format"),
		c("user_id short", pageView().set("user_id", `"u_abc"`), "user_id user_id_format"),
		c("user_id trailing newline", pageView().set("user_id", `"u_alice0001\n"`), "user_id user_id_format"),
		c("user_id 33 chars", pageView().set("user_id", `"u_`+strings.Repeat("a", 33)+`"`), "user_id user_id_format"),
		c("session_id format", pageView().set("session_id", `"sess-1"`), "session_id session_id_format"),
		c("session_id null", pageView().set("session_id", `null`), "session_id wrong_type"),
		c("occurred_at missing", pageView().del("occurred_at"), "occurred_at required"),
		c("occurred_at number", pageView().set("occurred_at", `1772366400`), "occurred_at wrong_type"),
		c("occurred_at no zone", pageView().set("occurred_at", `"2026-03-01T11:00:00"`), "occurred_at occurred_at_format"),
		c("occurred_at space", pageView().set("occurred_at", `"2026-03-01 11:00:00Z"`), "occurred_at occurred_at_format"),
		c("occurred_at Feb 30", pageView().set("occurred_at", `"2026-02-30T11:00:00Z"`), "occurred_at occurred_at_format"),
		c("occurred_at leap second", pageView().set("occurred_at", `"2026-02-28T23:59:60Z"`), "occurred_at occurred_at_format"),
		c("occurred_at 10 fraction digits", pageView().set("occurred_at", `"2026-03-01T11:00:00.1234567890Z"`), "occurred_at occurred_at_format"),
		c("occurred_at offset 24h", pageView().set("occurred_at", `"2026-03-01T11:00:00+24:00"`), "occurred_at occurred_at_format"),
		c("occurred_at too old", pageView().set("occurred_at", ts(-7*24*time.Hour-time.Second)), "occurred_at occurred_at_too_old"),
		c("occurred_at too old by 1ns", pageView().set("occurred_at", ts(-7*24*time.Hour-time.Nanosecond)), "occurred_at occurred_at_too_old"),
		c("occurred_at in future", pageView().set("occurred_at", ts(5*time.Minute+time.Second)), "occurred_at occurred_at_in_future"),
		c("occurred_at in future by 1ns", pageView().set("occurred_at", ts(5*time.Minute+time.Nanosecond)), "occurred_at occurred_at_in_future"),
		c("country missing", pageView().del("country"), "country required"),
		c("country unknown", pageView().set("country", `"XX"`), "country country_unknown"),
		c("country alpha-3", pageView().set("country", `"DEU"`), "country country_unknown"),
		c("country number", pageView().set("country", `49`), "country wrong_type"),
		c("currency missing", purchase().del("currency"), "currency required"),
		c("currency unknown", purchase().set("currency", `"XXX"`), "currency currency_unknown"),
		c("currency number", purchase().set("currency", `978`), "currency wrong_type"),
		c("currency on page_view", pageView().set("currency", `"EUR"`), "currency not_allowed"),
		c("amount missing", purchase().del("amount"), "amount required"),
		c("amount string", purchase().set("amount", `"25.50"`), "amount wrong_type"),
		c("amount zero", refund().set("amount", `0`), "amount amount_not_positive"),
		c("amount negative zero", refund().set("amount", `-0.0`), "amount amount_not_positive"),
		c("amount negative", refund().set("amount", `-1500`), "amount amount_not_positive"),
		c("amount too large", refund().set("amount", `1000000001`), "amount amount_too_large"),
		c("amount 1e309", refund().set("amount", `1e309`), "amount amount_too_large"),
		c("amount precision JPY", refund().set("amount", `1500.5`), "amount amount_precision"),
		c("amount precision EUR", refund().set("currency", `"EUR"`).set("amount", `1.005`), "amount amount_precision"),
		c("amount on click", click().set("amount", `1`), "amount not_allowed"),
		c("items missing", purchase().del("items"), "items required"),
		c("items object", purchase().set("items", `{"sku":"SKU-1","qty":1,"price":25.5}`), "items wrong_type"),
		c("items empty", purchase().set("items", `[]`), "items items_count"),
		c("items 51", purchase().set("items", items(51)).set("amount", `51`), "items items_count"),
		c("items on signup", signup().set("items", items(1)), "items not_allowed"),
		c("item not object", purchase().set("items", `[{"sku":"SKU-1","qty":1,"price":20.5},"SKU-2"]`), "items[1] wrong_type"),
		c("item sku missing", purchase().set("items", `[{"qty":2,"price":10.25},{"sku":"SKU-2","qty":1,"price":5}]`), "items[0].sku required"),
		c("item sku format", purchase().set("items", `[{"sku":"sku-1","qty":2,"price":10.25},{"sku":"SKU-2","qty":1,"price":5}]`), "items[0].sku item_sku_format"),
		c("item sku number", purchase().set("items", `[{"sku":1,"qty":2,"price":10.25},{"sku":"SKU-2","qty":1,"price":5}]`), "items[0].sku wrong_type"),
		c("item qty zero", purchase().set("items", `[{"sku":"SKU-1","qty":0,"price":10.25},{"sku":"SKU-2","qty":1,"price":5}]`), "items[0].qty item_qty_range"),
		c("item qty 1001", purchase().set("items", `[{"sku":"SKU-1","qty":1001,"price":10.25},{"sku":"SKU-2","qty":1,"price":5}]`), "items[0].qty item_qty_range"),
		c("item qty float", purchase().set("items", `[{"sku":"SKU-1","qty":2.0,"price":10.25},{"sku":"SKU-2","qty":1,"price":5}]`), "items[0].qty wrong_type"),
		c("item qty missing", purchase().set("items", `[{"sku":"SKU-1","price":10.25},{"sku":"SKU-2","qty":1,"price":5}]`), "items[0].qty required"),
		c("item price zero", purchase().set("items", `[{"sku":"SKU-1","qty":2,"price":0},{"sku":"SKU-2","qty":1,"price":5}]`), "items[0].price price_not_positive"),
		c("item price too large", purchase().set("items", `[{"sku":"SKU-1","qty":2,"price":1e10},{"sku":"SKU-2","qty":1,"price":5}]`), "items[0].price price_too_large"),
		c("item price precision", purchase().set("items", `[{"sku":"SKU-1","qty":2,"price":10.255},{"sku":"SKU-2","qty":1,"price":5}]`), "items[0].price price_precision"),
		c("item price string", purchase().set("items", `[{"sku":"SKU-1","qty":2,"price":"10.25"},{"sku":"SKU-2","qty":1,"price":5}]`), "items[0].price wrong_type"),
		c("item price missing", purchase().set("items", `[{"sku":"SKU-1","qty":2},{"sku":"SKU-2","qty":1,"price":5}]`), "items[0].price required"),
		c("item unknown field", purchase().set("items", `[{"sku":"SKU-1","qty":2,"price":10.25,"color":"red"},{"sku":"SKU-2","qty":1,"price":5}]`), "items[0].color unknown_field"),
		c("items sum off by 0.02", purchase().set("amount", `25.52`), "items items_sum_mismatch"),
		c("original_event_id missing", refund().del("original_event_id"), "original_event_id required"),
		c("original_event_id upper", refund().set("original_event_id", `"0B6F6A4E-3F0C-4D5E-9A1B-2C3D4E5F6A7B"`), "original_event_id original_event_id_format"),
		c("original_event_id v1", refund().set("original_event_id", `"0b6f6a4e-3f0c-1d5e-9a1b-2c3d4e5f6a7b"`), "original_event_id original_event_id_format"),
		c("original_event_id on purchase", purchase().set("original_event_id", `"0b6f6a4e-3f0c-4d5e-9a1b-2c3d4e5f6a7b"`), "original_event_id not_allowed"),
		c("campaign_id format", click().set("campaign_id", `"cmp_1"`), "campaign_id campaign_id_format"),
		c("campaign_id number", click().set("campaign_id", `1`), "campaign_id wrong_type"),
		c("campaign unknown", click().set("campaign_id", `"cmp_999999"`), "campaign_id campaign_not_found"),
		c("campaign paused", click().set("campaign_id", `"cmp_000002"`), "campaign_id campaign_inactive"),
		c("campaign ended", click().set("campaign_id", `"cmp_000003"`), "campaign_id campaign_inactive"),
		c("campaign not started", click().set("campaign_id", `"cmp_000004"`), "campaign_id campaign_inactive"),
		c("campaign country", click().set("country", `"JP"`), "campaign_id campaign_country"),
		c("email missing on signup", signup().del("email"), "email required"),
		c("email no domain dot", signup().set("email", `"carol@localhost"`), "email email_format"),
		c("email two ats", signup().set("email", `"a@b@c.de"`), "email email_format"),
		c("email blank", signup().set("email", `"   "`), "email email_format"),
		c("email non-ascii", signup().set("email", `"jörg@example.de"`), "email email_format"),
		c("email number", signup().set("email", `1`), "email wrong_type"),
		c("metadata array", pageView().set("metadata", `["a"]`), "metadata wrong_type"),
		c("metadata 21 keys", pageView().set("metadata", meta(21)), "metadata metadata_too_many_keys"),
		c("metadata key format", pageView().set("metadata", `{"Source":"x"}`), "metadata.Source metadata_key_format"),
		c("metadata nested", pageView().set("metadata", `{"a":{"b":"c"}}`), "metadata.a metadata_value_type"),
		c("metadata number", pageView().set("metadata", `{"a":1}`), "metadata.a metadata_value_type"),
		c("metadata 257 chars", pageView().set("metadata", `{"a":"`+long+`"}`), "metadata.a metadata_value_too_long"),
		c("event_id sent", pageView().set("event_id", `"0b6f6a4e-3f0c-4d5e-9a1b-2c3d4e5f6a7b"`), "event_id server_assigned"),
		c("received_at sent", pageView().set("received_at", ts(0)), "received_at server_assigned"),
		c("email_sha256 sent", pageView().set("email_sha256", `"00"`), "email_sha256 server_assigned"),
		c("advertiser_id sent", pageView().set("advertiser_id", `"adv_0001"`), "advertiser_id server_assigned"),
		c("schema_version sent", pageView().set("schema_version", `1`), "schema_version server_assigned"),
		c("unknown field", pageView().set("referrer", `"x"`), "referrer unknown_field"),
		c("unknown field case", pageView().set("Type", `"click"`), "Type unknown_field"),
		c("unknown field with NUL inside", pageView().set("a\x00b", `1`), "a\x00b unknown_field"),
		c("unknown field numeric", pageView().set("123", `1`), "123 unknown_field"),
	}
}

// recordingSink keeps what it is given, in order.
type recordingSink struct {
	mu   sync.Mutex
	msgs []delivery.Message
	err  error // returned by Publish when set; nothing is recorded then
	ctxs []bool
}

func (s *recordingSink) Publish(ctx context.Context, m delivery.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, hasDeadline := ctx.Deadline()
	s.ctxs = append(s.ctxs, hasDeadline)
	if s.err != nil {
		return s.err
	}
	s.msgs = append(s.msgs, m)
	return nil
}

func (s *recordingSink) messages() []delivery.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]delivery.Message(nil), s.msgs...)
}

// boundaryCases sit on the edges of the rules: window ends, tolerance,
// limits, number parsing. want is nil for an accepted event.
func boundaryCases() []ruleCase {
	c := func(name string, d doc, want ...string) ruleCase { return ruleCase{name, d.bytes(), want} }
	week := 7 * 24 * time.Hour
	return []ruleCase{
		c("exactly now-7d", pageView().set("occurred_at", ts(-week))),
		c("now-7d-1s", pageView().set("occurred_at", ts(-week-time.Second)), "occurred_at occurred_at_too_old"),
		c("exactly now+5min", pageView().set("occurred_at", ts(5*time.Minute))),
		c("now+5min+1s", pageView().set("occurred_at", ts(5*time.Minute+time.Second)), "occurred_at occurred_at_in_future"),
		c("campaign ends 1s later", click().set("campaign_id", `"cmp_000042"`).set("country", `"JP"`).set("occurred_at", `"2026-02-26T23:59:59.999999999Z"`)),
		c("campaign ends at occurred_at", click().set("campaign_id", `"cmp_000042"`).set("country", `"JP"`).set("occurred_at", `"2026-02-27T00:00:00Z"`), "campaign_id campaign_inactive"),
		c("sum off by exactly 0.01", purchase().set("amount", `25.51`)),
		c("sum off by -0.01", purchase().set("amount", `25.49`)),
		c("sum off by 0.011 (KWD)", purchase().set("currency", `"KWD"`).set("amount", `25.511`), "items items_sum_mismatch"),
		c("sum off by 0.010 (KWD)", purchase().set("currency", `"KWD"`).set("amount", `25.510`)),
		c("JPY: sum must be exact", purchase().set("currency", `"JPY"`).set("amount", `26`).set("items", `[{"sku":"A-1","qty":1,"price":25}]`), "items items_sum_mismatch"),
		c("amount 1000000000 allowed", refund().set("amount", `1000000000`)),
		c("amount 1e9 as float allowed", refund().set("amount", `1.0e9`)),
		c("amount past 1e9 by one ulp", refund().set("amount", `1000000000.0000001`), "amount amount_too_large"),
		c("amount integral float for JPY", refund().set("amount", `1500.0`)),
		c("amount digits beyond float64 round to 1", refund().set("currency", `"EUR"`).set("amount", `1.000000000000000000001`)),
		c("amount 5e-324", refund().set("amount", `5e-324`), "amount amount_precision"),
		c("amount 1e-400 underflows to 0", refund().set("amount", `1e-400`), "amount amount_not_positive"),
		c("amount huge integer literal is a float", refund().set("amount", `99999999999999999999`), "amount amount_too_large"),
		c("amount -1e309", refund().set("amount", `-1e309`), "amount amount_not_positive"),
		c("qty -0 is int 0", purchase().set("items", `[{"sku":"A-1","qty":-0,"price":25.5}]`), "items[0].qty item_qty_range"),
		c("qty past int64 is a float", purchase().set("items", `[{"sku":"A-1","qty":9223372036854775808,"price":25.5}]`), "items[0].qty wrong_type"),
		c("qty int64 max is an int", purchase().set("items", `[{"sku":"A-1","qty":9223372036854775807,"price":25.5}]`), "items[0].qty item_qty_range"),
		c("50 items", purchase().set("amount", `50`).set("items", "["+strings.Repeat(`{"sku":"A-1","qty":1,"price":1},`, 49)+`{"sku":"A-1","qty":1,"price":1}]`)),
		c("20 metadata keys", pageView().set("metadata", `{"a":"","b":"","c":"","d":"","e":"","f":"","g":"","h":"","i":"","j":"","k":"","l":"","m":"","n":"","o":"","p":"","q":"","r":"","s":"","t":""}`)),
		c("20 keys after duplicates collapse", pageView().set("metadata", `{"a":"","b":"","c":"","d":"","e":"","f":"","g":"","h":"","i":"","j":"","k":"","l":"","m":"","n":"","o":"","p":"","q":"","r":"","s":"","t":"","a":"x"}`)),
		c("256 code points", pageView().set("metadata", `{"a":"`+strings.Repeat("日", 256)+`"}`)),
		c("email 254 bytes", signup().set("email", `"`+strings.Repeat("a", 243)+`@example.de"`)),
		c("email 255 bytes", signup().set("email", `"`+strings.Repeat("a", 244)+`@example.de"`), "email email_format"),
	}
}

// parseCase is a body that fails to parse (want is the error) or parses
// (want is nil) only because of how PHP's json_decode draws the line.
type parseCase struct {
	name string
	give string
	want error
}

func parseCases() []parseCase {
	nest := func(n int, open, close string) string {
		return `{"type":"page_view","x":` + strings.Repeat(open, n-1) + "1" + strings.Repeat(close, n-1) + "}"
	}
	return []parseCase{
		{"empty", "", ErrMalformedJSON},
		{"spaces", " \n\t\r", ErrMalformedJSON},
		{"truncated", `{"type":"page_view"`, ErrMalformedJSON},
		{"trailing comma", `{"type":"page_view",}`, ErrMalformedJSON},
		{"single quotes", `{'type':'page_view'}`, ErrMalformedJSON},
		{"bare key", `{type:"page_view"}`, ErrMalformedJSON},
		{"comment", `/**/{}`, ErrMalformedJSON},
		{"two values", `{}{}`, ErrMalformedJSON},
		{"trailing garbage", `{} x`, ErrMalformedJSON},
		{"BOM", "\ufeff{}", ErrMalformedJSON},
		{"NaN", `{"a":NaN}`, ErrMalformedJSON},
		{"Infinity", `{"a":Infinity}`, ErrMalformedJSON},
		{"leading zero", `{"a":01}`, ErrMalformedJSON},
		{"plus", `{"a":+1}`, ErrMalformedJSON},
		{"dot first", `{"a":.5}`, ErrMalformedJSON},
		{"dot last", `{"a":1.}`, ErrMalformedJSON},
		{"bare exponent", `{"a":1e}`, ErrMalformedJSON},
		{"bad escape", `{"a":"\x41"}`, ErrMalformedJSON},
		{"short unicode escape", `{"a":"\u41"}`, ErrMalformedJSON},
		{"raw control char", "{\"a\":\"x\x01\"}", ErrMalformedJSON},
		{"raw tab in string", "{\"a\":\"x\ty\"}", ErrMalformedJSON},
		{"lone high surrogate", `{"a":"\ud800"}`, ErrMalformedJSON},
		{"lone low surrogate", `{"a":"\udc00"}`, ErrMalformedJSON},
		{"high then letter", `{"a":"\ud800\u0041"}`, ErrMalformedJSON},
		{"two highs", `{"a":"\ud800\ud800"}`, ErrMalformedJSON},
		{"surrogate pair", `{"a":"\ud83d\ude00"}`, nil},
		{"NUL-led member name", `{"\u0000a":1}`, ErrMalformedJSON},
		{"NUL-led nested member name", `{"m":{"\u0000":1}}`, ErrMalformedJSON},
		{"NUL inside member name", `{"a\u0000":1}`, nil},
		{"empty member name", `{"":1}`, nil},
		{"nesting 511", nest(511, "[", "]"), nil},
		{"nesting 512", nest(512, "[", "]"), ErrMalformedJSON},
		{"object nesting 511", nest(511, `{"a":`, "}"), nil},
		{"object nesting 512", nest(512, `{"a":`, "}"), ErrMalformedJSON},
		{"invalid UTF-8 in string", "{\"a\":\"\xff\"}", ErrInvalidUTF8},
		{"overlong UTF-8", "{\"a\":\"\xc0\xaf\"}", ErrInvalidUTF8},
		{"UTF-8 surrogate", "{\"a\":\"\xed\xa0\x80\"}", ErrInvalidUTF8},
		{"truncated UTF-8", "{\"a\":\"\xe6\x97\"}", ErrInvalidUTF8},
		{"invalid UTF-8 outside strings", "{\xff}", ErrInvalidUTF8},
		{"array", `[]`, ErrNotObject},
		{"string", `"x"`, ErrNotObject},
		{"number", `1`, ErrNotObject},
		{"null", `null`, ErrNotObject},
		{"true", ` true `, ErrNotObject},
	}
}
