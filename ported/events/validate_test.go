package events

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/ported/phpjson"
)

func codes(vs []Violation) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Field + " " + v.Code
	}
	return out
}

func TestValidateEachRuleAlone(t *testing.T) {
	set := fixtureCampaigns(t)
	seen := map[string]bool{}
	for _, tt := range ruleCases() {
		t.Run(tt.name, func(t *testing.T) {
			_, vs, err := Validate(tt.body, fixedNow, set)
			if err != nil {
				t.Fatalf("Validate(%s) error %v", tt.body, err)
			}
			if got := codes(vs); !slices.Equal(got, tt.want) {
				t.Errorf("Validate(%s)\n got %q\nwant %q", tt.body, got, tt.want)
			}
			for _, v := range vs {
				seen[v.Code] = true
				if v.Message == "" || v.Message == v.Code {
					t.Errorf("%s: no message for %s", tt.name, v.Code)
				}
			}
		})
	}
	for _, code := range allCodes() {
		if !seen[code] {
			t.Errorf("no rule case reports %s", code)
		}
	}
}

func allCodes() []string {
	return []string{CodeRequired, CodeWrongType, CodeNotAllowed, CodeUnknownField, CodeServerAssigned,
		CodeTypeUnknown, CodeUserIDFormat, CodeSessionIDFormat, CodeOccurredAtFmt, CodeOccurredAtOld,
		CodeOccurredAtAhead, CodeCountryUnknown, CodeCurrencyUnknown, CodeAmountNotPos, CodeAmountTooLarge,
		CodeAmountPrecision, CodeItemsCount, CodeItemSKUFormat, CodeItemQtyRange, CodePriceNotPos,
		CodePriceTooLarge, CodePricePrecision, CodeItemsSum, CodeOriginalIDFmt, CodeCampaignIDFmt,
		CodeCampaignUnknown, CodeCampaignOff, CodeCampaignCountry, CodeEmailFormat, CodeMetaTooMany,
		CodeMetaKeyFormat, CodeMetaValueType, CodeMetaValueLong}
}

