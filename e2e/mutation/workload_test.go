package mutation

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// request is one request of a workload.
type request struct {
	route  string // the route it is for: events, campaign, campaigns
	method string
	path   string
	ctype  string
	body   string
	key    string // Idempotency-Key, "" for none
	retry  bool   // the same request sent again, at least retryDelay later
}

// retryDelay is how long a client waits before retrying: longer than
// shadow.noise.clock_skew (1s), so that a replayed time is an old one.
const retryDelay = 1500 * time.Millisecond

// The shipped campaign data's countries, fixtures and size
// (examples/monolith/CONTRACT.md).
var countries = strings.Fields("AE AR AT AU BE BR CA CH CZ DE DK ES FI FR GB IE IN IT JP KR MX NL NO NZ PL PT SE SG US ZA")

const campaignCount = 10000

// gen makes a deterministic, realistic mix of valid and invalid requests:
// the same seed gives the same requests, so what a mutation needs to show
// (a 50-item purchase, an id ending in 999) is there or not, always.
type gen struct {
	r   *rand.Rand
	now time.Time
	// keyed are events sent with an Idempotency-Key, oldest first: some
	// are sent again later, as a client retries after a timeout.
	keyed []request
}

func newGen(seed uint64, now time.Time) *gen {
	return &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), now: now}
}

func (g *gen) pct(p int) bool { return g.r.IntN(100) < p }

func (g *gen) pick(s []string) string { return s[g.r.IntN(len(s))] }

func (g *gen) alnum(n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[g.r.IntN(len(alphabet))]
	}
	return string(b)
}

const (
	lowerDigits = "abcdefghijklmnopqrstuvwxyz0123456789"
	alnums      = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
)

func (g *gen) uuid() string {
	h := g.alnum(32, "0123456789abcdef")
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-" + string("89ab"[g.r.IntN(4)]) + h[17:20] + "-" + h[20:]
}

// member is one "key":value of a JSON object, value already JSON.
type member struct{ k, v string }

func jstr(s string) string { return fmt.Sprintf("%q", s) }

func object(ms []member) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(jstr(m.k) + ":" + m.v)
	}
	b.WriteByte('}')
	return b.String()
}

// currencies the generator prices in, with their minor digits.
var currencies = []struct {
	code  string
	minor int
}{{"EUR", 2}, {"USD", 2}, {"GBP", 2}, {"JPY", 0}, {"BHD", 3}, {"SEK", 2}}

// money writes v minor units with minor digits: 1999, 2 → "19.99".
func money(v int64, minor int) string {
	if minor == 0 {
		return fmt.Sprint(v)
	}
	scale := int64(1)
	for range minor {
		scale *= 10
	}
	return fmt.Sprintf("%d.%0*d", v/scale, minor, v%scale)
}

// event is a POST /api/v1/events: about 70 % valid, the rest broken in
// the ways clients break them; about 6 % carry an Idempotency-Key (a few
// of them malformed), and about 2 % are retries of one of those, sent
// again with its key and body a while later.
func (g *gen) event() request {
	if len(g.keyed) > 30 && g.pct(2) {
		retry := g.keyed[0]
		g.keyed = g.keyed[1:]
		retry.retry = true
		return retry
	}
	req := g.newEvent()
	switch {
	case g.pct(6):
		req.key = "k-" + g.alnum(8+g.r.IntN(24), alnums)
		g.keyed = append(g.keyed, req)
	case g.pct(1):
		req.key = g.pick([]string{"two words", `"unterminated`, strings.Repeat("k", 256)})
	}
	return req
}

