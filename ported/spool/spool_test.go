package spool

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/strangler-proxy/strangler/ported/delivery"
)

func testConfig(dir string) Config {
	return Config{
		Dir:         dir,
		SegmentSize: 64 << 10, // several segments with little data
		// No hold (the default): tests publish from one goroutine.
		// TestGroupCommitAndDumpWhileRunning sets one.
		GroupCommitInterval: 0,
		RetryBackoff:        5 * time.Millisecond,
		MaxRetryBackoff:     50 * time.Millisecond,
		CheckpointInterval:  10 * time.Millisecond,
	}
}

func open(t *testing.T, cfg Config) *Spool {
	t.Helper()
	s, err := Open(cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func closeSpool(t *testing.T, s *Spool, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func msg(i int) delivery.Message {
	return delivery.Message{
		Key:     fmt.Appendf(nil, "user_%d", i%5),
		Value:   fmt.Appendf(nil, `{"seq":%d,"pad":"%s"}`, i, bytes.Repeat([]byte("x"), i%200)),
		EventID: fmt.Sprintf("evt_%05d", i),
	}
}

func publishN(t *testing.T, s *Spool, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := s.Publish(context.Background(), msg(i)); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
}

func TestRecordRoundTripAndCorruption(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123, time.UTC)
	good := encodeRecord(delivery.Message{Key: []byte("user_1"), Value: []byte(`{"a":1}`), EventID: "evt_1"}, at, false)
	rec, err := decodeRecord(good)
	if err != nil || string(rec.msg.Key) != "user_1" || string(rec.msg.Value) != `{"a":1}` ||
		rec.msg.EventID != "evt_1" || !rec.at.Equal(at) {
		t.Fatalf("decode(encode) = %+v, %v", rec, err)
	}
	tests := []struct {
		name string
		give func([]byte) []byte
	}{
		{"flipped value byte", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
		{"flipped key byte", func(b []byte) []byte { b[recordHeader+1] ^= 0x40; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-3] }},
		{"zeros", func(b []byte) []byte { return make([]byte, len(b)) }},
		{"too short", func(b []byte) []byte { return b[:5] }},
		{"empty", func([]byte) []byte { return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeRecord(tt.give(bytes.Clone(good))); !errors.Is(err, ErrCorruptRecord) {
				t.Fatalf("decode = %v, want ErrCorruptRecord", err)
			}
		})
	}
}

// fakeSender records what the forwarder sends and acks from its own
// goroutine, in order, failing sends that fail() picks.
type fakeSender struct {
	mu       sync.Mutex
	attempts int
	sent     []delivery.Message // every accepted send, in order
	acked    []delivery.Message // successfully acked, in ack order
	fail     func(attempt int, m delivery.Message) error
	hold     bool // never ack (a broker that swallows requests)
	queue    chan func()
	stop     chan struct{}
	done     chan struct{}
}

func newFakeSender(t *testing.T) *fakeSender {
	f := &fakeSender{queue: make(chan func(), 4096), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for {
			select {
			case fn := <-f.queue:
				fn()
			case <-f.stop:
				return
			}
		}
	}()
	t.Cleanup(func() { close(f.stop); <-f.done })
	return f
}

var errFakeBroker = errors.New("fake broker: not leader")

func (f *fakeSender) Send(ctx context.Context, m delivery.Message, ack func(error)) error {
	f.mu.Lock()
	attempt := f.attempts
	f.attempts++
	var err error
	if f.fail != nil {
		err = f.fail(attempt, m)
	}
	if errors.Is(err, errNotAccepted) {
		f.mu.Unlock()
		return errors.New("fake producer: not connected")
	}
	f.sent = append(f.sent, m)
	hold := f.hold
	f.mu.Unlock()
	if hold {
		return nil
	}
	select {
	case f.queue <- func() {
		if err == nil {
			f.mu.Lock()
			f.acked = append(f.acked, m)
			f.mu.Unlock()
		}
		ack(err)
	}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errNotAccepted makes Send itself fail (nothing in flight, no ack).
var errNotAccepted = errors.New("not accepted")

func (f *fakeSender) ackedIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]string, len(f.acked))
	for i, m := range f.acked {
		ids[i] = m.EventID
	}
	return ids
}

func waitDrained(t *testing.T, s *Spool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := s.Stats()
		if st.Acked == st.Last && st.Entries == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("spool not drained: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkDelivered asserts every event 0..n-1 was acked at least once and
// that, per key, both the first and the last acked copies appear in
// publish order.
func checkDelivered(t *testing.T, acked []string, n int) {
	t.Helper()
	firstPos, lastPos := map[string]int{}, map[string]int{}
	for pos, id := range acked {
		if _, ok := firstPos[id]; !ok {
			firstPos[id] = pos
		}
		lastPos[id] = pos
	}
	for i := range n {
		if _, ok := lastPos[fmt.Sprintf("evt_%05d", i)]; !ok {
			t.Fatalf("event %d never delivered (gap); %d acks", i, len(acked))
		}
	}
	if len(lastPos) != n {
		t.Fatalf("delivered %d distinct events, want %d", len(lastPos), n)
	}
	for i := 5; i < n; i++ {
		a, b := fmt.Sprintf("evt_%05d", i-5), fmt.Sprintf("evt_%05d", i) // same key (i%5)
		if lastPos[a] > lastPos[b] {
			t.Fatalf("last copy of %s landed after %s: per-key order broken", a, b)
		}
		if firstPos[a] > firstPos[b] {
			t.Fatalf("first copy of %s landed after %s: per-key order broken", a, b)
		}
	}
}

func TestForwardInOrderWithFailures(t *testing.T) {
	tests := []struct {
		name string
		fail func(attempt int, m delivery.Message) error
	}{
		{name: "no failures"},
		{name: "every 7th send fails", fail: func(a int, _ delivery.Message) error {
			if a%7 == 3 {
				return errFakeBroker
			}
			return nil
		}},
		{name: "producer refuses sends for a while", fail: func(a int, _ delivery.Message) error {
			if a > 50 && a < 80 {
				return errNotAccepted
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t, testConfig(t.TempDir()))
			fs := newFakeSender(t)
			fs.fail = tt.fail
			if err := s.Forward(context.Background(), fs); err != nil {
				t.Fatalf("Forward: %v", err)
			}
			const n = 400
			publishN(t, s, 0, n)
			waitDrained(t, s)
			closeSpool(t, s, 5*time.Second)
			checkDelivered(t, fs.ackedIDs(), n)
		})
	}
}

func TestRestartReplaysUnacked(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	s := open(t, cfg)
	fs := newFakeSender(t)
	if err := s.Forward(context.Background(), fs); err != nil {
		t.Fatalf("Forward: %v", err)
	}
	publishN(t, s, 0, 100)
	waitDrained(t, s)
	// Now the broker swallows everything: these are sent, never acked.
	fs.mu.Lock()
	fs.hold = true
	fs.mu.Unlock()
	publishN(t, s, 100, 150)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with un-acked events = %v, want the deadline reported", err)
	}

	var dump bytes.Buffer
	if err := Dump(dir, &dump); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	lines := dumpLines(t, &dump)
	if len(lines) != 150 || lines[0].EventID != "evt_00100" || lines[149].EventID != "evt_00249" {
		t.Fatalf("Dump after close: %d lines, first %+v", len(lines), lines[0])
	}

	s = open(t, cfg)
	if st := s.Stats(); st.Entries != 150 || st.Last != 250 || st.Acked != 100 {
		t.Fatalf("after reopen Stats = %+v, want 150 un-acked of 250", st)
	}
	fs2 := newFakeSender(t)
	if err := s.Forward(context.Background(), fs2); err != nil {
		t.Fatalf("Forward: %v", err)
	}
	publishN(t, s, 250, 10)
	waitDrained(t, s)
	closeSpool(t, s, 5*time.Second)
	got := fs2.ackedIDs()
	if len(got) != 160 || got[0] != "evt_00100" || got[159] != "evt_00259" {
		t.Fatalf("replayed %d events (%v...), want evt_00100..evt_00259", len(got), got[:min(3, len(got))])
	}
	// Reopening once more: everything is acked, nothing to replay.
	s = open(t, cfg)
	if st := s.Stats(); st.Entries != 0 || st.Acked != 260 {
		t.Fatalf("after drain and reopen Stats = %+v", st)
	}
	closeSpool(t, s, time.Second)
}

func dumpLines(t *testing.T, r *bytes.Buffer) []DumpRecord {
	t.Helper()
	out, err := parseDump(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func parseDump(r *bytes.Buffer) ([]DumpRecord, error) {
	var out []DumpRecord
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var d DumpRecord
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			return nil, fmt.Errorf("dump line %q: %w", sc.Text(), err)
		}
		out = append(out, d)
	}
	return out, sc.Err()
}

// frameEnds returns the byte offsets at which each entry of a segment file ends.
func frameEnds(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ends []int
	for off := 0; off < len(b); {
		_, n, ok := nextFrame(b[off:])
		if !ok {
			t.Fatalf("segment %s is torn before the test tore it", path)
		}
		off += n
		ends = append(ends, off)
	}
	return ends
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestTornTailIsDroppedOnOpen(t *testing.T) {
	src := t.TempDir()
	s := open(t, testConfig(src))
	const n = 1000
	publishN(t, s, 0, n)
	closeSpool(t, s, time.Second)
	segs, err := listSegments(src)
	if err != nil || len(segs) < 2 {
		t.Fatalf("want several segments, got %d (%v)", len(segs), err)
	}
	tail := segs[len(segs)-1]
	ends := frameEnds(t, tail.path)
	inTail := len(ends)
	before := n - inTail // complete records in earlier segments

	rng := rand.New(rand.NewPCG(1, 2))
	type tear struct {
		name string
		cut  func(b []byte) []byte
		want int // records that must survive
	}
	tears := []tear{
		{"at a record boundary", func(b []byte) []byte { return b[:ends[inTail-2]] }, n - 1},
		{"one byte into the last record", func(b []byte) []byte { return b[:ends[inTail-2]+1] }, n - 1},
		{"one byte short of the end", func(b []byte) []byte { return b[:len(b)-1] }, n - 1},
		{"whole tail gone", func(b []byte) []byte { return b[:0] }, before},
		{"zero-filled tail (crash after size update)", func(b []byte) []byte { return append(b, make([]byte, 300)...) }, n},
		{"garbage framed as records", func(b []byte) []byte { return append(b, 3, 1, 2, 3, 2, 9, 9) }, n},
	}
	for range 6 {
		cut := 1 + rng.IntN(ends[inTail-1]-1)
		complete := 0
		for _, e := range ends {
			if e <= cut {
				complete++
			}
		}
		tears = append(tears, tear{fmt.Sprintf("random offset %d", cut), func(b []byte) []byte { return b[:cut] }, before + complete})
	}
	for _, tt := range tears {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDir(t, src)
			path := filepath.Join(dir, filepath.Base(tail.path))
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tt.cut(b), 0o640); err != nil {
				t.Fatal(err)
			}
			s := open(t, testConfig(dir))
			if st := s.Stats(); st.Entries != int64(tt.want) || st.Last != uint64(tt.want) {
				t.Fatalf("after tear Stats = %+v, want %d entries", st, tt.want)
			}
			fs := newFakeSender(t)
			if err := s.Forward(context.Background(), fs); err != nil {
				t.Fatal(err)
			}
			// The log keeps working after the repair.
			if err := s.Publish(context.Background(), msg(tt.want)); err != nil {
				t.Fatalf("Publish after repair: %v", err)
			}
			waitDrained(t, s)
			closeSpool(t, s, time.Second)
			got := fs.ackedIDs()
			if len(got) != tt.want+1 {
				t.Fatalf("replayed %d events, want %d", len(got), tt.want+1)
			}
			for i, id := range got {
				if id != fmt.Sprintf("evt_%05d", i) {
					t.Fatalf("event %d is %s", i, id)
				}
			}
		})
	}
}