func TestValidateCombinationsKeepContractOrder(t *testing.T) {
	set := fixtureCampaigns(t)
	tests := []struct {
		name string
		give string
		want []string
	}{
		{
			name: "everything wrong, members in reverse order",
			give: `{"zzz":1,"metadata":{"B":1},"email":"x","campaign_id":"cmp_1","original_event_id":"x","items":[],` +
				`"amount":-1,"currency":"xx","country":"xx","occurred_at":"x","session_id":"x","user_id":"x","type":"refund","event_id":"x","aaa":2}`,
			want: []string{"user_id user_id_format", "session_id session_id_format", "occurred_at occurred_at_format",
				"country country_unknown", "currency currency_unknown", "amount amount_not_positive", "items items_count",
				"original_event_id original_event_id_format", "campaign_id campaign_id_format", "email email_format",
				"metadata.B metadata_key_format", "metadata.B metadata_value_type", "event_id server_assigned",
				"aaa unknown_field", "zzz unknown_field"},
		},
		{
			name: "empty object: always-required fields only",
			give: `{}`,
			want: []string{"type required", "user_id required", "occurred_at required", "country required"},
		},
		{
			name: "unknown type: type-dependent fields neither required nor forbidden, own rules run",
			give: `{"type":"buy","user_id":"u_abcdefgh","occurred_at":` + ts(0) + `,"country":"DE","amount":1.5,"currency":"JPY","original_event_id":"x"}`,
			want: []string{"type type_unknown", "amount amount_precision", "original_event_id original_event_id_format"},
		},
		{
			name: "page_view with purchase fields: each not_allowed, values unchecked",
			give: pageView().set("currency", `1`).set("amount", `"x"`).set("items", `5`).set("original_event_id", `2`).String(),
			want: []string{"currency not_allowed", "amount not_allowed", "items not_allowed", "original_event_id not_allowed"},
		},
		{
			name: "item problems in index order, each item's in member order",
			give: purchase().set("items", `[{"zz":1,"price":0,"qty":0,"sku":"x"},{"sku":"SKU-2","qty":1,"price":5,"a":1,"":2},7]`).String(),
			want: []string{"items[0].sku item_sku_format", "items[0].qty item_qty_range", "items[0].price price_not_positive",
				"items[0].zz unknown_field", "items[1]. unknown_field", "items[1].a unknown_field", "items[2] wrong_type"},
		},
		{
			name: "invalid currency: no precision or sum rule",
			give: purchase().set("currency", `"EURO"`).set("amount", `1.2345`).String(),
			want: []string{"currency currency_unknown"},
		},
		{
			name: "campaign inactive and wrong country both reported",
			give: click().set("campaign_id", `"cmp_000002"`).set("country", `"JP"`).String(),
			want: []string{"campaign_id campaign_inactive", "campaign_id campaign_country"},
		},
		{
			name: "campaign rules skip what is already invalid",
			give: click().set("campaign_id", `"cmp_000002"`).set("country", `"ZZ"`).set("occurred_at", `"x"`).String(),
			want: []string{"occurred_at occurred_at_format", "country country_unknown"},
		},
		{
			name: "metadata keys sorted, duplicates collapse to the last",
			give: pageView().set("metadata", `{"z":1,"b":"ok","A":"x","b":2,"a b":"x"}`).String(),
			want: []string{"metadata.A metadata_key_format", "metadata.a b metadata_key_format", "metadata.b metadata_value_type", "metadata.z metadata_value_type"},
		},
		{
			name: "server fields in fixed order, then unknown sorted by bytes",
			give: pageView().set("schema_version", `1`).set("ü", `1`).set("event_id", `1`).set("Z", `1`).set("_", `1`).String(),
			want: []string{"event_id server_assigned", "schema_version server_assigned", "Z unknown_field", "_ unknown_field", "ü unknown_field"},
		},
		{
			name: "duplicate top-level key: last wins",
			give: pageView().add("type", `"nope"`).String(),
			want: []string{"type type_unknown"},
		},
		{
			name: "escaped member names are decoded before matching",
			give: `{"\u0074ype":"page_view","user_id":"u_alice0001","occurred_at":` + ts(0) + `,"country":"DE","\u00fc":1}`,
			want: []string{"ü unknown_field"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, vs, err := Validate([]byte(tt.give), fixedNow, set)
			if err != nil {
				t.Fatal(err)
			}
			if got := codes(vs); !slices.Equal(got, tt.want) {
				t.Errorf("Validate(%s)\n got %q\nwant %q", tt.give, got, tt.want)
			}
		})
	}
}

