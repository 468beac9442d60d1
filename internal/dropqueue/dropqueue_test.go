package dropqueue

import (
	"sync"
	"testing"
)

func TestPutDropsWhenFullOrClosed(t *testing.T) {
	q := New[int](2)
	if !q.Put(1) || !q.Put(2) {
		t.Fatal("room for two")
	}
	if q.Put(3) || q.Dropped() != 1 || q.Len() != 2 {
		t.Fatalf("full queue took an item: dropped %d len %d", q.Dropped(), q.Len())
	}
	q.Close()
	q.Close() // idempotent
	if q.Put(4) || q.Dropped() != 2 {
		t.Fatalf("closed queue took an item: dropped %d", q.Dropped())
	}
	var got []int
	for v := range q.C() {
		got = append(got, v)
	}
	if len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("consumer got %v, want what was queued before Close", got)
	}
	q.Drop(3)
	if q.Dropped() != 5 {
		t.Fatalf("dropped %d after the consumer gave up on 3", q.Dropped())
	}
}

// TestPutRacesClose: Puts concurrent with Close never panic on a closed
// channel, and every item is either received or counted.
func TestPutRacesClose(t *testing.T) {
	q := New[int](16)
	var wg sync.WaitGroup
	var taken, received int
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		for range q.C() {
			received++
		}
		close(done)
	}()
	for range 8 {
		wg.Go(func() {
			for i := range 1000 {
				if q.Put(i) {
					mu.Lock()
					taken++
					mu.Unlock()
				}
			}
		})
	}
	q.Close()
	wg.Wait()
	<-done
	if received != taken || uint64(taken)+q.Dropped() != 8000 {
		t.Fatalf("taken %d received %d dropped %d, want taken = received and 8000 in all", taken, received, q.Dropped())
	}
}
