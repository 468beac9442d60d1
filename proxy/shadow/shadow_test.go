package shadow

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/strangler-proxy/strangler/ported/kafka/kafkatest"

	"github.com/strangler-proxy/strangler/ported/delivery"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, append(kafkatest.LeakOptions(),
		// go-metrics starts one process-wide ticker with its first meter
		// (sarama's consumer group makes one) and never stops it.
		goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"))...)
}

func TestRecordingSinkKeepsTheLastMessagesByEventID(t *testing.T) {
	s := NewRecordingSink(3)
	for i := range 5 {
		if err := s.Publish(context.Background(), delivery.Message{EventID: fmt.Sprint("e", i), Value: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.Publish(context.Background(), delivery.Message{Value: []byte("no id")})
	tests := []struct {
		id   string
		want string
		ok   bool
	}{
		{"e0", "", false}, {"e1", "", false}, // evicted
		{"e2", "2", true}, {"e4", "4", true},
		{"e4", "", false}, // taken already
		{"", "", false},
	}
	for _, tt := range tests {
		v, ok := s.Take(tt.id)
		if ok != tt.ok || string(v) != tt.want {
			t.Errorf("Take(%q) = %q, %v; want %q, %v", tt.id, v, ok, tt.want, tt.ok)
		}
	}
	if s.Recorded() != 6 {
		t.Errorf("Recorded = %d, want 6", s.Recorded())
	}
}

type failingSink struct{ calls int }

func (f *failingSink) Publish(context.Context, delivery.Message) error {
	f.calls++
	if f.calls == 1 {
		return fmt.Errorf("broker away")
	}
	return nil
}

func TestTapSinkRemembersOnlyWhatWasPublished(t *testing.T) {
	inner := &failingSink{}
	s := NewTapSink(inner, 0)
	if err := s.Publish(context.Background(), delivery.Message{EventID: "a", Value: []byte("A")}); err == nil {
		t.Fatal("the inner sink's error was swallowed")
	}
	if err := s.Publish(context.Background(), delivery.Message{EventID: "b", Value: []byte("B")}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Take("a"); ok {
		t.Error("a failed publish is remembered")
	}
	if v, ok := s.Take("b"); !ok || string(v) != "B" {
		t.Errorf("Take(b) = %q, %v", v, ok)
	}
}

func line(id string, extra string) string {
	return fmt.Sprintf(`{"event_id":%q,"amount":%s}`, id, extra) + "\n"
}

func TestEventsFileFollowsAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "forwarded-events.jsonl")
	e := NewEventsFile(path, "", 0)
	defer e.Close()
	if h := e.Health(); !strings.Contains(h, "no such file") {
		t.Fatalf("a missing file's health %q", h)
	}
	if _, ok := e.Take("x"); ok {
		t.Fatal("found an event in a missing file")
	}
	appendTo := func(s string) {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	appendTo(line("a", "1") + line("b", "2") + `{"event_id":"c","amo`)
	if v, ok := e.Take("b"); !ok || string(v) != strings.TrimSpace(line("b", "2")) {
		t.Fatalf("Take(b) = %q, %v", v, ok)
	}
	if _, ok := e.Take("c"); ok {
		t.Fatal("an unterminated line was indexed")
	}
	if h, n := e.Health(), e.Found(); h != "" || n != 1 {
		t.Fatalf("health %q, found %d; want a working file that found b", h, n)
	}
	appendTo(`unt":3}` + "\n" + "not json\n" + line("d", "4"))
	for id, want := range map[string]string{"c": `{"event_id":"c","amount":3}`, "a": strings.TrimSpace(line("a", "1")), "d": strings.TrimSpace(line("d", "4"))} {
		if v, ok := e.Take(id); !ok || string(v) != want {
			t.Errorf("Take(%s) = %q, %v; want %q", id, v, ok, want)
		}
	}
	// Replaced by a shorter file (log rotation): read from its start.
	if err := os.WriteFile(path, []byte(line("e", "5")), 0o644); err != nil {
		t.Fatal(err)
	}
	if v, ok := e.Take("e"); !ok || !strings.Contains(string(v), `"e"`) {
		t.Errorf("after truncation Take(e) = %q, %v", v, ok)
	}
}

// Lines are indexed by the configured key path.
func TestEventsFileKeyPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ev.jsonl")
	if err := os.WriteFile(path, []byte(`{"data":{"id":"k1"},"v":1}`+"\n"+`{"event_id":"k2"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := NewEventsFile(path, "data.id", 0)
	defer e.Close()
	if _, ok := e.Take("k2"); ok {
		t.Fatal("found a line by another key")
	}
	if v, ok := e.Take("k1"); !ok || !strings.Contains(string(v), `"v":1`) {
		t.Fatalf("Take(k1) = %q, %v", v, ok)
	}
	if err := CheckReadable(path); err != nil {
		t.Fatal(err)
	}
	if err := CheckReadable(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing file is readable")
	}
	if err := CheckReadable(t.TempDir()); err == nil {
		t.Fatal("a directory is readable")
	}
}

func TestEventsFileStartsNearTheEndOfALargeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ev.jsonl")
	var b strings.Builder
	for i := 0; b.Len() < 2*tailBytes; i++ {
		b.WriteString(line(fmt.Sprint("old", i), "1"))
	}
	b.WriteString(line("recent", "2"))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	e := NewEventsFile(path, "", 0)
	defer e.Close()
	if _, ok := e.Take("recent"); !ok {
		t.Error("the last line of a large file is not found")
	}
	if _, ok := e.Take("old0"); ok {
		t.Error("the start of a large file was read")
	}
}

func TestEngineCloseWithoutStartDropsQueuedJobs(t *testing.T) {
	e, err := New(Options{Workers: 1, Queue: 1})
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for range 5 {
		if e.reserve() {
			got++
		}
	}
	if got != 2 {
		t.Fatalf("the pool holds %d jobs, want workers+queue = 2", got)
	}
	<-e.slots
	<-e.slots
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.Start() // after Close: nothing starts
}
