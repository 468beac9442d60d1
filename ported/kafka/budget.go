package kafka

import (
	"context"
	"sync"
)

// budget bounds the messages and bytes handed to sarama and not yet settled.
// sarama itself buffers without limit while a broker is away; this is the cap.
type budget struct {
	maxN int
	maxB int64

	mu   sync.Mutex
	n    int
	b    int64
	wake chan struct{} // closed and replaced on every release
}

func newBudget(maxN int, maxB int64) *budget {
	return &budget{maxN: maxN, maxB: maxB, wake: make(chan struct{})}
}

// acquire waits for room for one message of size bytes. A message larger
// than the whole byte budget is let through alone rather than never.
func (b *budget) acquire(ctx context.Context, stop <-chan struct{}, size int64) error {
	for {
		b.mu.Lock()
		if b.n == 0 || (b.n < b.maxN && b.b+size <= b.maxB) {
			b.n++
			b.b += size
			b.mu.Unlock()
			return nil
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-stop:
			return ErrClosed
		}
	}
}

func (b *budget) release(size int64) {
	b.mu.Lock()
	b.n--
	b.b -= size
	close(b.wake)
	b.wake = make(chan struct{})
	b.mu.Unlock()
}

func (b *budget) usage() (int, int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n, b.b
}
