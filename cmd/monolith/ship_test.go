package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/internal/monolith"
	"github.com/strangler-proxy/strangler/ported/kafka/kafkatest"
)

func appendLines(t *testing.T, path string, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// The shipper publishes what the monolith appends, line by line, keyed by
// user_id, in order; what was in the file before it started stays behind,
// a half-written line waits for its end, and a truncated file is read
// from its start.
func TestShipperPublishesAppendedLines(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.Options{Topic: "events.legacy", Partitions: 1})
	path := filepath.Join(t.TempDir(), "forwarded-events.jsonl")
	appendLines(t, path, `{"event_id":"old","user_id":"u_old"}`+"\n")
	sh, err := monolith.NewShipper(path, []string{c.Addr}, "events.legacy")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	for i := range 3 {
		appendLines(t, path, fmt.Sprintf(`{"event_id":"e%d","user_id":"u_%d"}`+"\n", i, i))
	}
	appendLines(t, path, `{"event_id":"e3",`)
	time.Sleep(5 * monolith.ShipPoll)
	appendLines(t, path, `"user_id":"u_3"}`+"\n")
	c.Consume(4, 0, 20*time.Second) // shipped before the file is cut
	if err := os.WriteFile(path, []byte(`{"event_id":"e4","user_id":"u_4"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	recs := c.Consume(5, 500*time.Millisecond, 20*time.Second)
	var got []string
	for _, r := range recs {
		got = append(got, string(r.Key)+" "+string(r.Value))
	}
	want := []string{
		`u_0 {"event_id":"e0","user_id":"u_0"}`, `u_1 {"event_id":"e1","user_id":"u_1"}`, `u_2 {"event_id":"e2","user_id":"u_2"}`,
		`u_3 {"event_id":"e3","user_id":"u_3"}`, `u_4 {"event_id":"e4","user_id":"u_4"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("shipped:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
