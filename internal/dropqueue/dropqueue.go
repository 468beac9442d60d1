// Package dropqueue is the hand-off from a request path to a writer
// goroutine that must never make the request wait: a bounded queue whose
// Put drops (and counts) what does not fit, instead of blocking.
//
// The capture file, the JSONL diff log and the Kafka diff topic all hand
// records to their writer this way.
package dropqueue

import (
	"sync"
	"sync/atomic"
)

// Queue is safe for concurrent Puts and one consumer reading C.
type Queue[T any] struct {
	ch      chan T
	dropped atomic.Uint64

	mu     sync.RWMutex // guards closed against a send on a closed channel
	closed bool
}

// New returns a queue holding up to n items (n ≤ 0: 1).
func New[T any](n int) *Queue[T] {
	return &Queue[T]{ch: make(chan T, max(n, 1))}
}

// Put queues v and reports whether it was taken; false (counted as
// dropped) when the queue is full or closed. It never waits.
func (q *Queue[T]) Put(v T) bool {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if !q.closed {
		select {
		case q.ch <- v:
			return true
		default:
		}
	}
	q.dropped.Add(1)
	return false
}

// C is the consumer's end; it is closed by Close once drained.
func (q *Queue[T]) C() <-chan T { return q.ch }

// Len is how many items wait.
func (q *Queue[T]) Len() int { return len(q.ch) }

// Drop counts n items the consumer gave up on.
func (q *Queue[T]) Drop(n int) { q.dropped.Add(uint64(n)) }

// Dropped is how many items were dropped, by Put or by the consumer.
func (q *Queue[T]) Dropped() uint64 { return q.dropped.Load() }

// Close stops taking items; the consumer still gets what is queued. It may
// be called more than once.
func (q *Queue[T]) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
}
