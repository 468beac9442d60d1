package events

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/ported/delivery"
	"github.com/strangler-proxy/strangler/ported/spool"
)

func TestParseIdempotencyKey(t *testing.T) {
	long := strings.Repeat("k", 255)
	tests := []struct {
		give string
		want string
		ok   bool
	}{
		{give: `"8e03978e-40d5-43e8-bc93-6894a57f9324"`, want: "8e03978e-40d5-43e8-bc93-6894a57f9324", ok: true},
		{give: `8e03978e-40d5-43e8-bc93-6894a57f9324`, want: "8e03978e-40d5-43e8-bc93-6894a57f9324", ok: true},
		{give: " \t\"a b\"\t ", want: "a b", ok: true},
		{give: `"a\"b\\c"`, want: `a"b\c`, ok: true},
		{give: long, want: long, ok: true},
		{give: `"` + long + `"`, want: long, ok: true},
		{give: long + "k"},
		{give: ""},
		{give: `""`},
		{give: `"`},
		{give: `"abc`},
		{give: `"a"b"`},
		{give: `"a\b"`},
		{give: "\"a\x01\""},
		{give: "\"é\""},
		{give: "a b"},
		{give: `a"b`},
		{give: `a\b`},
	}
	for _, tt := range tests {
		got, ok := ParseIdempotencyKey([]byte(tt.give))
		if ok != tt.ok || got != tt.want {
			t.Errorf("ParseIdempotencyKey(%q) = %q, %v; want %q, %v", tt.give, got, ok, tt.want, tt.ok)
		}
	}
}

// keyed posts body with an Idempotency-Key.
func keyed(t *testing.T, c *http.Client, key, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://strangler/api/v1/events", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("Retry-After")
}

// countingSink passes to the spool and counts what it was given.
type countingSink struct {
	*spool.Spool
	mu sync.Mutex
	n  int
}

func (c *countingSink) Publish(ctx context.Context, m delivery.Message) error {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.Spool.Publish(ctx, m)
}

// The intake over a real spool: a retried key with the same body gets the
// first 202 byte for byte and publishes nothing; another body is 422; a
// request that published nothing (422, 400) leaves its key free; a bad key
// is 400; and all of it holds after a restart.
func TestIdempotencyKey(t *testing.T) {
	dir := t.TempDir()
	var clock = fixedNow
	openHandler := func() (*Handler, *countingSink, *http.Client) {
		// The spool's clock is the intake's: it decides the keys' window.
		s, err := spool.Open(spool.Config{Dir: dir}, zap.NewNop(), nil, spool.WithNow(func() time.Time { return clock }))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		sink := &countingSink{Spool: s}
		n := 0
		h, err := New(Options{Campaigns: fixtureCampaigns(t), Sink: sink, Keys: s,
			Now: func() time.Time { return clock }, NewID: func() string { n++; return "id-" + string(rune('a'+n)) }})
		if err != nil {
			t.Fatal(err)
		}
		return h, sink, inMemory(t, h)
	}
	_, sink, c := openHandler()
	body := pageView().String()

	code, first, _ := keyed(t, c, `"k-1"`, body)
	if code != 202 {
		t.Fatalf("first keyed request: %d %s", code, first)
	}
	clock = clock.Add(time.Minute)
	for _, key := range []string{`"k-1"`, `k-1`, ` "k-1" `} { // the same key, spelled three ways
		if code, again, _ := keyed(t, c, key, body); code != 202 || again != first {
			t.Errorf("retry with %s: %d %s, want the first answer %s", key, code, again, first)
		}
	}
	if sink.n != 1 {
		t.Errorf("published %d events for one key, want 1", sink.n)
	}
	if code, got, _ := keyed(t, c, `"k-1"`, pageView().set("country", `"FR"`).String()); code != 422 ||
		got != `{"error":"idempotency_key_reused","message":"Idempotency-Key was already used with a different request body"}` {
		t.Errorf("the key with another body: %d %s, want 422 idempotency_key_reused", code, got)
	}
	if code, _, _ := keyed(t, c, `"k-2"`, `{"type":"nope"}`); code != 422 {
		t.Fatalf("invalid event: %d", code)
	}
	if code, _, _ := keyed(t, c, `"k-2"`, body); code != 202 {
		t.Errorf("a key whose first request was rejected, with a valid body: %d, want 202 (the rejection kept nothing)", code)
	}
	if code, got, _ := keyed(t, c, `"bad key"x`, body); code != 400 || !strings.Contains(got, `"invalid_idempotency_key"`) {
		t.Errorf("malformed key: %d %s, want 400 invalid_idempotency_key", code, got)
	}
	if sink.n != 2 {
		t.Errorf("published %d events, want 2 (k-1 and k-2)", sink.n)
	}

	// A restart: the spool keeps the keys.
	_ = sink.Spool.Close(context.Background())
	_, sink2, c2 := openHandler()
	if code, again, _ := keyed(t, c2, `"k-1"`, body); code != 202 || again != first {
		t.Errorf("retry after a restart: %d %s, want %s", code, again, first)
	}
	if sink2.n != 0 {
		t.Errorf("a retry after the restart published %d events", sink2.n)
	}
	if !bytes.Contains([]byte(first), []byte(`"received_at":"2026-03-01T12:00:00.250Z"`)) {
		t.Errorf("first answer %s does not carry the first request's clock", first)
	}
}

// holdingKeys says every key is held by a request in progress.
type holdingKeys struct{}

func (holdingKeys) Claim([16]byte) (delivery.Remembered, bool, error) {
	return delivery.Remembered{}, false, delivery.ErrKeyInFlight
}
func (holdingKeys) Release([16]byte) {}

func TestIdempotencyKeyInUse(t *testing.T) {
	h, err := New(Options{Campaigns: fixtureCampaigns(t), Sink: &recordingSink{}, Keys: holdingKeys{}, Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	code, got, ra := keyed(t, inMemory(t, h), `"k"`, pageView().String())
	if code != 409 || ra != "1" || got != `{"error":"idempotency_key_in_use","message":"a request with this Idempotency-Key is in progress, retry later"}` {
		t.Errorf("key in use: %d Retry-After %q %s", code, ra, got)
	}
}
