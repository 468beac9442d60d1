package linelog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is an output that keeps every Write call apart, and can be
// made to block until released.
type recorder struct {
	mu     sync.Mutex
	calls  [][]byte
	gate   chan struct{} // non-nil: each Write waits for a receive... close to release
	err    error
	writes chan struct{} // signalled after each Write, if non-nil
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	r.calls = append(r.calls, append([]byte(nil), p...))
	err := r.err
	r.mu.Unlock()
	if r.writes != nil {
		select {
		case r.writes <- struct{}{}:
		default:
		}
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.calls {
		out = append(out, strings.SplitAfter(string(c), "\n")...)
	}
	var kept []string
	for _, l := range out {
		if l != "" {
			kept = append(kept, l)
		}
	}
	return kept
}

func line(i int) []byte { return []byte(fmt.Sprintf("{\"n\":%d}\n", i)) }

func TestCloseWritesEveryLineInOrder(t *testing.T) {
	var r recorder
	// 20,000 short lines fill several chunks but fit in the bound: none
	// may be dropped however slow the flusher is.
	w := New(&r, Options{BufferBytes: 8 * chunkBytes, FlushInterval: time.Hour})
	const n = 20000
	for i := range n {
		if _, err := w.Write(line(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := r.lines()
	if len(got) != n {
		t.Fatalf("%d lines written, want %d (dropped %d)", len(got), n, w.Dropped())
	}
	for i, l := range got {
		if l != string(line(i)) {
			t.Fatalf("line %d = %q, want %q", i, l, line(i))
		}
	}
	if w.Written() != n || w.Dropped() != 0 {
		t.Errorf("written %d dropped %d", w.Written(), w.Dropped())
	}
	if len(r.calls) >= n/10 {
		t.Errorf("%d writes for %d lines: not buffered", len(r.calls), n)
	}
}

func TestLineWaitsAtMostTheInterval(t *testing.T) {
	r := recorder{writes: make(chan struct{}, 1)}
	w := New(&r, Options{FlushInterval: 5 * time.Millisecond})
	defer w.Close()
	_, _ = w.Write(line(1))
	select {
	case <-r.writes:
	case <-time.After(30 * time.Second): // the bound is the interval; this only guards a hang
		t.Fatal("a lone line was not flushed by the interval")
	}
	if got := r.lines(); len(got) != 1 || got[0] != string(line(1)) {
		t.Errorf("got %q", got)
	}
}

func TestSyncWritesWhatWasTaken(t *testing.T) {
	var r recorder
	w := New(&r, Options{FlushInterval: time.Hour})
	defer w.Close()
	for i := range 3 {
		_, _ = w.Write(line(i))
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := r.lines(); len(got) != 3 {
		t.Errorf("after Sync: %q", got)
	}
}

func TestBehindDropsAndCounts(t *testing.T) {
	r := recorder{gate: make(chan struct{})}
	var mu sync.Mutex
	var reports []uint64
	var lastTotal uint64
	w := New(&r, Options{BufferBytes: 2 * chunkBytes, FlushInterval: time.Millisecond,
		OnDrop: func(dropped, total uint64) {
			mu.Lock()
			reports = append(reports, dropped)
			lastTotal = total
			mu.Unlock()
		}})
	// The output is stuck: two chunks fill, then every line is dropped.
	const n = 10000
	big := bytes.Repeat([]byte("x"), 99)
	big = append(big, '\n')
	for range n {
		_, _ = w.Write(big)
	}
	held := 2 * chunkBytes / len(big)
	if d := w.Dropped(); d < n-uint64(held)-1 || d == n {
		t.Errorf("dropped %d of %d with room for about %d", d, n, held)
	}
	close(r.gate) // the output recovers
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := uint64(len(r.lines())); got+w.Dropped() != n {
		t.Errorf("written %d + dropped %d != %d", got, w.Dropped(), n)
	}
	mu.Lock()
	defer mu.Unlock()
	var sum uint64
	for _, d := range reports {
		sum += d
	}
	if len(reports) == 0 || sum != w.Dropped() || lastTotal != w.Dropped() {
		t.Errorf("OnDrop reports %v (total %d), want them to add up to %d", reports, lastTotal, w.Dropped())
	}
}

func TestWriteErrorDropsTheChunkAndIsReported(t *testing.T) {
	r := recorder{err: errors.New("disk full")}
	w := New(&r, Options{FlushInterval: time.Hour})
	_, _ = w.Write(line(1))
	_, _ = w.Write(line(2))
	if err := w.Sync(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Sync = %v, want the output's error", err)
	}
	if w.Dropped() != 2 {
		t.Errorf("dropped %d, want 2", w.Dropped())
	}
	r.mu.Lock()
	r.err = nil
	r.mu.Unlock()
	_, _ = w.Write(line(3))
	if err := w.Close(); err != nil {
		t.Errorf("Close after recovery = %v", err)
	}
	if w.Written() != 1 {
		t.Errorf("written %d after recovery, want 1", w.Written())
	}
}

func TestAfterCloseLinesAreDropped(t *testing.T) {
	var r recorder
	w := New(&r, Options{})
	_ = w.Close()
	_, _ = w.Write(line(1))
	if w.Dropped() != 1 || len(r.lines()) != 0 {
		t.Errorf("dropped %d, lines %q", w.Dropped(), r.lines())
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := w.Sync(); err != nil {
		t.Errorf("Sync after Close = %v", err)
	}
}

func TestConcurrentWritersAndDirectKeepLinesWhole(t *testing.T) {
	var r recorder
	w := New(&r, Options{FlushInterval: time.Millisecond})
	d := w.Direct()
	const writers, each = 8, 2000
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				if g == 0 && i%100 == 0 {
					_, _ = d.Write([]byte("direct\n"))
					continue
				}
				_, _ = w.Write(line(g*each + i))
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	for _, c := range r.calls {
		if len(c) == 0 || c[len(c)-1] != '\n' {
			t.Fatalf("a write ends mid-line: %q", c)
		}
	}
	r.mu.Unlock()
	seen := map[string]bool{}
	direct := 0
	for _, l := range r.lines() {
		if l == "direct\n" {
			direct++
			continue
		}
		if seen[l] {
			t.Fatalf("line %q twice", l)
		}
		seen[l] = true
	}
	if len(seen)+direct != writers*each || direct != each/100 {
		t.Errorf("%d buffered + %d direct lines, want %d", len(seen), direct, writers*each)
	}
}

func TestZapCoreOnWriter(t *testing.T) {
	var r recorder
	w := New(&r, Options{FlushInterval: time.Hour})
	log := NewLogger(w, zap.InfoLevel)
	for i := range 100 {
		log.Info("request", zap.Int("i", i))
	}
	_ = w.Close()
	if got := r.lines(); len(got) != 100 || !strings.Contains(got[99], `"i":99`) {
		t.Errorf("%d lines, last %q", len(got), got[len(got)-1])
	}
}

func TestDirectSyncIgnoresPipes(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	w := New(pw, Options{})
	defer w.Close()
	if err := w.Direct().Sync(); err != nil {
		t.Errorf("Sync of a pipe = %v, want nil (fsync of a pipe says EINVAL)", err)
	}
}

func TestCloseIsBoundedWhenTheOutputIsStuck(t *testing.T) {
	r := recorder{gate: make(chan struct{})}
	w := New(&r, Options{FlushInterval: time.Hour, CloseTimeout: 10 * time.Millisecond})
	_, _ = w.Write(line(1))
	if err := w.Close(); !errors.Is(err, ErrStuck) {
		t.Errorf("Close = %v, want ErrStuck", err)
	}
	close(r.gate) // let the flusher finish, for goleak
	if err := w.Close(); err != nil {
		t.Errorf("Close once unstuck = %v", err)
	}
}