func TestCorruptRecordInsideLogIsSkipped(t *testing.T) {
	dir := t.TempDir()
	s := open(t, testConfig(dir))
	publishN(t, s, 0, 1000)
	closeSpool(t, s, time.Second)
	segs, _ := listSegments(dir)
	first := segs[0]
	ends := frameEnds(t, first.path)
	b, _ := os.ReadFile(first.path)
	b[ends[9]-1] ^= 0xff // last byte of record 10 (index 10)
	if err := os.WriteFile(first.path, b, 0o640); err != nil {
		t.Fatal(err)
	}
	s = open(t, testConfig(dir))
	fs := newFakeSender(t)
	if err := s.Forward(context.Background(), fs); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, s)
	closeSpool(t, s, time.Second)
	got := map[string]bool{}
	for _, id := range fs.ackedIDs() {
		got[id] = true
	}
	for i := range 1000 {
		id := fmt.Sprintf("evt_%05d", i)
		if got[id] != (i != 9) {
			t.Errorf("%s delivered: %v; want all but the damaged evt_00009", id, got[id])
		}
	}
}

func TestBackpressure(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxEntries = 20
	cfg.FullRetryAfter = 45 * time.Second
	s := open(t, cfg)
	defer func() {
		// Held events cannot drain: Close reports its deadline.
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close = %v, want the deadline", err)
		}
	}()
	publishN(t, s, 0, 20)
	err := s.Publish(context.Background(), msg(20))
	var ra interface{ RetryAfter() time.Duration }
	if !errors.As(err, &ra) || ra.RetryAfter() != 45*time.Second {
		t.Fatalf("Publish into a full spool with no forwarder = %v, want backpressure with Retry-After 45s", err)
	}
	if err := s.Ping(context.Background()); !errors.As(err, &ra) {
		t.Fatalf("Ping on a full spool = %v, want backpressure", err)
	}
	// Kafka drains it: room again, and a short Retry-After while draining.
	fs := newFakeSender(t)
	if err := s.Forward(context.Background(), fs); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, s)
	fs.mu.Lock()
	fs.hold = true
	fs.mu.Unlock()
	publishN(t, s, 20, 20)
	err = s.Publish(context.Background(), msg(40))
	if !errors.As(err, &ra) || ra.RetryAfter() != time.Second {
		t.Fatalf("Publish into a full, recently draining spool = %v, want Retry-After 1s", err)
	}

	bytesCfg := testConfig(t.TempDir())
	bytesCfg.MaxBytes = 64 << 10
	s2 := open(t, bytesCfg)
	defer closeSpool(t, s2, time.Second)
	var full bool
	for i := range 2000 {
		if err := s2.Publish(context.Background(), msg(i)); err != nil {
			if !errors.As(err, &ra) {
				t.Fatalf("Publish %d = %v, want backpressure", i, err)
			}
			full = true
			break
		}
	}
	if st := s2.Stats(); !full || st.Bytes > 64<<10 {
		t.Fatalf("byte cap not enforced: full=%v stats=%+v", full, st)
	}
}

