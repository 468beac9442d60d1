package spool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/ported/delivery"
)

func keyOf(s string) [16]byte {
	sum := sha256.Sum256([]byte(s))
	return [16]byte(sum[:16])
}

func keyedMsg(i int, recvMs int64) delivery.Message {
	m := msg(i)
	m.Idem = &delivery.Idem{Key: keyOf(fmt.Sprint("key-", i)), Fingerprint: keyOf(fmt.Sprint("body-", i)), ReceivedAt: recvMs}
	return m
}

// claimAndPublish does what the intake does with a keyed request.
func claimAndPublish(t *testing.T, s *Spool, m delivery.Message) {
	t.Helper()
	if _, found, err := s.Claim(m.Idem.Key); err != nil || found {
		t.Fatalf("Claim %s: found %v, %v", m.EventID, found, err)
	}
	if err := s.Publish(context.Background(), m); err != nil {
		t.Fatalf("Publish %s: %v", m.EventID, err)
	}
}

func wantRemembered(t *testing.T, s *Spool, m delivery.Message) {
	t.Helper()
	r, found, err := s.Claim(m.Idem.Key)
	if err != nil || !found || r.EventID != m.EventID || r.Fingerprint != m.Idem.Fingerprint || r.ReceivedAt != m.Idem.ReceivedAt {
		t.Fatalf("Claim of %s's key = %+v found %v %v, want its first answer", m.EventID, r, found, err)
	}
}

// A key is claimed while its event is being stored, remembered once it is
// durable, and dropped when the spool refuses the event.
func TestKeyClaimedThenRemembered(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxEntries = 1
	s := open(t, cfg)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = s.Close(ctx) // nothing forwards: the deadline is expected
	}()
	m := keyedMsg(1, time.Now().UnixMilli())
	if _, found, err := s.Claim(m.Idem.Key); err != nil || found {
		t.Fatalf("first Claim: %v %v", found, err)
	}
	if _, _, err := s.Claim(m.Idem.Key); !errors.Is(err, delivery.ErrKeyInFlight) {
		t.Fatalf("Claim while the first holds it = %v, want ErrKeyInFlight", err)
	}
	if err := s.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	wantRemembered(t, s, m)

	full := keyedMsg(2, time.Now().UnixMilli())
	if _, _, err := s.Claim(full.Idem.Key); err != nil {
		t.Fatal(err)
	}
	var bp *delivery.BackpressureError
	if err := s.Publish(context.Background(), full); !errors.As(err, &bp) {
		t.Fatalf("Publish into a full spool = %v", err)
	}
	if _, found, err := s.Claim(full.Idem.Key); err != nil || found {
		t.Fatalf("Claim after the spool refused the event: found %v, %v; want the claim free again", found, err)
	}
}