func TestValidateAcceptsAndNormalises(t *testing.T) {
	set := fixtureCampaigns(t)
	sha := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	const tail = `,"original_event_id":null,"campaign_id":null,"advertiser_id":null,"email_sha256":null,"metadata":{}}`
	tests := []struct {
		name string
		give doc
		want string // forwarded JSON with event_id "ID"
	}{
		{
			name: "page_view minimal",
			give: pageView(),
			want: `{"schema_version":1,"event_id":"ID","type":"page_view","occurred_at":"2026-03-01T11:00:00.250Z",` +
				`"received_at":"2026-03-01T12:00:00.250Z","user_id":"u_alice0001","session_id":null,"country":"DE",` +
				`"currency":null,"amount":null,"items":null` + tail,
		},
		{
			name: "click with campaign, lower-case country",
			give: click(),
			want: `{"schema_version":1,"event_id":"ID","type":"click","occurred_at":"2026-03-01T11:59:00.250Z",` +
				`"received_at":"2026-03-01T12:00:00.250Z","user_id":"u_bob000002","session_id":"s_AbCdEf123456","country":"FR",` +
				`"currency":null,"amount":null,"items":null,"original_event_id":null,"campaign_id":"cmp_000001",` +
				`"advertiser_id":"adv_0489","email_sha256":null,"metadata":{}}`,
		},
		{
			name: "signup: e-mail trimmed, lower-cased, hashed, never forwarded",
			give: signup(),
			want: `{"schema_version":1,"event_id":"ID","type":"signup","occurred_at":"2026-03-01T10:00:00.250Z",` +
				`"received_at":"2026-03-01T12:00:00.250Z","user_id":"u_carol0003","session_id":null,"country":"GB",` +
				`"currency":null,"amount":null,"items":null,"original_event_id":null,"campaign_id":null,"advertiser_id":null,` +
				`"email_sha256":"` + sha("carol.smith+ads@example.co.uk") + `","metadata":{}}`,
		},
		{
			name: "purchase: money as minor-digit strings, metadata sorted",
			give: purchase(),
			want: `{"schema_version":1,"event_id":"ID","type":"purchase","occurred_at":"2026-03-01T11:30:00.250Z",` +
				`"received_at":"2026-03-01T12:00:00.250Z","user_id":"u_dave00004","session_id":"s_session0004","country":"US",` +
				`"currency":"EUR","amount":"25.50","items":[{"sku":"SKU-1","qty":2,"price":"10.25"},{"sku":"SKU-2","qty":1,"price":"5.00"}],` +
				`"original_event_id":null,"campaign_id":"cmp_000001","advertiser_id":"adv_0489","email_sha256":null,` +
				`"metadata":{"ab":"b","source":"newsletter"}}`,
		},
		{
			name: "refund in JPY",
			give: refund(),
			want: `{"schema_version":1,"event_id":"ID","type":"refund","occurred_at":"2026-02-26T12:00:00.250Z",` +
				`"received_at":"2026-03-01T12:00:00.250Z","user_id":"u_erin00005","session_id":null,"country":"DE",` +
				`"currency":"JPY","amount":"1500","items":null,"original_event_id":"0b6f6a4e-3f0c-4d5e-9a1b-2c3d4e5f6a7b",` +
				`"campaign_id":null,"advertiser_id":null,"email_sha256":null,"metadata":{}}`,
		},
		{
			name: "KWD three decimals, 0.1+0.2 sums exactly, exponent amount",
			give: purchase().set("currency", `"kwd"`).set("amount", `3e-1`).set("items", `[{"sku":"A-1","qty":1,"price":0.1},{"sku":"A-2","qty":1,"price":0.2}]`).del("metadata").del("campaign_id"),
			want: `{"schema_version":1,"event_id":"ID","type":"purchase","occurred_at":"2026-03-01T11:30:00.250Z",` +
				`"received_at":"2026-03-01T12:00:00.250Z","user_id":"u_dave00004","session_id":"s_session0004","country":"US",` +
				`"currency":"KWD","amount":"0.300","items":[{"sku":"A-1","qty":1,"price":"0.100"},{"sku":"A-2","qty":1,"price":"0.200"}]` + tail,
		},
		{
			name: "occurred_at with offset and 9 digits, truncated to ms",
			give: pageView().set("occurred_at", `"2026-03-01t13:05:00.249999999+01:00"`),
			want: `{"schema_version":1,"event_id":"ID","type":"page_view","occurred_at":"2026-03-01T12:05:00.249Z",` +
				`"received_at":"2026-03-01T12:00:00.250Z","user_id":"u_alice0001","session_id":null,"country":"DE",` +
				`"currency":null,"amount":null,"items":null` + tail,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, vs, err := Validate(tt.give.bytes(), fixedNow, set)
			if err != nil || len(vs) > 0 {
				t.Fatalf("Validate(%s) = %v, %v", tt.give, codes(vs), err)
			}
			if got := string(ev.AppendJSON(nil, "ID", fixedNow)); got != tt.want {
				t.Errorf("forwarded\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestValidateBoundaries(t *testing.T) {
	set := fixtureCampaigns(t)
	tests := boundaryCases()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, vs, err := Validate(tt.body, fixedNow, set)
			if err != nil {
				t.Fatal(err)
			}
			if got := codes(vs); !slices.Equal(got, tt.want) {
				t.Errorf("Validate(%s)\n got %q\nwant %q", tt.body, got, tt.want)
			}
		})
	}
}

func TestValidateParseErrors(t *testing.T) {
	tests := parseCases()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Validate([]byte(tt.give), fixedNow, nil)
			if !errors.Is(err, tt.want) {
				t.Errorf("Validate(%.80q) error %v, want %v", tt.give, err, tt.want)
			}
		})
	}
}

