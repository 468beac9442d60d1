package shadowreport

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/routes"
)

func readLines(t *testing.T, b []byte) []Entry {
	t.Helper()
	var out []Entry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

func TestDiffLogFromCollector(t *testing.T) {
	var buf bytes.Buffer
	d := NewDiffLogWriter(&buf, 0, nil)
	s, reg := newStats(t, newClock(), func(o *Options) { o.DiffLog = d })
	c := s.Route("campaign")
	cmp := compare.MustCompile(compare.Rules{})
	p := jsonResponse(200, campaign)
	compareOnce(c, cmp, p, p)                                                                 // match: not logged
	compareOnce(c, cmp, p, jsonResponse(200, strings.Replace(campaign, "29.70", "29.71", 1))) // mismatch
	c.Errored(Request{ID: "r2", URI: "/x?password=p"}, routes.SidePorted, os.ErrDeadlineExceeded)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, buf.Bytes())
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2: %s", len(lines), buf.String())
	}
	if e := lines[0]; e.Outcome != compare.OutcomeMismatch || e.Route != "campaign" || len(e.Diffs) != 1 || e.Diffs[0].Path != "body.amount" ||
		strings.Contains(e.URI, "abc") || e.PrimaryStatus != 200 {
		t.Fatalf("mismatch line %+v", e)
	}
	if e := lines[1]; e.Outcome != compare.OutcomeError || !strings.Contains(e.Error, "ported: i/o timeout") || strings.Contains(e.URI, "=p") {
		t.Fatalf("error line %+v", e)
	}
	if got := counterValue(t, reg, "strangler_shadow_difflog_dropped_total", nil); got != 0 {
		t.Fatalf("dropped counter %v", got)
	}
}

// blockingWriter blocks every Write until released, telling entered when
// the first one starts.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func TestDiffLogDropsWhenFull(t *testing.T) {
	w := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	d := NewDiffLogWriter(w, 2, nil)
	e := Entry{Time: time.Unix(0, 0), Route: "r", Outcome: compare.OutcomeMismatch}
	if !d.Write(e) {
		t.Fatal("first write refused")
	}
	<-w.entered // the writer holds entry 1 and waits
	accepted := 0
	for range 5 {
		if d.Write(e) {
			accepted++
		}
	}
	if accepted != 2 || d.Dropped() != 3 {
		t.Fatalf("accepted %d, dropped %d; want 2 and 3", accepted, d.Dropped())
	}
	close(w.release)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if d.Written() != 3 || len(readLines(t, w.buf.Bytes())) != 3 {
		t.Fatalf("written %d, lines %d; want 3", d.Written(), len(readLines(t, w.buf.Bytes())))
	}
	if d.Write(e) || d.Dropped() != 4 {
		t.Fatal("write after Close accepted")
	}
	if err := d.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
}

func TestDiffLogRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "diffs.jsonl")
	d, err := OpenDiffLog(DiffLogConfig{Path: path, MaxBytes: 1000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := Entry{Time: time.Unix(0, 0).UTC(), Route: "campaign", Outcome: compare.OutcomeMismatch, URI: strings.Repeat("x", 150)}
	for range 42 {
		for !d.Write(e) { // the queue may be full for a moment; this test wants every line
			time.Sleep(time.Millisecond)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	cur, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(path + ".1")
	if err != nil {
		t.Fatal(err)
	}
	line := len(old) / len(readLines(t, old))
	// 42 lines of `line` bytes, rotated each time a file reaches 1000:
	// the rotated file holds the lines that crossed 1000, the current one
	// the rest.
	perFile := (1000 + line - 1) / line
	if len(old) != perFile*line || len(cur) != (42%perFile)*line {
		t.Fatalf("current %d bytes, rotated %d bytes, lines of %d; want %d and %d", len(cur), len(old), line, (42%perFile)*line, perFile*line)
	}
	if _, err := OpenDiffLog(DiffLogConfig{}, nil); err == nil {
		t.Fatal("OpenDiffLog without a path succeeded")
	}
}