// Keys outlive their events' records: acked and truncated, they are still
// remembered after a restart (from the keys file), and so are keys whose
// records are still in the log; past the window they are forgotten.
func TestKeysSurviveRestartAndTruncation(t *testing.T) {
	dir := t.TempDir()
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	cfg := testConfig(dir)
	cfg.IdempotencyWindow = time.Hour
	openAt := func() *Spool {
		s, err := Open(cfg, zap.NewNop(), nil, WithNow(now))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := openAt()
	fs := newFakeSender(t)
	if err := s.Forward(context.Background(), fs); err != nil {
		t.Fatal(err)
	}
	var msgs []delivery.Message
	for i := range 1500 { // several 64 KiB segments: the front is truncated
		m := keyedMsg(i, now().UnixMilli())
		msgs = append(msgs, m)
		claimAndPublish(t, s, m)
	}
	waitDrained(t, s)
	closeSpool(t, s, 5*time.Second)
	if first, _ := listSegments(dir); len(first) == 0 || first[0].first < 1000 {
		t.Fatalf("segments %v: the test needs the acked front truncated", first)
	}

	s = openAt() // no forwarder: these stay in the log
	for _, m := range msgs {
		wantRemembered(t, s, m)
	}
	tail := []delivery.Message{keyedMsg(5000, now().UnixMilli()), keyedMsg(5001, now().UnixMilli())}
	for _, m := range tail {
		claimAndPublish(t, s, m)
	}
	closeSpool(t, s, time.Second)

	s = openAt()
	for _, m := range append(msgs, tail...) {
		wantRemembered(t, s, m)
	}
	closeSpool(t, s, time.Second)

	// Without the keys file, what the log still holds is read back; the
	// truncated events' keys went with it (the file is what keeps them).
	if err := os.Remove(filepath.Join(dir, keysName)); err != nil {
		t.Fatal(err)
	}
	s = openAt()
	for _, m := range tail {
		wantRemembered(t, s, m)
	}
	closeSpool(t, s, time.Second)

	clock.Add(int64(time.Hour)) // the window has passed
	s = openAt()
	defer closeSpool(t, s, time.Second)
	for _, m := range tail {
		if _, found, err := s.Claim(m.Idem.Key); err != nil || found {
			t.Fatalf("Claim of a key past its window: found %v, %v", found, err)
		}
	}
}

func TestKeyIndexCapAndWindow(t *testing.T) {
	k := newKeyIndex(time.Minute, 3)
	for i := range 5 {
		m := keyedMsg(i, 1000)
		k.done(*m.Idem, m.EventID, uint64(i+1), 1000)
	}
	if n, evicted := k.stats(); n != 3 || evicted != 2 {
		t.Errorf("after 5 keys under a cap of 3: %d kept, %d evicted; want 3 and 2", n, evicted)
	}
	for i := range 5 {
		_, found, _ := k.claim(keyedMsg(i, 0).Idem.Key, 1000)
		if found != (i >= 2) {
			t.Errorf("key %d found %v", i, found)
		}
		k.release(keyedMsg(i, 0).Idem.Key)
	}
	if _, found, _ := k.claim(keyedMsg(4, 0).Idem.Key, 1000+time.Minute.Milliseconds()); found {
		t.Error("a key found at the end of its window")
	}
}

// directFake acks every message at once, as a healthy broker.
type directFake struct{ sent atomic.Int64 }

func (d *directFake) Publish(context.Context, delivery.Message) error { d.sent.Add(1); return nil }
func (d *directFake) Send(_ context.Context, _ delivery.Message, ack func(error)) error {
	d.sent.Add(1)
	go ack(nil)
	return nil
}

// With `delivery: direct` the event goes to Kafka and only its key to the
// spool: remembered across a restart, never listed or forwarded as an event.
func TestDirectKeepsOnlyTheKey(t *testing.T) {
	dir := t.TempDir()
	s := open(t, testConfig(dir))
	p := &directFake{}
	d := s.Direct(p, time.Second)
	m := keyedMsg(7, time.Now().UnixMilli())
	if _, _, err := s.Claim(m.Idem.Key); err != nil {
		t.Fatal(err)
	}
	if err := d.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	wantRemembered(t, s, m)
	var dump bytes.Buffer
	if err := Dump(dir, &dump); err != nil || dump.Len() != 0 {
		t.Fatalf("Dump lists %q (%v); a key-only record is no event", dump.String(), err)
	}
	fs := newFakeSender(t)
	if err := s.Forward(context.Background(), fs); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, s)
	closeSpool(t, s, time.Second)
	if got := fs.ackedIDs(); len(got) != 0 || p.sent.Load() != 1 {
		t.Fatalf("forwarded %v, producer got %d; want the event sent once, by direct", got, p.sent.Load())
	}
	s = open(t, testConfig(dir))
	defer closeSpool(t, s, time.Second)
	wantRemembered(t, s, m)
}

// The keys file does not grow without bound: once it is several times what
// the live keys need, it is rewritten with them alone.
func TestKeysFileIsCompacted(t *testing.T) {
	dir := t.TempDir()
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	cfg := testConfig(dir)
	cfg.IdempotencyWindow = time.Minute
	s, err := Open(cfg, zap.NewNop(), nil, WithNow(func() time.Time { return time.Unix(0, clock.Load()) }))
	if err != nil {
		t.Fatal(err)
	}
	fs := newFakeSender(t)
	if err := s.Forward(context.Background(), fs); err != nil {
		t.Fatal(err)
	}
	const n, per = 20000, 1000
	for round := range n / per {
		clock.Add(int64(time.Minute)) // all before are past their window
		var wg sync.WaitGroup
		for g := range 16 { // concurrent, so that commits group
			wg.Go(func() {
				for i := round*per + g; i < (round+1)*per; i += 16 {
					claimAndPublish(t, s, keyedMsg(i, time.Unix(0, clock.Load()).UnixMilli()))
				}
			})
		}
		wg.Wait()
	}
	waitDrained(t, s)
	last := keyedMsg(n-1, 0)
	wantRemembered(t, s, delivery.Message{EventID: last.EventID, Idem: &delivery.Idem{Key: last.Idem.Key,
		Fingerprint: last.Idem.Fingerprint, ReceivedAt: time.Unix(0, clock.Load()).UnixMilli()}})
	closeSpool(t, s, time.Second)
	fi, err := os.Stat(filepath.Join(dir, keysName))
	if err != nil {
		t.Fatal(err)
	}
	// 20,000 entries are about 1.8 MB; the live ones (at most 1,000) under 0.1.
	if fi.Size() > 1<<20+200<<10 {
		t.Errorf("keys file is %d bytes after %d keys of which at most %d live", fi.Size(), n, per)
	}
}