func TestParserTypesNumbersLikePHP(t *testing.T) {
	tests := []struct {
		give string
		kind kind
		i    int64
		f    float64
	}{
		{"0", kindInt, 0, 0},
		{"-0", kindInt, 0, 0},
		{"-0.0", kindFloat, 0, math.Copysign(0, -1)},
		{"9223372036854775807", kindInt, math.MaxInt64, 0},
		{"9223372036854775808", kindFloat, 0, 9223372036854775808},
		{"-9223372036854775808", kindInt, math.MinInt64, 0},
		{"-9223372036854775809", kindFloat, 0, -9223372036854775809},
		{"12345678901234567890", kindFloat, 0, 12345678901234567890},
		{"1e2", kindFloat, 0, 100},
		{"1E+2", kindFloat, 0, 100},
		{"2.0", kindFloat, 0, 2},
		{"1e309", kindFloat, 0, math.Inf(1)},
		{"-1e309", kindFloat, 0, math.Inf(-1)},
		{"1e-400", kindFloat, 0, 0},
	}
	for _, tt := range tests {
		var p parser
		root, err := p.parse([]byte(tt.give))
		if err != nil {
			t.Fatalf("parse(%s): %v", tt.give, err)
		}
		n := &p.nodes[root]
		if n.kind != tt.kind {
			t.Errorf("%s: kind %d, want %d", tt.give, n.kind, tt.kind)
			continue
		}
		if tt.kind == kindInt && n.i != tt.i {
			t.Errorf("%s: int %d, want %d", tt.give, n.i, tt.i)
		}
		if f := p.float(n); tt.kind == kindFloat && (f != tt.f || math.Signbit(f) != math.Signbit(tt.f)) {
			t.Errorf("%s: float %v, want %v", tt.give, f, tt.f)
		}
	}
}

func TestParseRFC3339(t *testing.T) {
	tests := []struct {
		give string
		ok   bool
	}{
		{"2026-03-01T12:00:00Z", true},
		{"2026-03-01t12:00:00z", true},
		{"2026-03-01T12:00:00.5Z", true},
		{"2026-03-01T12:00:00.123456789Z", true},
		{"2026-03-01T12:00:00.1234567890Z", false},
		{"2026-03-01T12:00:00.Z", false},
		{"2026-03-01T12:00:00+05:30", true},
		{"2026-03-01T12:00:00-00:00", true},
		{"2026-03-01T12:00:00+23:59", true},
		{"2026-03-01T12:00:00+24:00", false},
		{"2026-03-01T12:00:00+0530", false},
		{"2026-03-01T12:00:00", false},
		{"2026-03-01 12:00:00Z", false},
		{"2024-02-29T00:00:00Z", true},
		{"2100-02-29T00:00:00Z", false},
		{"2000-02-29T00:00:00Z", true},
		{"2026-04-31T00:00:00Z", false},
		{"2026-13-01T00:00:00Z", false},
		{"2026-00-01T00:00:00Z", false},
		{"2026-03-01T24:00:00Z", false},
		{"2026-03-01T23:60:00Z", false},
		{"2026-03-01T23:59:60Z", false},
		{"0000-01-01T00:00:00Z", true},
		{"9999-12-31T23:59:59.999999999-23:59", true},
		{"+2026-03-01T12:00:00Z", false},
		{"2026-3-01T12:00:00Z", false},
		{"２026-03-01T12:00:00Z", false},
	}
	for _, tt := range tests {
		got, ok := parseRFC3339([]byte(tt.give))
		if ok != tt.ok {
			t.Errorf("parseRFC3339(%q) ok=%v, want %v", tt.give, ok, tt.ok)
			continue
		}
		if !ok {
			continue
		}
		// time.Parse agrees on everything it accepts.
		std, err := time.Parse(time.RFC3339Nano, strings.NewReplacer("t", "T", "z", "Z").Replace(tt.give))
		if err != nil {
			t.Fatalf("time.Parse(%q): %v", tt.give, err)
		}
		if want := instantOf(std); got != want {
			t.Errorf("parseRFC3339(%q) = %+v, want %+v", tt.give, got, want)
		}
	}
}

