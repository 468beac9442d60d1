package shadow

import (
	"sync"
	"time"
)

// DefaultWakeInterval is how long an awake worker waits for more jobs
// before it parks.
const DefaultWakeInterval = time.Millisecond

// dispatcher is the queue between the requests that begin jobs and the
// workers that run them. It exists to avoid waking a worker per job.
//
// A channel receive would hand each job to a parked worker, and on a
// lightly loaded process every hand-off wakes an OS thread (a futex wake,
// a context switch and a steal) for a few microseconds of work. Measured
// with wrk on the lookup route, running the jobs with no hand-off at all
// saved about 5 of the shadow's 15 µs of CPU per request (BENCHMARKS.md).
// Here a job wakes a worker only when no awake worker is free to take it:
// none is awake, or every awake one is running a job, which may be a slow
// candidate. A worker that finds the queue empty sleeps for one interval,
// on a timer, and then runs whatever arrived meanwhile; only after a whole
// interval with nothing to do does it park. Only one worker waits like
// this at a time: the others park at once, as each timer is a wake-up too.
// Under steady load a worker wakes about once per interval, however many
// jobs there are. Jobs wait up to an interval longer to run; no client
// waits for them.
type dispatcher struct {
	interval time.Duration // 0: park at once, so every job wakes a worker
	workers  int

	mu     sync.Mutex
	ring   []*Job // FIFO of queued jobs; the engine's slots bound it
	head   int
	n      int
	awake  int  // workers not parked, plus wake tokens not yet taken
	free   int  // of those, the ones not running a job
	linger bool // a worker is waiting out an interval for more jobs
	woken  int  // wake tokens sent, ever
	closed bool

	// wake holds a token per worker told to wake. awake ≤ workers bounds
	// the tokens, so a send never blocks.
	wake chan struct{}
	// done is closed by close: it cuts a worker's wait for more jobs short.
	done chan struct{}
}

func newDispatcher(workers, capacity int, interval time.Duration) *dispatcher {
	return &dispatcher{
		interval: interval,
		workers:  workers,
		ring:     make([]*Job, capacity),
		wake:     make(chan struct{}, workers),
		done:     make(chan struct{}),
	}
}

// push queues j, waking a worker if needed. It returns why nothing was
// queued, or "": SkipShutdown once the dispatcher is closed, SkipPoolFull
// when the queue is full (the engine's slots keep it from filling).
func (d *dispatcher) push(j *Job) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.closed:
		return SkipShutdown
	case d.n == len(d.ring):
		return SkipPoolFull
	}
	d.ring[(d.head+d.n)%len(d.ring)] = j
	d.n++
	d.wakeLocked()
	return ""
}

// wakeLocked tells a parked worker to wake, unless a free one is awake
// already (or every worker is). Caller holds mu; d is not closed.
func (d *dispatcher) wakeLocked() {
	if d.awake < d.workers && (d.free == 0 || d.interval == 0) {
		d.awake++
		d.free++
		d.woken++
		d.wake <- struct{}{}
	}
}

// wakes counts the times a job woke a worker.
func (d *dispatcher) wakes() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.woken
}

// popLocked takes the oldest queued job, nil if none.
func (d *dispatcher) popLocked() *Job {
	if d.n == 0 {
		return nil
	}
	j := d.ring[d.head]
	d.ring[d.head] = nil
	d.head = (d.head + 1) % len(d.ring)
	d.n--
	return j
}

// work is a worker's loop: park until woken, run jobs until the queue has
// stayed empty for an interval, park again. After close it runs what is
// still queued and returns true. It returns false as soon as run does: the
// job's call was abandoned past its deadline (deadline.go), the goroutine
// leaves the pool with it, and leave has put a replacement in its place.
func (d *dispatcher) work(run func(*Job) bool) bool {
	for range d.wake {
		if !d.drain(run) {
			return false
		}
	}
	// Closed: run what is still queued, counted as awake like any worker
	// running jobs, so leave's accounting holds here too.
	d.mu.Lock()
	d.awake++
	d.free++
	d.mu.Unlock()
	return d.drain(run)
}

// drain runs queued jobs; when the queue is empty it waits one interval
// for more, then parks (returns true). It returns false, touching nothing,
// when run does.
func (d *dispatcher) drain(run func(*Job) bool) bool {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	waited := false
	d.mu.Lock()
	for {
		// One job at a time: a job taken waits only for its own worker,
		// never behind a slow candidate.
		j := d.popLocked()
		// One waiting worker is enough to pick up what arrives; a second
		// would only add timer wake-ups.
		if j == nil && (waited || d.interval == 0 || d.closed || d.linger) {
			d.awake--
			d.free--
			d.mu.Unlock()
			return true
		}
		if j == nil {
			d.linger = true
			d.mu.Unlock()
			if timer == nil {
				timer = time.NewTimer(d.interval)
			} else {
				timer.Reset(d.interval)
			}
			select {
			case <-timer.C:
			case <-d.done:
			}
			waited = true
			d.mu.Lock()
			d.linger = false
			continue
		}
		waited = false
		d.free--
		d.mu.Unlock()
		if !run(j) {
			return false
		}
		d.mu.Lock()
		d.free++
	}
}

// leave accounts for a worker that left the pool in the middle of a job
// (its call was abandoned): it was awake and busy. If jobs are waiting and
// no free worker is awake, a token goes to the replacement the caller
// starts, as push would have sent one.
func (d *dispatcher) leave() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.awake--
	if d.n > 0 && !d.closed {
		d.wakeLocked()
	}
}

// close refuses further jobs and lets the workers finish: each runs what
// is queued, then returns from work. It returns the jobs queued if no
// worker will ever run them (started false).
func (d *dispatcher) close(started bool) []*Job {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		d.closed = true
		close(d.wake)
		close(d.done)
	}
	if started {
		return nil
	}
	var left []*Job
	for j := d.popLocked(); j != nil; j = d.popLocked() {
		left = append(left, j)
	}
	return left
}
