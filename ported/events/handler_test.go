package events

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/strangler-proxy/strangler/ported/delivery"
)

// inMemory serves h on an in-memory listener and returns a client for it.
func inMemory(t *testing.T, h *Handler) *http.Client { return inMemoryStream(t, h, false) }

// inMemoryStream optionally streams request bodies, as the front door does.
func inMemoryStream(t *testing.T, h *Handler, stream bool) *http.Client {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			if err := h.Serve(ctx); err != nil {
				t.Errorf("Serve returned %v", err)
			}
		},
		StreamRequestBody:     stream,
		MaxIdleWorkerDuration: 50 * time.Millisecond,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := srv.Shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return ln.Dial() }}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

type call struct {
	method, contentType, requestID string
	body                           string
	chunked                        bool // no Content-Length: the body arrives as a stream of unknown size
}

type reply struct {
	status     int
	body       string
	retryAfter string
	allow      string
}

func do(t *testing.T, c *http.Client, in call) reply {
	t.Helper()
	var body io.Reader = strings.NewReader(in.body)
	if in.chunked {
		body = io.MultiReader(body) // hides the length from net/http
	}
	req, err := http.NewRequest(in.method, "http://strangler/api/v1/events", body)
	if err != nil {
		t.Fatal(err)
	}
	if in.contentType != "" {
		req.Header.Set("Content-Type", in.contentType)
	}
	if in.requestID != "" {
		req.Header.Set("X-Request-Id", in.requestID)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	return reply{resp.StatusCode, string(got), resp.Header.Get("Retry-After"), resp.Header.Get("Allow")}
}

func newTestHandler(t *testing.T, sink delivery.Sink, cfg Config, reg prometheus.Registerer) *Handler {
	t.Helper()
	n := 0
	h, err := New(Options{
		Config:     cfg,
		Campaigns:  fixtureCampaigns(t),
		Sink:       sink,
		Now:        func() time.Time { return fixedNow },
		NewID:      func() string { n++; return fmt.Sprintf("id-%d", n) },
		Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestServeAcceptsAfterPublishWithACopy(t *testing.T) {
	sink := &recordingSink{}
	c := inMemory(t, newTestHandler(t, sink, Config{}, nil))

	got := do(t, c, call{method: "POST", contentType: "application/json", body: refund().String()})
	want := `{"status":"accepted","event_id":"id-1","received_at":"2026-03-01T12:00:00.250Z"}`
	if got.status != 202 || got.body != want {
		t.Fatalf("got %d %s, want 202 %s", got.status, got.body, want)
	}
	// A second request reuses fasthttp's buffers; the first message must
	// not change under the sink.
	do(t, c, call{method: "POST", contentType: "application/json", body: strings.Replace(refund().String(), "u_erin00005", "u_zzzzzzzzz", 1)})
	msgs := sink.messages()
	if len(msgs) != 2 {
		t.Fatalf("sink got %d messages, want 2", len(msgs))
	}
	ev, _, _ := Validate(refund().bytes(), fixedNow, fixtureCampaigns(t))
	if wantValue := string(ev.AppendJSON(nil, "id-1", fixedNow)); string(msgs[0].Value) != wantValue {
		t.Errorf("message value\n got %s\nwant %s", msgs[0].Value, wantValue)
	}
	if string(msgs[0].Key) != "u_erin00005" || msgs[0].EventID != "id-1" || string(msgs[1].Key) != "u_zzzzzzzzz" {
		t.Errorf("messages %q/%s, %q/%s", msgs[0].Key, msgs[0].EventID, msgs[1].Key, msgs[1].EventID)
	}
	// Key and Value share an allocation; appending to one must not reach the other.
	_ = append(msgs[0].Value, 'x')
	if string(msgs[0].Key) != "u_erin00005" {
		t.Errorf("appending to Value changed Key to %q", msgs[0].Key)
	}
	for i, deadline := range sink.ctxs {
		if !deadline {
			t.Errorf("publish %d had no deadline", i)
		}
	}
}

func TestServeErrors(t *testing.T) {
	bp := &delivery.BackpressureError{Reason: "spool full", After: 1500 * time.Millisecond}
	tests := []struct {
		name    string
		give    call
		cfg     Config
		sinkErr error
		want    reply
		publish bool // whether the sink is called
	}{
		{
			name: "GET",
			give: call{method: "GET"},
			want: reply{status: 405, allow: "POST", body: `{"error":"method_not_allowed","message":"GET not allowed on /api/v1/events"}`},
		},
		{
			name: "wrong content type, with request id",
			give: call{method: "POST", contentType: "text/plain", requestID: "req-9", body: "{}"},
			want: reply{status: 415, body: `{"error":"unsupported_media_type","message":"Content-Type must be application/json","request_id":"req-9"}`},
		},
		{
			name: "body over the configured limit",
			give: call{method: "POST", contentType: "application/json", body: pageView().String()},
			cfg:  Config{MaxBodyBytes: 64},
			want: reply{status: 413, body: `{"error":"body_too_large","message":"request body is larger than the limit"}`},
		},
		{
			name: "malformed",
			give: call{method: "POST", contentType: "application/json", body: "{"},
			want: reply{status: 400, body: `{"error":"malformed_json","message":"request body is not valid JSON"}`},
		},
		{
			name: "invalid UTF-8",
			give: call{method: "POST", contentType: "application/json", body: "{\"a\":\"\xff\"}"},
			want: reply{status: 400, body: `{"error":"invalid_utf8","message":"request body is not valid UTF-8"}`},
		},
		{
			name: "not an object",
			give: call{method: "POST", contentType: "application/json", body: "[]"},
			want: reply{status: 400, body: `{"error":"not_an_object","message":"request body must be a JSON object"}`},
		},
		{
			name: "rules, request id escaped",
			give: call{method: "POST", contentType: "application/json; charset=utf-8", requestID: "r/1=+:._-", body: `{"type":"x"}`},
			want: reply{status: 422, body: `{"status":"rejected","errors":[` +
				`{"field":"type","code":"type_unknown","message":"must be one of page_view, click, signup, purchase, refund"},` +
				`{"field":"user_id","code":"required","message":"is required"},` +
				`{"field":"occurred_at","code":"required","message":"is required"},` +
				`{"field":"country","code":"required","message":"is required"}],"request_id":"r/1=+:._-"}`},
		},
		{
			name:    "backpressure",
			give:    call{method: "POST", contentType: "application/json", body: pageView().String()},
			sinkErr: fmt.Errorf("spool: %w", bp),
			publish: true,
			want:    reply{status: 503, retryAfter: "2", body: `{"error":"backpressure","message":"event intake is over capacity, retry later"}`},
		},
		{
			name:    "backpressure below a second",
			give:    call{method: "POST", contentType: "application/json", requestID: "req-1", body: pageView().String()},
			sinkErr: &delivery.BackpressureError{After: 0},
			publish: true,
			want:    reply{status: 503, retryAfter: "1", body: `{"error":"backpressure","message":"event intake is over capacity, retry later","request_id":"req-1"}`},
		},
		{
			name:    "other sink error",
			give:    call{method: "POST", contentType: "application/json", body: pageView().String()},
			sinkErr: context.DeadlineExceeded,
			publish: true,
			want:    reply{status: 503, body: `{"error":"unavailable","message":"event could not be stored, retry later"}`, retryAfter: "5"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &recordingSink{err: tt.sinkErr}
			c := inMemory(t, newTestHandler(t, sink, tt.cfg, nil))
			if got := do(t, c, tt.give); got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if called := len(sink.ctxs) > 0; called != tt.publish {
				t.Errorf("sink called: %v, want %v", called, tt.publish)
			}
		})
	}
}

func TestServeReadsStreamedBodiesBounded(t *testing.T) {
	valid := pageView().String()
	exact := valid[:len(valid)-1] + strings.Repeat(" ", DefaultMaxBodyBytes-len(valid)) + "}"
	// Under fasthttp's 256 KiB drain limit, so the connection survives
	// the early answer and the client reads it.
	tooLarge := `{"pad":"` + strings.Repeat("x", 200<<10) + `"}`
	tests := []struct {
		name string
		give call
		want int
	}{
		{"small, chunked", call{body: valid, chunked: true}, 202},
		{"small, with length", call{body: valid}, 202},
		{"exactly the limit, chunked", call{body: exact, chunked: true}, 202},
		{"200 KiB, chunked", call{body: tooLarge, chunked: true}, 413},
		{"200 KiB, with length", call{body: tooLarge}, 413},
		{"malformed, chunked", call{body: "{", chunked: true}, 400},
	}
	sink := &recordingSink{}
	c := inMemoryStream(t, newTestHandler(t, sink, Config{}, nil), true)
	for _, tt := range tests {
		tt.give.method, tt.give.contentType = "POST", "application/json"
		if got := do(t, c, tt.give); got.status != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, got.status, got.body, tt.want)
		}
	}
	if n := len(sink.messages()); n != 3 {
		t.Errorf("sink got %d events, want 3", n)
	}
}

func TestServeMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	sink := &recordingSink{}
	c := inMemory(t, newTestHandler(t, sink, Config{}, reg))
	do(t, c, call{method: "POST", contentType: "application/json", body: pageView().String()})
	do(t, c, call{method: "POST", contentType: "application/json", body: pageView().del("type").del("country").String()})
	do(t, c, call{method: "POST", contentType: "text/plain", body: "{}"})

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	violations := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if f.GetName() == "strangler_events_violations_total" {
				violations[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
			if f.GetName() == "strangler_events_requests_total" {
				got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
			if f.GetName() == "strangler_events_publish_seconds" && m.GetHistogram().GetSampleCount() != 1 {
				t.Errorf("publish observations %d, want 1", m.GetHistogram().GetSampleCount())
			}
		}
	}
	if len(violations) != 1 || violations["required"] != 2 {
		t.Errorf("violations_total = %v, want required=2", violations)
	}
	for outcome, n := range map[string]float64{"accepted": 1, "rejected": 1, "unsupported_media_type": 1, "malformed": 0} {
		if got[outcome] != n {
			t.Errorf("requests_total{outcome=%q} = %v, want %v", outcome, got[outcome], n)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	set := fixtureCampaigns(t)
	reg := prometheus.NewRegistry()
	if _, err := New(Options{Campaigns: set, Sink: &recordingSink{}, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		give Options
	}{
		{"no sink", Options{Campaigns: set}},
		{"no campaigns", Options{Sink: &recordingSink{}}},
		{"bad delivery", Options{Campaigns: set, Sink: &recordingSink{}, Config: Config{Delivery: "kafka"}}},
		{"negative body limit", Options{Campaigns: set, Sink: &recordingSink{}, Config: Config{MaxBodyBytes: -1}}},
		{"metrics registered twice", Options{Campaigns: set, Sink: &recordingSink{}, Registerer: reg}},
	}
	for _, tt := range tests {
		if _, err := New(tt.give); err == nil {
			t.Errorf("%s: New succeeded", tt.name)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	got := Config{}.WithDefaults()
	want := Config{MaxBodyBytes: 65536, Delivery: "spool", PublishTimeout: 5 * time.Second}
	if got != want {
		t.Errorf("WithDefaults() = %+v, want %+v", got, want)
	}
	if err := (Config{Delivery: "direct", MaxBodyBytes: 1, PublishTimeout: time.Second}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestJSONContentType(t *testing.T) {
	tests := []struct {
		give string
		want bool
	}{
		{"application/json", true},
		{"APPLICATION/JSON", true},
		{" application/json\t", true},
		{"application/json;charset=utf-8", true},
		{`application/json; CHARSET="UTF-8"`, true},
		{"application/json; charset=utf-8 ; charset=UTF-8", true},
		{"", false},
		{"application/json;", false},
		{"application/json; charset=", false},
		{`application/json; charset="utf-8`, false},
		{`application/json; charset=""`, false},
		{"application/json; charset = utf-8", false},
		{"application/json; boundary=x", false},
		{"application/json, text/plain", false},
		{"application/vnd.api+json", false},
	}
	for _, tt := range tests {
		if got := jsonContentType([]byte(tt.give)); got != tt.want {
			t.Errorf("jsonContentType(%q) = %v, want %v", tt.give, got, tt.want)
		}
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, tt := range []struct {
		give time.Duration
		want int
	}{{0, 1}, {-time.Second, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1001 * time.Millisecond, 2}, {90 * time.Second, 90}, {48 * time.Hour, 86400}} {
		if got := retryAfterSeconds(tt.give); got != tt.want {
			t.Errorf("retryAfterSeconds(%s) = %d, want %d", tt.give, got, tt.want)
		}
	}
}

func TestNewUUID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewUUID()
		if !uuidV4Re.MatchString(id) || !uuidV4([]byte(id)) || seen[id] {
			t.Fatalf("NewUUID() = %q (repeat: %v)", id, seen[id])
		}
		seen[id] = true
	}
}

// Interface guard for the test double.
var _ delivery.Sink = (*recordingSink)(nil)

var errSink = errors.New("sink down")

func TestServeNeverReturnsAnError(t *testing.T) {
	h := newTestHandler(t, &recordingSink{err: errSink}, Config{}, nil)
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.Header.SetContentType("application/json")
	ctx.Request.SetBodyString(pageView().String())
	if err := h.Serve(&ctx); err != nil || ctx.Response.StatusCode() != 503 {
		t.Errorf("Serve = %v, status %d", err, ctx.Response.StatusCode())
	}
}
