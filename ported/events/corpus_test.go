package events

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/strangler-proxy/strangler/ported/campaign"
)

// request is one corpus entry: sent as POST /api/v1/events to both twins.
type request struct {
	name        string
	contentType string // sent verbatim unless noCT
	noCT        bool
	requestID   string // X-Request-Id; "" sends none
	idemKey     string // Idempotency-Key, verbatim; "" sends none
	body        []byte
}

func jsonRequest(name string, body []byte) request {
	return request{name: name, contentType: "application/json", body: body}
}

// parityCorpus is deterministic: the same requests in the same order on
// every run, given the same campaign data.
func parityCorpus(set *campaign.Set) []request {
	var rs []request
	add := func(name string, body []byte) { rs = append(rs, jsonRequest(name, body)) }

	for _, d := range []struct {
		name string
		doc  doc
	}{
		{"page_view", pageView()}, {"click", click()}, {"signup", signup()}, {"purchase", purchase()}, {"refund", refund()},
	} {
		add("valid "+d.name, d.doc.bytes())
	}
	for _, d := range validVariants() {
		add("valid "+d.name, d.doc.bytes())
	}
	add("valid whitespace everywhere", []byte("\r\n\t {\n \"type\" : \"page_view\" ,\n\t\"user_id\"\t:\"u_alice0001\" , \"occurred_at\":"+
		ts(-time.Hour)+" ,\"country\" :\"DE\" \r\n} \n\t"))
	for _, c := range ruleCases() {
		add("rule "+c.name, c.body)
	}
	for _, c := range boundaryCases() {
		add("boundary "+c.name, c.body)
	}
	for _, c := range campaignEdges(set) {
		add("campaign edge "+c.name, c.doc.bytes())
	}
	for _, c := range parseCases() {
		add("parse "+c.name, []byte(c.give))
	}
	for _, c := range numberCases() {
		add("number "+c.name, c.doc.bytes())
	}
	for _, c := range unicodeCases() {
		add("unicode "+c.name, c.doc.bytes())
	}
	for _, c := range wrongTypeCases() {
		add("type "+c.name, c.doc.bytes())
	}
	for i, d := range combinations(140) {
		add(fmt.Sprintf("combination %03d", i), d.bytes())
	}
	rs = append(rs, transportCases()...)
	return rs
}

type namedDoc struct {
	name string
	doc  doc
}

func validVariants() []namedDoc {
	return []namedDoc{
		{"page_view all optional fields", pageView().set("session_id", `"s_0123456789abcdefXYZ"`).set("campaign_id", `"cmp_000001"`).
			set("email", `"x@y.io"`).set("metadata", `{"path":"/home","q":"a&b=<c>"}`)},
		{"click without campaign", click().del("campaign_id")},
		{"signup minimal email", signup().set("email", `"a@b.cd"`)},
		{"signup email with tabs and NUL", signup().set("email", `"\t\u0000A@B.CD\u000b\n"`)},
		{"purchase JPY integer amount", purchase().set("currency", `"JPY"`).set("amount", `3000`).set("items", `[{"sku":"JP-1","qty":3,"price":1000}]`)},
		{"purchase KWD", purchase().set("currency", `"KWD"`).set("amount", `12.345`).set("items", `[{"sku":"KW-1","qty":5,"price":2.469}]`)},
		{"purchase 0.1+0.2", purchase().set("amount", `0.3`).set("items", `[{"sku":"A-1","qty":1,"price":0.1},{"sku":"A-2","qty":1,"price":0.2}]`)},
		{"purchase amount with exponent", purchase().set("amount", `2.55E1`)},
		{"purchase amount with trailing zeros", purchase().set("amount", `25.500`)},
		{"purchase lower-case currency", purchase().set("currency", `"eur"`)},
		{"purchase no metadata no campaign", purchase().del("metadata").del("campaign_id").del("session_id")},
		{"purchase many items", purchase().set("amount", `150`).set("items", "["+strings.TrimSuffix(strings.Repeat(`{"sku":"MANY-1","qty":3,"price":1},`, 50), ",")+"]")},
		{"refund with items", refund().set("items", `[{"sku":"R-1","qty":1,"price":1500}]`)},
		{"refund items need not sum", refund().set("items", `[{"sku":"R-1","qty":1,"price":7}]`)},
		{"refund with campaign", refund().set("campaign_id", `"cmp_000001"`)},
		{"members reordered", doc{{"country", `"DE"`}, {"occurred_at", ts(-time.Hour)}, {"user_id", `"u_alice0001"`}, {"type", `"page_view"`}}},
		{"duplicate type, last valid", pageView().set("type", `"nope"`).add("type", `"page_view"`)},
		{"duplicate metadata keys", pageView().set("metadata", `{"a":"1","b":"2","a":"3"}`)},
		{"escaped member names", doc{{"typ\u0065", `"page_view"`}}.set("user_id", `"u_alice0001"`).set("occurred_at", ts(0)).set("country", `"DE"`)},
		{"escaped values", pageView().set("user_id", `"u\u005falice0001"`).set("country", `"\u0064e"`)},
		{"offset timestamp", pageView().set("occurred_at", `"2026-03-01T06:30:00-05:30"`)},
		{"lower-case t and z", pageView().set("occurred_at", `"2026-03-01t11:00:00.5z"`)},
		{"empty metadata", pageView().set("metadata", `{}`)},
		{"fraction beyond ms", pageView().set("occurred_at", `"2026-03-01T11:59:59.999999999Z"`)},
		{"fixture campaign with DE", click().set("country", `"DE"`)},
	}
}

