package compare

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func jsonResp(status int, body string, h ...string) Response {
	r := Response{Status: status, Body: []byte(body), Header: [][2]string{{"Content-Type", "application/json"}}}
	for i := 0; i+1 < len(h); i += 2 {
		r.Header = append(r.Header, [2]string{h[i], h[i+1]})
	}
	return r
}

func paths(r Result) []string {
	var out []string
	for _, d := range r.Diffs {
		out = append(out, string(d.Kind)+" "+d.Path)
	}
	return out
}

const campaignBody = `{"id":"cmp_000042","advertiser_id":"adv_0042","name":"Spring Sale","status":"active",` +
	`"countries":["DE","FR"],"budget":{"amount_minor":125000,"currency":"EUR"},` +
	`"items":[{"sku":"a-1","qty":2,"price":12.35},{"sku":"b-2","qty":1,"price":5}],"amount":29.70}`

// TestDiffDetectsInjectedFaults: each fault injected into the candidate is
// found and pointed to by path; the unchanged answer matches.
func TestDiffDetectsInjectedFaults(t *testing.T) {
	c := MustCompile(Rules{})
	primary := jsonResp(200, campaignBody, "Cache-Control", "max-age=60")
	tests := []struct {
		name      string
		candidate Response
		want      []string
	}{
		{"identical", primary, nil},
		{
			"changed business rule",
			jsonResp(200, strings.Replace(campaignBody, `"status":"active"`, `"status":"paused"`, 1), "Cache-Control", "max-age=60"),
			[]string{"value body.status"},
		},
		{
			"rounding",
			jsonResp(200, strings.Replace(campaignBody, `"amount":29.70`, `"amount":29.7000001`, 1), "Cache-Control", "max-age=60"),
			[]string{"value body.amount"},
		},
		{
			"missing header",
			jsonResp(200, campaignBody),
			[]string{"missing header.Cache-Control"},
		},
		{
			"different status",
			jsonResp(201, campaignBody, "Cache-Control", "max-age=60"),
			[]string{"value status"},
		},
		{
			"reordered array items",
			jsonResp(200, strings.Replace(campaignBody,
				`[{"sku":"a-1","qty":2,"price":12.35},{"sku":"b-2","qty":1,"price":5}]`,
				`[{"sku":"b-2","qty":1,"price":5},{"sku":"a-1","qty":2,"price":12.35}]`, 1), "Cache-Control", "max-age=60"),
			[]string{"order body.items"},
		},
		{
			// The contract is byte-identical answers: the same data spelled
			// otherwise is a difference, each of its own kind.
			"key order and number spelling",
			jsonResp(200, `{"amount":29.70,"id":"cmp_000042","advertiser_id":"adv_0042","name":"Spring Sale","status":"active",`+
				`"countries":["DE","FR"],"budget":{"currency":"EUR","amount_minor":125000},`+
				`"items":[{"qty":2,"sku":"a-1","price":12.35},{"sku":"b-2","price":5.0,"qty":1}]}`, "Cache-Control", "max-age=60"),
			[]string{"key_order body.budget", "key_order body.items[0]", "format body.items[1].price", "key_order body.items[1]", "key_order body"},
		},
		{
			"upper-cased id",
			jsonResp(200, strings.Replace(campaignBody, `"cmp_000042"`, `"CMP_000042"`, 1), "Cache-Control", "max-age=60"),
			[]string{"case body.id"},
		},
		{
			"exponent form",
			jsonResp(200, strings.Replace(campaignBody, `"amount_minor":125000`, `"amount_minor":1.25e5`, 1), "Cache-Control", "max-age=60"),
			[]string{"format body.budget.amount_minor"},
		},
		{
			"escaped string",
			jsonResp(200, strings.Replace(campaignBody, `"Spring Sale"`, `"Spring\u0020Sale"`, 1), "Cache-Control", "max-age=60"),
			[]string{"escape body.name"},
		},
		{
			"escaped member name",
			jsonResp(200, strings.Replace(campaignBody, `"status":`, `"st\u0061tus":`, 1), "Cache-Control", "max-age=60"),
			[]string{"escape body.status"},
		},
		{
			"whitespace",
			jsonResp(200, strings.ReplaceAll(campaignBody, `,"`, `, "`), "Cache-Control", "max-age=60"),
			[]string{"whitespace body.advertiser_id"},
		},
		{
			"type, missing and extra keys",
			jsonResp(200, strings.Replace(campaignBody, `"advertiser_id":"adv_0042","name":"Spring Sale"`, `"advertiser_id":42,"title":"Spring Sale"`, 1), "Cache-Control", "max-age=60"),
			[]string{"type body.advertiser_id", "missing body.name", "extra body.title"},
		},
		{
			"one field inside an element",
			jsonResp(200, strings.Replace(campaignBody, `"qty":1`, `"qty":3`, 1), "Cache-Control", "max-age=60"),
			[]string{"value body.items[1].qty"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := paths(c.Diff(primary, tt.candidate))
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("diffs = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDiffRenderingAndTemplates(t *testing.T) {
	c := MustCompile(Rules{})
	p := jsonResp(200, `{"items":[{"price":1},{"price":2}],"a.b":{"x y":true}}`)
	q := jsonResp(200, `{"items":[{"price":1},{"price":"2"}],"a.b":{"x y":false}}`)
	r := c.Diff(p, q)
	want := []Diff{
		{Path: "body.items[1].price", Template: "body.items[*].price", Kind: KindType, Primary: "2", Candidate: `"2"`},
		{Path: `body["a.b"]["x y"]`, Template: `body["a.b"]["x y"]`, Kind: KindValue, Primary: "true", Candidate: "false"},
	}
	if fmt.Sprint(r.Diffs) != fmt.Sprint(want) {
		t.Fatalf("diffs = %+v\nwant    %+v", r.Diffs, want)
	}
	// Rendered paths parse back as rule paths and ignore what they name.
	ig := MustCompile(Rules{Ignore: []string{r.Diffs[0].Template, r.Diffs[1].Path}})
	if got := ig.Diff(p, q); !got.Equal() {
		t.Fatalf("ignoring the reported paths left %v", paths(got))
	}
}

// TestRenderingIsBounded: a rendered value or key list is the value's
// compact text cut as excerpt cuts (on a rune boundary, about maxRender
// bytes), however long the value.
func TestRenderingIsBounded(t *testing.T) {
	long := func(unit string, n int) string { return `"` + strings.Repeat(unit, n) + `"` }
	var members, keys []string
	for i := range 40 {
		members = append(members, fmt.Sprintf(`"k%02d":%d`, i, i))
		keys = append(keys, fmt.Sprintf(`"k%02d"`, i))
	}
	object := "{" + strings.Join(members, ",") + "}"
	reversed := slices.Clone(members)
	slices.Reverse(reversed)
	c := MustCompile(Rules{})
	for _, tc := range []struct {
		name, p, q, kind, want string
	}{
		{"ascii", `{"s":` + long("a", 1000) + `}`, `{"s":` + long("b", 1000) + `}`, "value", long("a", 1000)},
		{"multibyte", `{"s":` + long("€", 300) + `}`, `{"s":` + long("é", 300) + `}`, "value", long("€", 300)},
		{"object", `{"o":` + object + `}`, `{}`, "missing", object},
		{"keys", object, "{" + strings.Join(reversed, ",") + "}", "key_order", "[" + strings.Join(keys, ",") + "]"},
	} {
		r := c.Diff(jsonResp(200, tc.p), jsonResp(200, tc.q))
		if len(r.Diffs) != 1 || string(r.Diffs[0].Kind) != tc.kind {
			t.Fatalf("%s: diffs %v", tc.name, paths(r))
		}
		if got, want := r.Diffs[0].Primary, excerpt(tc.want); got != want || !utf8.ValidString(got) || len(got) > maxRender+len("…") {
			t.Errorf("%s: rendered %q (%d bytes), want %q", tc.name, got, len(got), want)
		}
	}
}

func TestNumbers(t *testing.T) {
	tests := []struct {
		a, b string
		tol  float64
		want bool
	}{
		{"1", "1.0", 0, true},
		{"1e2", "100", 0, true},
		{"1.5E+1", "15", 0, true},
		{"-0", "0", 0, true},
		{"0.000", "0e10", 0, true},
		{"12345678901234567890", "12345678901234567891", 0, false}, // beyond float64
		{"12345678901234567890", "1.234567890123456789e19", 0, true},
		{"29.70", "29.7000001", 0, false},
		{"29.70", "29.7000001", 0.001, true},
		{"12.35", "12.34", 0.001, false},
		{"12.35", "12.34", 0.01, true},
		{"-1", "1", 0, false},
		{"1e999", "1e999", 0, true},
		{"1e999", "2e999", 1, false},
	}
	for _, tt := range tests {
		if got := numbersEqual(tt.a, tt.b, tt.tol); got != tt.want {
			t.Errorf("numbersEqual(%s, %s, %v) = %v, want %v", tt.a, tt.b, tt.tol, got, tt.want)
		}
	}
}

func TestRules(t *testing.T) {
	base := `{"event_id":"e1","status":"accepted","received_at":"2025-01-01T00:00:00Z",` +
		`"items":[{"sku":"a","qty":1},{"sku":"b","qty":2}],"meta":{"x":1,"y":2},"msg":"Hello  World"}`
	other := `{"event_id":"e2","status":"accepted","received_at":"2025-01-01T00:00:09Z",` +
		`"items":[{"sku":"A","qty":1},{"sku":"B","qty":2}],"meta":{"x":5,"y":6},"msg":"hello world"}`
	p := jsonResp(202, base, "Cache-Control", "no-store", "Date", "Mon")
	q := jsonResp(202, other, "Date", "Tue")
	tests := []struct {
		name  string
		rules Rules
		want  []string
	}{
		{"no rules", Rules{}, []string{
			"missing header.Cache-Control", "value body.event_id", "value body.received_at",
			"case body.items[0].sku", "case body.items[1].sku", "value body.meta.x", "value body.meta.y", "value body.msg"}},
		{"ignore paths", Rules{Ignore: []string{"header.Cache-Control", "body.event_id", "body.received_at", "body.items[*].sku", "body.meta.*", "body.msg"}}, nil},
		{"ignore one index", Rules{Ignore: []string{"body.items[0].sku"}}, []string{
			"missing header.Cache-Control", "value body.event_id", "value body.received_at",
			"case body.items[1].sku", "value body.meta.x", "value body.meta.y", "value body.msg"}},
		{"ignore subtree and status", Rules{Ignore: []string{"body.meta", "body.items", "status", "body.event_id", "body.received_at", "body.msg", "header.cache-control"}}, nil},
		{"normalise", Rules{
			Ignore: []string{"header.Cache-Control", "body.event_id", "body.meta"},
			Normalise: []Replace{
				{Path: "body.received_at", Regex: `:\d\dZ$`, With: ":00Z"},
				{Path: "body.items[*].sku", Regex: `.*`, With: "x"},
				{Path: "body.msg", Regex: `(?i)hello\s+`, With: "hello "},
				{Path: "body.msg", Regex: `W`, With: "w"},
			},
		}, nil},
		{"headers listed replace the defaults", Rules{Headers: []string{"date"}, Ignore: []string{"body"}}, []string{"value header.Date"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Compile(tt.rules)
			if err != nil {
				t.Fatal(err)
			}
			if got := paths(c.Diff(p, q)); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("diffs = %q\nwant    %q", got, tt.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name  string
		rules Rules
		want  []string
	}{
		{"bad root", Rules{Ignore: []string{"bodyx.a"}}, []string{`ignore[0] "bodyx.a"`}},
		{"bad index", Rules{Ignore: []string{"body.items[x]"}}, []string{`ignore[0] "body.items[x]"`, "must be a number"}},
		{"empty key", Rules{Ignore: []string{"body..a"}}, []string{"empty key"}},
		{"unclosed", Rules{Ignore: []string{"body.a[1"}}, []string{"unclosed"}},
		{"bad regex", Rules{Normalise: []Replace{{Path: "body", Regex: "("}}}, []string{`normalise[0] "body"`, "regex"}},
		{"missing regex", Rules{Normalise: []Replace{{Path: "body"}}}, []string{"regex is required"}},
		{"status", Rules{Normalise: []Replace{{Path: "status", Regex: "x"}}}, []string{"cannot be normalised"}},
		{"uncompared header", Rules{Normalise: []Replace{{Path: "header.Date", Regex: "x"}}}, []string{"not compared"}},
		{"bad header", Rules{Headers: []string{"Bad Header"}}, []string{`headers[0] "Bad Header"`}},
		{"negative tolerance", Rules{NumericTolerance: -1}, []string{"numeric_tolerance"}},
		{"all reported", Rules{Ignore: []string{"x", "y"}}, []string{`ignore[0] "x"`, `ignore[1] "y"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.rules)
			if err == nil {
				t.Fatal("Compile succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestArrays(t *testing.T) {
	p := jsonResp(200, `{"a":[1,2,3,{"k":"v"}]}`)
	tests := []struct {
		name      string
		unordered bool
		body      string
		want      []string
	}{
		{"ordered same", false, `{"a":[1,2,3,{"k":"v"}]}`, nil},
		{"ordered permutation", false, `{"a":[{"k":"v"},3,2,1]}`, []string{"order body.a"}},
		{"ordered shorter", false, `{"a":[1,2,3]}`, []string{"missing body.a[3]"}},
		{"ordered longer", false, `{"a":[1,2,3,{"k":"v"},5]}`, []string{"extra body.a[4]"}},
		{"ordered changed and moved", false, `{"a":[2,1,3,{"k":"w"}]}`, []string{"value body.a[0]", "value body.a[1]", "value body.a[3].k"}},
		{"unordered permutation", true, `{"a":[{"k":"v"},3,2,1]}`, nil},
		{"unordered changed element", true, `{"a":[{"k":"w"},3,2,1]}`, []string{"value body.a[3].k"}},
		{"unordered missing", true, `{"a":[3,{"k":"v"},1]}`, []string{"missing body.a[1]"}},
		{"unordered extra", true, `{"a":[3,{"k":"v"},1,2,2]}`, []string{"extra body.a[4]"}},
		{"nested arrays unordered", true, `{"a":[1,2,3,{"k":"v"}]}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := MustCompile(Rules{IgnoreArrayOrder: tt.unordered})
			if got := paths(c.Diff(p, jsonResp(200, tt.body))); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("diffs = %q, want %q", got, tt.want)
			}
		})
	}
	// A reordering hidden below an ignored field is still a pure reordering.
	c := MustCompile(Rules{Ignore: []string{"body.items[*].id"}})
	got := paths(c.Diff(
		jsonResp(200, `{"items":[{"id":"x1","v":1},{"id":"x2","v":2}]}`),
		jsonResp(200, `{"items":[{"id":"y1","v":2},{"id":"y2","v":1}]}`)))
	if fmt.Sprint(got) != "[order body.items]" {
		t.Fatalf("diffs = %q, want order body.items", got)
	}
}

func TestHeaders(t *testing.T) {
	c := MustCompile(Rules{Normalise: []Replace{
		{Path: "header.Location", Regex: `^https://shop\.example`, With: ""},
		{Path: "header.Location", Regex: `sid=\d+`, With: "sid=X"},
	}})
	tests := []struct {
		name string
		p, q [][2]string
		want []string
	}{
		{"cookie values differ only", [][2]string{{"Set-Cookie", "PHPSESSID=abc; path=/; HttpOnly"}},
			[][2]string{{"set-cookie", "PHPSESSID=xyz; HttpOnly; Path=/"}}, nil},
		{"cookie expires date differs only", [][2]string{{"Set-Cookie", "a=1; Expires=Wed, 21 Oct 2025 07:28:00 GMT"}},
			[][2]string{{"Set-Cookie", "a=2; Expires=Thu, 22 Oct 2025 07:28:00 GMT"}}, nil},
		{"cookie attribute differs", [][2]string{{"Set-Cookie", "PHPSESSID=abc; path=/; HttpOnly"}},
			[][2]string{{"Set-Cookie", "PHPSESSID=abc; path=/"}}, []string{"value header.Set-Cookie"}},
		{"cookie missing among several", [][2]string{{"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}},
			[][2]string{{"Set-Cookie", "b=3"}}, []string{"value header.Set-Cookie"}},
		{"content type case and spaces", [][2]string{{"Content-Type", "application/json; charset=UTF-8"}},
			[][2]string{{"Content-Type", "application/json;charset=utf-8"}}, []string{"format header.Content-Type"}},
		{"content type case", [][2]string{{"Content-Type", "application/json"}},
			[][2]string{{"Content-Type", "Application/JSON"}}, []string{"case header.Content-Type"}},
		{"content type differs", [][2]string{{"Content-Type", "application/json"}},
			[][2]string{{"Content-Type", "text/html; charset=UTF-8"}}, []string{"value header.Content-Type"}},
		{"vary order", [][2]string{{"Vary", "Accept-Encoding, Cookie"}},
			[][2]string{{"Vary", "cookie"}, {"Vary", "accept-encoding"}}, []string{"format header.Vary"}},
		{"extra location", nil, [][2]string{{"Location", "/login"}}, []string{"extra header.Location"}},
		{"uncompared header", [][2]string{{"X-Powered-By", "PHP/8.2"}}, nil, nil},
		{"normalised location", [][2]string{{"Location", "https://shop.example/a?sid=1"}}, [][2]string{{"Location", "/a?sid=2"}}, nil},
		{"location differs", [][2]string{{"Location", "/a?b=1"}}, [][2]string{{"Location", "/c?b=1"}}, []string{"value header.Location"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := paths(c.Diff(Response{Status: 200, Header: tt.p}, Response{Status: 200, Header: tt.q}))
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("diffs = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTextBodies(t *testing.T) {
	c := MustCompile(Rules{Normalise: []Replace{{Path: "body", Regex: `csrf=[a-f0-9]+`, With: "csrf=X"}}})
	html := func(s string) Response {
		return Response{Status: 200, Body: []byte(s), Header: [][2]string{{"Content-Type", "text/html"}}}
	}
	tests := []struct {
		name string
		p, q string
		want []Diff
	}{
		{"line ends and trailing space", "<p>a</p>\r\n<p>b</p>  \r\n\r\n", "<p>a</p>\n<p>b</p>\n",
			[]Diff{{Path: "body", Template: "body", Kind: KindWhitespace, Primary: `line 1: "<p>a</p>\r"`, Candidate: `line 1: "<p>a</p>"`}}},
		{"normalised token", "<form csrf=abc123>", "<form csrf=ff00>", nil},
		{"second line differs", "<p>a</p>\n<p>b</p>\n", "<p>a</p>\n<p>c</p>\n",
			[]Diff{{Path: "body", Template: "body", Kind: KindValue, Primary: "line 2: <p>b</p>", Candidate: "line 2: <p>c</p>"}}},
		{"email redacted", "hi bob@example.com", "hi ann@example.com",
			[]Diff{{Path: "body", Template: "body", Kind: KindValue, Primary: "line 1: hi " + Redacted, Candidate: "line 1: hi " + Redacted}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.Diff(html(tt.p), html(tt.q))
			if fmt.Sprint(r.Diffs) != fmt.Sprint(tt.want) {
				t.Fatalf("diffs = %+v, want %+v", r.Diffs, tt.want)
			}
		})
	}
	// JSON against something else is a type difference at body.
	r := c.Diff(jsonResp(200, `{"a":1}`), jsonResp(200, `<html>oops`))
	if len(r.Diffs) != 1 || r.Diffs[0].Path != "body" || r.Diffs[0].Kind != KindType {
		t.Fatalf("diffs = %+v, want one type diff at body", r.Diffs)
	}
	// No content type: a body that parses as JSON is compared as JSON.
	r = c.Diff(Response{Body: []byte(`{"a": 1}`)}, Response{Body: []byte(`{"a":1}`)})
	if got := paths(r); fmt.Sprint(got) != "[whitespace body.a]" {
		t.Fatalf("untyped JSON bodies: %q", got)
	}
}

func TestMaxDiffs(t *testing.T) {
	c := MustCompile(Rules{MaxDiffs: 3})
	var a, b []string
	for i := range 10 {
		a = append(a, fmt.Sprintf(`"k%d":%d`, i, i))
		b = append(b, fmt.Sprintf(`"k%d":%d`, i, i+1))
	}
	r := c.Diff(jsonResp(200, "{"+strings.Join(a, ",")+"}"), jsonResp(200, "{"+strings.Join(b, ",")+"}"))
	if len(r.Diffs) != 3 || r.Dropped != 7 || r.Equal() {
		t.Fatalf("got %d diffs, %d dropped; want 3 and 7", len(r.Diffs), r.Dropped)
	}
}

func TestRedaction(t *testing.T) {
	c := MustCompile(Rules{Headers: append(DefaultHeaders(), "Authorization", "X-Session-Token")})
	p := jsonResp(200, `{"user":{"email":"a@x.io","name":"A"},"password":"hunter2","card":{"number":"4111"},"ok":true}`,
		"Authorization", "Bearer abc", "X-Session-Token", "t1")
	q := jsonResp(200, `{"user":{"email":"b@x.io","name":"A"},"card":{"number":"4222"},"ok":false,"extra":{"api_token":"zzz","n":1}}`,
		"Authorization", "Bearer def", "X-Session-Token", "t2")
	r := c.Diff(p, q)
	secrets := []string{"a@x.io", "b@x.io", "hunter2", "4111", "4222", "zzz", "abc", "def", "t1", "t2"}
	for _, d := range r.Diffs {
		for _, s := range secrets {
			if strings.Contains(d.Primary, s) || strings.Contains(d.Candidate, s) {
				t.Errorf("diff %s shows secret %q: %q / %q", d.Path, s, d.Primary, d.Candidate)
			}
		}
	}
	if got := fmt.Sprint(paths(r)); got != "[value header.Authorization value header.X-Session-Token value body.user.email missing body.password value body.card.number value body.ok extra body.extra]" {
		t.Fatalf("diffs = %s", got)
	}
	// The extra object is rendered with its secret member hidden, the rest shown.
	last := r.Diffs[len(r.Diffs)-1]
	if last.Candidate != `{"api_token":"[redacted]","n":1}` {
		t.Fatalf("extra rendered %q", last.Candidate)
	}

	hs := RedactHeaders([][2]string{{"Set-Cookie", "PHPSESSID=abc; Path=/; HttpOnly"}, {"Cookie", "a=b"}, {"Content-Type", "text/html"}, {"Location", "/reset?token=t0k"}})
	want := [][2]string{{"Set-Cookie", "PHPSESSID=[redacted]; Path=/; HttpOnly"}, {"Cookie", Redacted}, {"Content-Type", "text/html"}, {"Location", "/reset?token=%5Bredacted%5D"}}
	if fmt.Sprint(hs) != fmt.Sprint(want) {
		t.Fatalf("RedactHeaders = %q", hs)
	}
	body := RedactBody([]byte(`{"email":"a@x.io","items":[{"sku":"a","card_number":"4111"}]}`), "application/json", 0)
	if strings.Contains(body, "a@x.io") || strings.Contains(body, "4111") || !strings.Contains(body, `"sku": "a"`) {
		t.Fatalf("RedactBody = %s", body)
	}
	if !json.Valid([]byte(body)) {
		t.Fatalf("RedactBody JSON is not valid: %s", body)
	}
	cut := RedactBody([]byte(strings.Repeat("x", 5000)), "text/plain", 100)
	if len(cut) > 150 || !strings.Contains(cut, "5000 bytes in all") {
		t.Fatalf("RedactBody did not cut: %d bytes %q", len(cut), cut[len(cut)-30:])
	}
	txt := RedactText(`login password=hunter2&user=bob Authorization: Bearer abc.def "api_key": "k-123" mail me@x.org`)
	for _, s := range []string{"hunter2", "abc.def", "k-123", "me@x.org"} {
		if strings.Contains(txt, s) {
			t.Errorf("RedactText kept %q: %s", s, txt)
		}
	}
	if !strings.Contains(txt, "user=bob") {
		t.Errorf("RedactText removed too much: %s", txt)
	}
	if got := RedactURI("/login?user=bob&access_token=xyz&next=/a"); got != "/login?user=bob&access_token=%5Bredacted%5D&next=/a" {
		t.Fatalf("RedactURI = %s", got)
	}
}

func TestParserMatchesEncodingJSON(t *testing.T) {
	inputs := []string{
		`{}`, `[]`, `""`, `0`, `-0.5e-3`, `true`, ` null `, `{"a":[1,{"b":null}]}`,
		`"\u00e9\ud83d\ude00\n"`, `"\ud800"`, `{"a":1,}`, `[1,]`, `01`, `1.`, `.5`, `-`, `"a`, "\"\x01\"",
		`{"a" 1}`, `[1 2]`, `tru`, `nul`, `{"a":1}x`, `"\x"`, `"\u12"`, `1e`, `1e+`, ``, ` `,
	}
	for _, in := range inputs {
		tp := getTape()
		err := tp.parse(in)
		if (err == nil) != json.Valid([]byte(in)) {
			t.Errorf("parse(%q) error %v, json.Valid %v", in, err, json.Valid([]byte(in)))
		}
		if err == nil && tp.nodes[0].kind == jString {
			var want string
			if err := json.Unmarshal([]byte(in), &want); err != nil {
				t.Fatal(err)
			}
			if got := tp.str(0); got != want {
				t.Errorf("str(%q) = %q, want %q", in, got, want)
			}
		}
		putTape(tp)
	}
	deep := strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)
	tp := getTape()
	if tp.parse(deep) == nil || json.Valid([]byte(deep)) {
		t.Errorf("depth beyond %d accepted", maxDepth)
	}
	putTape(tp)
}

// nested returns depth levels of arrays of width elements around leaf.
func nested(depth, width int, leaf string) string {
	s := leaf
	for range depth {
		s = "[" + strings.TrimSuffix(strings.Repeat(s+",", width), ",") + "]"
	}
	return s
}

// TestDiffWorkIsBounded: matching nested unordered (or permuted) arrays
// probes subtrees repeatedly, which grows with the width to the power of
// the depth. A pair that would need far more than maxSteps visits stops at
// the budget and says so at the body, instead of holding a shadow worker;
// a pair within it is compared in full.
func TestDiffWorkIsBounded(t *testing.T) {
	c := MustCompile(Rules{IgnoreArrayOrder: true})
	// 50 levels of one element (a fuzzer's find): linear, within budget.
	got := paths(c.Diff(jsonResp(200, nested(50, 1, "0")), jsonResp(200, nested(50, 1, "1"))))
	if want := "value body" + strings.Repeat("[0]", 50); fmt.Sprint(got) != "["+want+"]" {
		t.Fatalf("deep single-element arrays: %q, want %q", got, want)
	}
	// 2 elements at each of 14 levels: 4^14 probes without the bound.
	r := c.Diff(jsonResp(200, nested(14, 2, "0")), jsonResp(200, nested(14, 2, "1")))
	if len(r.Diffs) == 0 || r.Diffs[len(r.Diffs)-1].Kind != KindIncomplete || r.Diffs[len(r.Diffs)-1].Path != "body" || r.Equal() {
		t.Fatalf("diffs = %q, want the comparison marked incomplete at the body", paths(r))
	}
	// Equal bodies take the byte-equal path whatever their shape.
	if r := c.Diff(jsonResp(200, nested(14, 2, "0")), jsonResp(200, nested(14, 2, "0"))); !r.Equal() {
		t.Fatalf("equal bodies: %q", paths(r))
	}
}

// Accept rules mark the differences they name, by path and kind, and only
// those.
func TestAccept(t *testing.T) {
	c := MustCompile(Rules{Accept: []Accept{
		{Path: "body.*", Kind: KindKeyOrder, Reason: "clients decode JSON"},
		{Path: "body.items[*].price", Kind: KindFormat, Reason: "a float in Go"},
		{Path: "published.email_sha256", Kind: KindMissing, Reason: "dropped on purpose"},
	}})
	p := jsonResp(200, `{"a":{"x":1,"y":2},"items":[{"price":5},{"price":7}],"n":1}`)
	q := jsonResp(200, `{"a":{"y":2,"x":1},"items":[{"price":5.0},{"price":7}],"n":1.0}`)
	r := c.Diff(p, q)
	var got []string
	for _, d := range r.Diffs {
		got = append(got, fmt.Sprintf("%s %s %q", d.Kind, d.Path, d.Accepted))
	}
	want := []string{`key_order body.a "clients decode JSON"`, `format body.items[0].price "a float in Go"`, `format body.n ""`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("diffs %q\nwant  %q", got, want)
	}
	// Published paths are accepted the same way.
	pub := c.DiffWith(jsonResp(0, `{"email_sha256":"x","a":1}`), jsonResp(0, `{"a":1}`), DiffOptions{Root: RootPublished})
	if len(pub.Diffs) != 1 || pub.Diffs[0].Path != "published.email_sha256" || pub.Diffs[0].Accepted != "dropped on purpose" {
		t.Fatalf("published: %+v", pub.Diffs)
	}
	for _, bad := range []Accept{
		{Path: "body.a", Kind: "nonsense", Reason: "x"},
		{Path: "body.a", Kind: KindFormat},
		{Path: "bod", Kind: KindFormat, Reason: "x"},
	} {
		if _, err := Compile(Rules{Accept: []Accept{bad}}); err == nil {
			t.Errorf("accept %+v compiled", bad)
		}
	}
}

func TestFingerprint(t *testing.T) {
	a := MustCompile(Rules{Ignore: []string{"body.a"}}).Fingerprint()
	if b := MustCompile(Rules{Ignore: []string{"body.a"}}).Fingerprint(); a != b {
		t.Fatalf("same rules, fingerprints %s and %s", a, b)
	}
	for _, r := range []Rules{{}, {Ignore: []string{"body.b"}}, {Ignore: []string{"body.a"}, Accept: []Accept{{Path: "body", Kind: KindWhitespace, Reason: "x"}}}} {
		if MustCompile(r).Fingerprint() == a {
			t.Errorf("rules %+v share the fingerprint of ignore body.a", r)
		}
	}
}

// Elements that differ only in spelling or noise are not a reordering.
func TestArraySpellingIsNoReorder(t *testing.T) {
	c := MustCompile(Rules{})
	got := paths(c.Diff(jsonResp(200, `{"a":[1,2,3]}`), jsonResp(200, `{"a":[1.0,2.0,3]}`)))
	if fmt.Sprint(got) != "[format body.a[0] format body.a[1]]" {
		t.Fatalf("diffs %q", got)
	}
}

func TestLookup(t *testing.T) {
	body := []byte(`{"event_id":"e-1","n":42,"data":{"id":"x\/y","list":[{"k":"a"},{"k":"b"}]},"o":{}}`)
	for _, tt := range []struct {
		path, want string
		ok         bool
	}{
		{"event_id", "e-1", true}, {"n", "42", true}, {"data.id", "x/y", true}, {"data.list[1].k", "b", true},
		{"o", "", false}, {"missing", "", false}, {"data.list[2].k", "", false}, {"", "", false},
	} {
		got, ok := Lookup(body, tt.path)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Lookup(%q) = %q %v, want %q %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
	if ValidKeyPath("a.*") == nil || ValidKeyPath("") == nil || ValidKeyPath("a[0].b") != nil {
		t.Error("ValidKeyPath")
	}
}

func TestMaskRequestBody(t *testing.T) {
	tests := []struct{ name, ct, give, want string }{
		{"json", "application/json",
			`{"email":" Alice.Smith+x@Example.COM ","password":"Hunter2!","session_id":"s_AbC12345","note":"mail bob@ex.org","n":1}`,
			`{"email":" Xxxxx.Xxxxx+x@Xxxxxxx.XXX ","password":"Xxxxxx0!","session_id":"s_AbC12345","note":"mail xxx@xx.xxx","n":1}`},
		{"form", "application/x-www-form-urlencoded", `user=bob&password=s3cret&email=a.b%40cc.dd`, `user=bob&password=x0xxxx&email=x.x%40xx.xx`},
		{"text", "text/plain", "contact: ann@example.com", "contact: xxx@xxxxxxx.xxx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(MaskRequestBody([]byte(tt.give), tt.ct)); got != tt.want {
				t.Fatalf("masked\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestRedactAnswerBody(t *testing.T) {
	got := string(RedactAnswerBody([]byte(`{"event_id":"e1","email_sha256":"ab12","owner":"x@y.zz","items":[{"api_token":"t"}],"n":1.0}`), "application/json"))
	want := `{"event_id":"e1","email_sha256":"[redacted]","owner":"x@x.xx","items":[{"api_token":"[redacted]"}],"n":1.0}`
	if got != want {
		t.Fatalf("redacted\n%s\nwant\n%s", got, want)
	}
}
