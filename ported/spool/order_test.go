package spool

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/ported/delivery"
)

// shufflingSender is a producer as loose as sarama is after it gives up on
// a batch: of what it holds it writes (acks) any message first, and fails
// some, so a message handed over after another may land before it. It also
// counts any moment at which two messages of one key were in its hands.
type shufflingSender struct {
	t   *testing.T
	rng *rand.Rand

	mu       sync.Mutex
	held     []heldMsg
	inflight map[string]int
	overlaps int
	written  []delivery.Message // acked with nil, in write order

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

type heldMsg struct {
	m   delivery.Message
	ack func(error)
}

var errShuffled = errors.New("shuffling sender: batch failed")

func newShufflingSender(t *testing.T, seed uint64) *shufflingSender {
	f := &shufflingSender{
		t: t, rng: rand.New(rand.NewPCG(seed, 1)), inflight: map[string]int{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go f.loop()
	t.Cleanup(func() { close(f.stop); <-f.done })
	return f
}

func (f *shufflingSender) Send(_ context.Context, m delivery.Message, ack func(error)) error {
	f.mu.Lock()
	k := string(m.Key)
	f.inflight[k]++
	if f.inflight[k] > 1 {
		f.overlaps++
	}
	f.held = append(f.held, heldMsg{m: m, ack: ack})
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
	return nil
}

// loop settles held messages in random order, one in 40 as a failure.
func (f *shufflingSender) loop() {
	defer close(f.done)
	for {
		f.mu.Lock()
		n := len(f.held)
		f.mu.Unlock()
		if n == 0 {
			select {
			case <-f.wake:
				continue
			case <-f.stop:
				return
			}
		}
		// Let a few arrive before picking, so there is something to shuffle.
		time.Sleep(200 * time.Microsecond)
		f.mu.Lock()
		i := f.rng.IntN(len(f.held))
		h := f.held[i]
		f.held = append(f.held[:i], f.held[i+1:]...)
		f.inflight[string(h.m.Key)]--
		var err error
		if f.rng.IntN(40) == 0 {
			err = errShuffled
		} else {
			f.written = append(f.written, h.m)
		}
		f.mu.Unlock()
		h.ack(err)
	}
}

// Whatever order the producer writes or fails what it holds, the first copy
// of each event in Kafka comes in spool order per key, and the producer
// never holds two events of one key.
func TestPerKeyOrderWhateverTheProducerDoes(t *testing.T) {
	s := open(t, testConfig(t.TempDir()))
	f := newShufflingSender(t, 42)
	if err := s.Forward(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	const n = 600
	publishN(t, s, 0, n) // msg(i) has key user_(i%5)
	waitDrained(t, s)
	closeSpool(t, s, 5*time.Second)

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.overlaps > 0 {
		t.Errorf("the producer held two events of one key at once %d times", f.overlaps)
	}
	ids := make([]string, len(f.written))
	for i, m := range f.written {
		ids[i] = m.EventID
	}
	checkDelivered(t, ids, n)
}