func TestGroupCommitAndDumpWhileRunning(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.GroupCommitInterval = 2 * time.Millisecond // a hold, so lone appends wait for company
	s := open(t, cfg)
	const writers, each = 32, 40
	var wg sync.WaitGroup
	stopDump := make(chan struct{})
	dumpErr := make(chan error, 1)
	go func() {
		// Dump concurrently with appends: every line must parse and indexes ascend.
		for {
			select {
			case <-stopDump:
				dumpErr <- nil
				return
			default:
			}
			var buf bytes.Buffer
			if err := Dump(dir, &buf); err != nil {
				dumpErr <- err
				return
			}
			lines, err := parseDump(&buf)
			if err != nil {
				dumpErr <- err
				return
			}
			var prev uint64
			for _, d := range lines {
				if d.Index <= prev || d.Error != "" {
					dumpErr <- fmt.Errorf("dump line %+v after index %d", d, prev)
					return
				}
				prev = d.Index
			}
		}
	}()
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := s.Publish(context.Background(), msg(w*each+i)); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stopDump)
	if err := <-dumpErr; err != nil {
		t.Fatalf("Dump while running: %v", err)
	}
	st := s.Stats()
	closeSpool(t, s, time.Second)
	if st.Appends != writers*each {
		t.Fatalf("appends = %d, want %d", st.Appends, writers*each)
	}
	// One fsync covers many appends when publishers are concurrent.
	if st.Commits*2 > st.Appends {
		t.Fatalf("fsyncs = %d for %d appends: no group commit", st.Commits, st.Appends)
	}
	var buf bytes.Buffer
	if err := Dump(dir, &buf); err != nil {
		t.Fatal(err)
	}
	lines := dumpLines(t, &buf)
	seen := map[string]bool{}
	for _, d := range lines {
		var v struct {
			Seq int `json:"seq"`
		}
		if err := json.Unmarshal(d.Value, &v); err != nil || d.EventID != fmt.Sprintf("evt_%05d", v.Seq) ||
			d.Key != fmt.Sprintf("user_%d", v.Seq%5) || d.ReceivedAt == nil {
			t.Fatalf("dump line %+v does not match its event (%v)", d, err)
		}
		seen[d.EventID] = true
	}
	if len(lines) != writers*each || len(seen) != writers*each {
		t.Fatalf("dump has %d lines, %d distinct, want %d", len(lines), len(seen), writers*each)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		give Config
		ok   bool
	}{
		{"defaults", Config{}, true},
		{"negative cap", Config{MaxBytes: -1}, false},
		{"tiny segment", Config{SegmentSize: 1024}, false},
		{"cap below segment", Config{MaxBytes: 1 << 20, SegmentSize: 4 << 20}, false},
		{"backoff above max", Config{RetryBackoff: time.Minute}, false},
		{"group commit hold", Config{GroupCommitInterval: 2 * time.Millisecond}, true},
		{"negative group commit hold", Config{GroupCommitInterval: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.give.WithDefaults().Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestDirectorySyncedWhenASegmentStarts: the committer skips the directory
// fsync on ordinary commits, so every commit that started a segment file
// must still have been followed by one before its Publish returned.
func TestDirectorySyncedWhenASegmentStarts(t *testing.T) {
	dir := t.TempDir()
	s := open(t, testConfig(dir)) // 64 KiB segments
	defer closeSpool(t, s, 5*time.Second)
	value := bytes.Repeat([]byte("v"), 1500)
	tail := func() uint64 {
		segs, err := listSegments(dir)
		if err != nil || len(segs) == 0 {
			t.Fatalf("list segments: %v %v", segs, err)
		}
		return segs[len(segs)-1].first
	}
	prevTail, prevSyncs := tail(), s.dirSyncs.Load()
	var started int
	for i := range 400 { // ≈ 600 KiB: about ten segments
		m := delivery.Message{Key: []byte("k"), Value: value, EventID: fmt.Sprintf("evt_%d", i)}
		if err := s.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		syncs := s.dirSyncs.Load()
		if now := tail(); now != prevTail {
			started++
			if syncs == prevSyncs {
				t.Fatalf("publish %d started segment %d without a directory fsync", i, now)
			}
			prevTail = now
		}
		prevSyncs = syncs
	}
	st := s.Stats()
	if started < 5 {
		t.Fatalf("only %d segments started; the test needs several", started)
	}
	// The point of the watch: far fewer directory fsyncs than commits.
	if syncs := s.dirSyncs.Load(); syncs > 3*uint64(started) || syncs >= st.Commits/4 {
		t.Fatalf("%d directory fsyncs for %d commits and %d new segments", syncs, st.Commits, started)
	}
}

// TestMetricsAgreeWithStats: the exported series count what the spool did.
func TestMetricsAgreeWithStats(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := Open(testConfig(t.TempDir()), zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeSpool(t, s, 5*time.Second)
	const n = 25
	for i := range n {
		if err := s.Publish(context.Background(), msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	got := map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch {
			case m.Histogram != nil:
				got[f.GetName()+"_count"] = float64(m.GetHistogram().GetSampleCount())
			case m.Counter != nil:
				got[f.GetName()] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				got[f.GetName()] = m.GetGauge().GetValue()
			}
		}
	}
	want := map[string]float64{
		"strangler_spool_appends_total":             n,
		"strangler_spool_entries":                   n,
		"strangler_spool_fsyncs_total":              float64(st.Commits),
		"strangler_spool_commit_batch_events_count": float64(st.Commits),
		"strangler_spool_commit_seconds_count":      float64(st.Commits),
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
	if st.Commits == 0 || st.Appends != n {
		t.Fatalf("stats %+v", st)
	}
}