// campaignEdges finds campaigns in the shipped data whose start or end lies
// inside the 7-day window, and sends events on both sides of the edge.
func campaignEdges(set *campaign.Set) []namedDoc {
	lo, hi := fixedNow.Add(-7*24*time.Hour), fixedNow.Add(5*time.Minute)
	var out []namedDoc
	var ended, started bool
	for _, c := range set.Sorted("") {
		if c.Status != "active" || len(c.Countries) == 0 {
			continue
		}
		base := click().set("campaign_id", strconv.Quote(c.ID)).set("country", strconv.Quote(strings.ToLower(c.Countries[0])))
		at := func(t time.Time) string { return strconv.Quote(t.Format(time.RFC3339Nano)) }
		if !ended && c.EndsAt.After(lo) && !c.EndsAt.After(fixedNow) && c.StartsAt.Before(c.EndsAt.Add(-time.Second)) {
			ended = true
			out = append(out,
				namedDoc{c.ID + " 1ns before end", base.set("occurred_at", at(c.EndsAt.Add(-time.Nanosecond)))},
				namedDoc{c.ID + " at end", base.set("occurred_at", at(c.EndsAt))})
		}
		if !started && c.StartsAt.After(lo) && c.StartsAt.Before(hi) {
			started = true
			out = append(out,
				namedDoc{c.ID + " 1s before start", base.set("occurred_at", at(c.StartsAt.Add(-time.Second)))},
				namedDoc{c.ID + " at start", base.set("occurred_at", at(c.StartsAt))})
		}
	}
	return out
}

func numberCases() []namedDoc {
	var out []namedDoc
	amounts := []string{"25.5", "25.50", "2.55e1", "2.55E+1", "255e-1", "25.500000000000000001", "25.499999999999999999",
		"25.505", "25.4", "1e309", "-1e309", "1e-400", "5e-324", "-0", "-0.0", "0.0", "0", "99999999999999999999",
		"9223372036854775807", "-9223372036854775808", "1000000000", "1000000000.01", "999999999.99", "0.01", "0.001",
		"1.7976931348623157e308", "4.9e-324", "123456789.123456789"}
	for _, a := range amounts {
		out = append(out, namedDoc{"EUR amount " + a, purchase().set("amount", a)})
		out = append(out, namedDoc{"JPY refund amount " + a, refund().set("amount", a)})
		out = append(out, namedDoc{"KWD refund amount " + a, refund().set("currency", `"KWD"`).set("amount", a)})
	}
	for _, q := range []string{"1", "-0", "0", "1000", "1001", "1.0", "1e0", "2E0", "9223372036854775807", "9223372036854775808", "-9223372036854775809", "true", `"1"`, "null"} {
		out = append(out, namedDoc{"qty " + q, purchase().set("amount", `10.25`).set("items", `[{"sku":"Q-1","qty":`+q+`,"price":10.25}]`)})
	}
	for _, p := range []string{"0.1", "0.10", "0.105", "1e-2", "1E9", "1e9", "1.0000000001e9", "1e-324", "-5", "[1]", "{}"} {
		out = append(out, namedDoc{"price " + p, refund().set("currency", `"EUR"`).set("amount", `1`).set("items", `[{"sku":"P-1","qty":1,"price":`+p+`}]`)})
	}
	return out
}