func TestMoneyShortestDigits(t *testing.T) {
	tests := []struct {
		give  string
		minor int
		milli int64
		res   moneyResult
	}{
		{"12.5", 2, 12500, moneyOK},
		{"12.50", 2, 12500, moneyOK},
		{"1.25e1", 2, 12500, moneyOK},
		{"0.1", 2, 100, moneyOK},
		{"0.30000000000000004", 3, 0, moneyPrecision},
		{"1.005", 2, 0, moneyPrecision},
		{"1.005", 3, 1005, moneyOK},
		{"100", 0, 100000, moneyOK},
		{"1e2", 0, 100000, moneyOK},
		{"0.001", 3, 1, moneyOK},
		{"0.0001", 3, 0, moneyPrecision},
		{"999999999.999", 3, 999999999999, moneyOK},
		{"1.2345", -1, 0, moneyOK}, // unknown currency: range only
		{"0", 2, 0, moneyNotPositive},
		{"-0.0", 2, 0, moneyNotPositive},
		{"1000000001", 2, 0, moneyTooLarge},
	}
	for _, tt := range tests {
		var p parser
		root, err := p.parse([]byte(tt.give))
		if err != nil {
			t.Fatal(err)
		}
		m, res := money(&p, &p.nodes[root], tt.minor)
		if m != tt.milli || res != tt.res {
			t.Errorf("money(%s, %d) = %d, %d; want %d, %d", tt.give, tt.minor, m, res, tt.milli, tt.res)
		}
	}
}

func TestAppendJSONStringEscapesLikePHP(t *testing.T) {
	tests := []struct{ give, want string }{
		{`plain`, `"plain"`},
		{`a/b<>&'`, `"a/b<>&'"`},
		{"q\"b\\", `"q\"b\\"`},
		{"\b\f\n\r\t", `"\b\f\n\r\t"`},
		{"\x00\x1f\x7f", `"\u0000\u001f` + "\x7f" + `"`},
		{"é日😀", `"é日😀"`},
		{"\u2028\u2029\u2027", `"\u2028\u2029` + "\u2027" + `"`},
	}
	for _, tt := range tests {
		if got := string(phpjson.AppendString(nil, tt.give)); got != tt.want {
			t.Errorf("phpjson.AppendString(%q) = %s, want %s", tt.give, got, tt.want)
		}
	}
}

func TestAppendMinor(t *testing.T) {
	tests := []struct {
		v     int64
		minor int
		want  string
	}{
		{1250, 2, "12.50"}, {5, 2, "0.05"}, {1500, 0, "1500"}, {300, 3, "0.300"}, {1, 3, "0.001"}, {100000000000, 2, "1000000000.00"},
	}
	for _, tt := range tests {
		if got := string(appendMinor(nil, tt.v, tt.minor)); got != tt.want {
			t.Errorf("appendMinor(%d, %d) = %s, want %s", tt.v, tt.minor, got, tt.want)
		}
	}
}

func TestLists(t *testing.T) {
	for _, tt := range []struct {
		give  string
		want  string
		minor int
		ok    bool
	}{
		{"eur", "EUR", 2, true}, {"JPY", "JPY", 0, true}, {"kwd", "KWD", 3, true}, {"AED", "AED", 2, true},
		{"ZWG", "ZWG", 2, true}, {"XXX", "", 0, false}, {"EU", "", 0, false}, {"ÉUR", "", 0, false},
	} {
		got, minor, ok := currency([]byte(tt.give))
		if got != tt.want || minor != tt.minor || ok != tt.ok {
			t.Errorf("currency(%q) = %q, %d, %v", tt.give, got, minor, ok)
		}
	}
	for _, tt := range []struct {
		give, want string
		ok         bool
	}{{"de", "DE", true}, {"AD", "AD", true}, {"ZW", "ZW", true}, {"XX", "", false}, {"D", "", false}, {"UK", "", false}} {
		if got, ok := country([]byte(tt.give)); got != tt.want || ok != tt.ok {
			t.Errorf("country(%q) = %q, %v", tt.give, got, ok)
		}
	}
}