func (g *gen) newEvent() request {
	req := request{route: "events", method: "POST", path: "/api/v1/events", ctype: "application/json"}
	switch {
	case g.pct(2):
		req.body = `{"type":"page_view",` // malformed
		return req
	case g.pct(1):
		req.ctype = "text/plain"
	}
	types := []string{"page_view", "page_view", "page_view", "click", "click", "signup", "purchase", "purchase", "purchase", "refund"}
	typ := g.pick(types)
	if g.pct(4) {
		typ = g.pick([]string{"PageView", "view", ""})
	}
	ms := []member{{"type", jstr(typ)}}
	user := "u_" + g.alnum(8+g.r.IntN(9), lowerDigits)
	if g.pct(3) {
		user = g.pick([]string{"U_ABCDEFGH", "u_short", "user-1"})
	}
	ms = append(ms, member{"user_id", jstr(user)})
	if g.pct(50) {
		s := "s_" + g.alnum(8+g.r.IntN(12), alnums)
		if g.pct(3) {
			s = "sess"
		}
		ms = append(ms, member{"session_id", jstr(s)})
	}
	// Away from the window's ends, which a clock a millisecond apart could
	// straddle: 1 minute to 6 days ago, or clearly out.
	at := g.now.Add(-time.Minute - time.Duration(g.r.Int64N(int64(6*24*time.Hour))))
	switch {
	case g.pct(2):
		at = g.now.Add(-8 * 24 * time.Hour)
	case g.pct(1):
		at = g.now.Add(time.Hour)
	}
	occurred := at.UTC().Format(time.RFC3339)
	switch {
	case g.pct(20):
		occurred = at.In(time.FixedZone("", 2*3600)).Format("2006-01-02T15:04:05.000-07:00")
	case g.pct(1):
		occurred = at.Format("02/01/2006 15:04")
	}
	ms = append(ms, member{"occurred_at", jstr(occurred)})
	country := g.pick(countries)
	switch {
	case g.pct(5):
		country = strings.ToLower(country)
	case g.pct(2):
		country = "XX"
	}
	ms = append(ms, member{"country", jstr(country)})
	if typ == "purchase" || typ == "refund" || g.pct(1) {
		cur := currencies[g.r.IntN(len(currencies))]
		var total int64
		var items []string
		n := 1 + g.r.IntN(5)
		switch {
		case g.pct(4):
			n = 50 // the limit
		case g.pct(1):
			n = 51
		}
		for range n {
			qty := int64(1 + g.r.IntN(5))
			price := int64(100 + g.r.IntN(5000))
			total += qty * price
			items = append(items, object([]member{{"sku", jstr("SKU-" + g.alnum(4, upperDigits))}, {"qty", fmt.Sprint(qty)}, {"price", money(price, cur.minor)}}))
		}
		amount := total
		if g.pct(3) {
			amount += max(1, 2*pow10(cur.minor)/100) // 0.02 off (1 yen): items_sum_mismatch
		}
		c := cur.code
		if g.pct(2) {
			c = "XYZ"
		}
		ms = append(ms, member{"currency", jstr(c)}, member{"amount", money(amount, cur.minor)})
		if typ == "purchase" || g.pct(30) {
			ms = append(ms, member{"items", "[" + strings.Join(items, ",") + "]"})
		}
		if typ == "refund" {
			id := g.uuid()
			if g.pct(3) {
				id = strings.ToUpper(id)
			}
			ms = append(ms, member{"original_event_id", jstr(id)})
		}
	}
	if g.pct(30) {
		cmp := "cmp_000001" // active 2025..2028 in DE FR GB US
		switch {
		case g.pct(20):
			cmp = "cmp_000002" // paused
		case g.pct(10):
			cmp = "cmp_999999" // unknown
		case g.pct(30):
			cmp = fmt.Sprintf("cmp_%06d", 1+g.r.IntN(campaignCount))
		}
		ms = append(ms, member{"campaign_id", jstr(cmp)})
	}
	if typ == "signup" || g.pct(40) {
		email := g.pick([]string{" Alice.Smith+%d@Example.COM ", "bob%d@example.org", "c.d%d@mail.example.co.uk"})
		if strings.Contains(email, "%d") {
			email = fmt.Sprintf(email, g.r.IntN(1000))
		}
		if g.pct(3) {
			email = "not-an-email"
		}
		ms = append(ms, member{"email", jstr(email)})
	}
	if g.pct(30) {
		var meta []member
		for i := range 1 + g.r.IntN(3) {
			meta = append(meta, member{fmt.Sprintf("k%d", i), jstr(g.pick([]string{"web", "ios", "android", "a/b", "ünïcödé"}))})
		}
		if g.pct(3) {
			meta = append(meta, member{"Bad-Key", jstr("x")})
		}
		ms = append(ms, member{"metadata", object(meta)})
	}
	if g.pct(1) {
		ms = append(ms, member{"ammount", "1"})
	}
	g.r.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
	req.body = object(ms)
	return req
}

func pow10(n int) int64 {
	p := int64(1)
	for range n {
		p *= 10
	}
	return p
}

// campaign is a GET /api/v1/campaigns/{id}.
func (g *gen) campaign() request {
	id := fmt.Sprintf("cmp_%06d", 1+g.r.IntN(campaignCount))
	switch {
	case g.pct(5):
		id = fmt.Sprintf("cmp_%06d", campaignCount+1+g.r.IntN(1000))
	case g.pct(2):
		id = g.pick([]string{"abc", "cmp_1", "CMP_000001"})
	}
	return request{route: "campaign", method: "GET", path: "/api/v1/campaigns/" + id}
}

// campaigns is a GET /api/v1/campaigns?… list request.
func (g *gen) campaigns() request {
	var q []string
	switch {
	case g.pct(85):
		q = append(q, "country="+g.pick(countries))
	case g.pct(40):
		q = append(q, "country="+strings.ToLower(g.pick(countries)))
	case g.pct(30):
		q = append(q, "country=ZZZ")
	}
	if g.pct(60) {
		q = append(q, "active="+g.pick([]string{"true", "false", "true"}))
	}
	if g.pct(70) {
		q = append(q, fmt.Sprintf("limit=%d", 1+g.r.IntN(100)))
	}
	if g.pct(20) {
		id := fmt.Sprintf("cmp_%06d", 1+g.r.IntN(campaignCount))
		q = append(q, "cursor="+base64.RawURLEncoding.EncodeToString([]byte(id)))
	}
	if g.pct(2) {
		q = append(q, g.pick([]string{"_=123", "limit=0", "active=TRUE", "cursor=!!"}))
	}
	path := "/api/v1/campaigns"
	if len(q) > 0 {
		path += "?" + strings.Join(q, "&")
	}
	return request{route: "campaigns", method: "GET", path: path}
}

// workload is n requests of each route named, interleaved.
func workload(seed uint64, now time.Time, n int, routes ...string) []request {
	g := newGen(seed, now)
	var out []request
	for range n {
		for _, r := range routes {
			switch r {
			case "events":
				out = append(out, g.event())
			case "campaign":
				out = append(out, g.campaign())
			case "campaigns":
				out = append(out, g.campaigns())
			}
		}
	}
	return out
}