func unicodeCases() []namedDoc {
	values := []string{
		`"日本語テキスト"`, `"emoji 😀🎉"`, `"\u00e9\u00e8"`, `"\ud83d\ude00 pair"`, "\"raw \u2028 \u2029 separators\"",
		`"escaped \u2028\u2029"`, `"nul \u0000 inside"`, `"ctl \u0001\u001f\u007f"`, `"slash \/ and /"`, `"</script>"`,
		`"quote \" backslash \\"`, `"tab\tnl\ncr\rbs\bff\f"`, `"e\u0301 combining"`, `"` + strings.Repeat("😀", 256) + `"`,
		`"` + strings.Repeat("😀", 257) + `"`, `"` + strings.Repeat("e\u0301", 128) + `"`, `"` + strings.Repeat("a", 257) + `"`,
		`"\uFEFF BOM inside"`, `"\uffff\ufffe noncharacters"`, `"\udbff\udfff max"`,
	}
	var out []namedDoc
	for i, v := range values {
		out = append(out, namedDoc{fmt.Sprintf("metadata value %02d", i), pageView().set("metadata", `{"v":`+v+`}`)})
	}
	for i, k := range []string{"ключ", "k😀", "a b", "a\u2028b", "a\"b", "a\\b", "", "A", "9a", strings.Repeat("k", 41), "a\tb", "a/b"} {
		out = append(out, namedDoc{fmt.Sprintf("metadata key %02d", i), pageView().set("metadata", `{"ok":"1",`+jsonKey(k)+`:"x"}`)})
		out = append(out, namedDoc{fmt.Sprintf("unknown key %02d", i), pageView().set(k, `"x"`)})
	}
	out = append(out, namedDoc{"user_id unicode", pageView().set("user_id", `"u_ålice0001"`)})
	out = append(out, namedDoc{"country unicode", pageView().set("country", `"Dé"`)})
	out = append(out, namedDoc{"type with NUL", pageView().set("type", `"page_view\u0000"`)})
	out = append(out, namedDoc{"item member with empty name", purchase().set("items", `[{"sku":"SKU-1","qty":2,"price":10.25,"":1},{"sku":"SKU-2","qty":1,"price":5}]`)})
	out = append(out, namedDoc{"sku unicode", purchase().set("items", `[{"sku":"SKÜ-1","qty":2,"price":10.25},{"sku":"SKU-2","qty":1,"price":5}]`)})
	return out
}

func jsonKey(k string) string {
	b, _ := json.Marshal(k)
	return string(b)
}

func wrongTypeCases() []namedDoc {
	values := []string{`null`, `true`, `false`, `0`, `1.5`, `"s"`, `[]`, `{}`, `[1,2]`, `{"a":1}`}
	fields := []struct {
		name string
		base func() doc
	}{
		{"type", pageView}, {"user_id", pageView}, {"session_id", pageView}, {"occurred_at", pageView}, {"country", pageView},
		{"currency", purchase}, {"amount", purchase}, {"items", purchase}, {"original_event_id", refund},
		{"campaign_id", click}, {"email", signup}, {"metadata", pageView},
	}
	var out []namedDoc
	for i, f := range fields {
		// Two values per field keep the corpus small but vary the types.
		for j := range 2 {
			v := values[(i*3+j*5)%len(values)]
			out = append(out, namedDoc{f.name + " = " + v, f.base().set(f.name, v)})
		}
	}
	return out
}

// mutations break or bend one thing each; combinations stack several.
func mutations() []func(doc) doc {
	set := func(k, v string) func(doc) doc { return func(d doc) doc { return d.set(k, v) } }
	del := func(k string) func(doc) doc { return func(d doc) doc { return d.del(k) } }
	return []func(doc) doc{
		del("type"), set("type", `"buy"`), set("type", `7`), set("type", `"purchase"`), set("type", `"refund"`), set("type", `"signup"`),
		del("user_id"), set("user_id", `"bad"`), set("user_id", `[]`),
		set("session_id", `"s_x"`), set("session_id", `"s_0123456789"`),
		del("occurred_at"), set("occurred_at", `"2026-03-01"`), set("occurred_at", ts(-8*24*time.Hour)), set("occurred_at", ts(time.Hour)),
		set("occurred_at", ts(-7*24*time.Hour)), set("occurred_at", ts(5*time.Minute)),
		del("country"), set("country", `"jp"`), set("country", `"ZZ"`),
		del("currency"), set("currency", `"usd"`), set("currency", `"JPY"`), set("currency", `"KWD"`), set("currency", `"ABC"`),
		del("amount"), set("amount", `0`), set("amount", `12.345`), set("amount", `25.5`), set("amount", `1e12`), set("amount", `"1"`),
		del("items"), set("items", `[]`), set("items", `[{"sku":"X","qty":1,"price":1}]`), set("items", `[{"sku":"SKU-9","qty":1,"price":25.5}]`),
		set("items", `[{"sku":"SKU-9","qty":0.5,"price":-1,"x":1}]`), set("items", `[null]`),
		set("original_event_id", `"0b6f6a4e-3f0c-4d5e-9a1b-2c3d4e5f6a7b"`), set("original_event_id", `"nope"`), del("original_event_id"),
		set("campaign_id", `"cmp_000001"`), set("campaign_id", `"cmp_000002"`), set("campaign_id", `"cmp_000004"`), set("campaign_id", `"cmp_999999"`), set("campaign_id", `"CMP_000001"`),
		set("email", `"Someone@Example.com"`), set("email", `"nope"`), del("email"),
		set("metadata", `{"a":"b"}`), set("metadata", `{"A":{"n":1}}`), set("metadata", `"m"`),
		set("event_id", `"x"`), set("received_at", `1`), set("schema_version", `2`), set("advertiser_id", `null`), set("email_sha256", `""`),
		set("extra", `1`), set("Extra", `{}`), set("zz", `[]`),
	}
}

func combinations(n int) []doc {
	r := rand.New(rand.NewPCG(2026, 3))
	bases := []func() doc{pageView, click, signup, purchase, refund}
	ms := mutations()
	out := make([]doc, n)
	for i := range out {
		d := bases[r.IntN(len(bases))]()
		for range 2 + r.IntN(5) {
			d = ms[r.IntN(len(ms))](d)
		}
		out[i] = d
	}
	return out
}

// transportCases vary what surrounds the JSON: content types, sizes and
// request ids.
func transportCases() []request {
	valid := pageView().bytes()
	bad := []byte(`{"type":"nope"}`)
	var rs []request
	for _, ct := range []struct {
		ct string
		ok bool
	}{
		{"application/json; charset=utf-8", true}, {"Application/JSON;Charset=UTF-8", true}, {`application/json; charset="utf-8"`, true},
		{"application/json ; charset=utf-8", true}, {"application/json;\tcharset=UTF-8", true}, {"application/json; charset=utf-8; charset=utf-8", true},
		{"application/json;", false}, {"application/json; charset=latin1", false}, {"application/json; charset=utf8", false},
		{"application/json; foo=bar", false}, {"application/json; charset", false}, {"text/json", false}, {"application/jsonx", false},
		{"text/plain", false}, {"application/x-www-form-urlencoded", false}, {"application/problem+json", false},
		{`application/json; charset="utf-8`, false},
	} {
		rs = append(rs, request{name: "content-type " + ct.ct, contentType: ct.ct, body: valid})
		if !ct.ok {
			rs = append(rs, request{name: "content-type with request id " + ct.ct, contentType: ct.ct, body: valid, requestID: "req-415"})
		}
	}
	rs = append(rs, request{name: "no content-type", noCT: true, body: valid})
	rs = append(rs, request{name: "empty content-type", contentType: "", body: valid})

	pad := func(size int, base doc) []byte {
		b := base.bytes()
		return append(append(append([]byte{}, b[:len(b)-1]...), strings.Repeat(" ", size-len(b))...), '}')
	}
	rs = append(rs,
		jsonRequest("size exactly 65536", pad(65536, pageView())),
		jsonRequest("size 65537", pad(65537, pageView())),
		jsonRequest("size 65537 malformed", append([]byte("{"), strings.Repeat("x", 65536)...)),
		request{name: "size 70000 wrong content-type", contentType: "text/plain", body: make([]byte, 70000)},
		jsonRequest("size 200000", pad(200000, pageView())),
	)
	for _, id := range []string{"req-1", "0b6f6a4e-3f0c-4d5e-9a1b-2c3d4e5f6a7b", "a/b+c=d:e.f_g", `x"y\z`, "a b", strings.Repeat("r", 128), strings.Repeat("r", 129), "é", "<&>/"} {
		rs = append(rs,
			request{name: "request id 422 " + id, contentType: "application/json", body: bad, requestID: id},
			request{name: "request id 400 " + id, contentType: "application/json", body: []byte("{"), requestID: id},
		)
	}
	rs = append(rs, request{name: "request id on 202", contentType: "application/json", body: valid, requestID: "req-202"})
	return rs
}
