package shadow

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/strangler-proxy/strangler/routes"
)

// The deadline of a candidate call.
//
// A job's calls — the candidate, and the twin of the noise sample — run on
// the worker that took the job, under the route's shadow.timeout. The
// worker arms a timer before each call and disarms it after; a call that
// returns in time costs a timer reset and two atomic operations, and no
// goroutine or hand-off (which would cost a thread wake per job). Past the
// deadline the timer abandons the call: the comparison is recorded as an
// error (ErrCandidateTimeout), the job's slot is freed, and a replacement
// worker takes the pool place of the one still inside the call. That
// goroutine finishes on its own — a legacy candidate within
// shadow.legacy_timeout, a Go candidate when its handler returns — touching
// nothing of the job, and is counted until then
// (strangler_shadow_candidates_abandoned). A Go handler that never returns
// keeps its goroutine for good: Go cannot stop one. So abandoned calls are
// bounded: while as many are still running as the pool has workers, no new
// copy is made (skipped: stuck_candidates), and at most twice the workers
// are ever abandoned at once.

// errAbandoned is what call returns when its deadline passed while it ran:
// the job is no longer the worker's to touch.
var errAbandoned = errors.New("candidate call abandoned")

// Phases of a call, in the low bits of deadline.state.
const (
	callIdle uint64 = iota
	callRunning
	callDone
	callAbandoned
	phaseMask = 3
)

// deadline is a Job's call timer. Its state survives the job's recycling:
// the generation in state's high bits grows with every call the Job ever
// makes, so a timer that fires late for one call cannot abandon the next.
type deadline struct {
	state atomic.Uint64 // generation<<2 | phase
	at    atomic.Int64  // the running call's deadline, ns since epoch

	// Set once, with the timer; the Job belongs to one engine's pool.
	timer  *time.Timer
	engine *Engine
	epoch  time.Time

	// The running call's, written before its state is published.
	side routes.Side
	twin bool    // a second call of a side (noise, determinism)
	buf  *[]byte // what the call writes its body into
}

// arm starts the deadline of a call of side (a twin call: twin) whose body
// goes to buf. It returns the call's generation, 0 when the route has no
// deadline.
func (j *Job) arm(side routes.Side, buf *[]byte, twin bool) uint64 {
	timeout := j.route.Timeout
	if timeout <= 0 {
		return 0
	}
	d := &j.dl
	if d.timer == nil {
		d.engine, d.epoch = j.engine, time.Now()
		d.timer = time.AfterFunc(time.Hour, j.expire)
		d.timer.Stop()
	}
	d.side, d.twin, d.buf = side, twin, buf
	d.at.Store(int64(time.Since(d.epoch) + timeout))
	gen := d.state.Load()>>2 + 1
	d.state.Store(gen<<2 | callRunning)
	d.timer.Reset(timeout)
	return gen
}

// disarm ends the call of generation gen; false when the deadline had
// abandoned it first.
func (j *Job) disarm(gen uint64) bool {
	if gen == 0 {
		return true
	}
	d := &j.dl
	if !d.state.CompareAndSwap(gen<<2|callRunning, gen<<2|callDone) {
		return false
	}
	d.timer.Stop() // a fire already under way finds the call done
	return true
}

// expire is the timer's: it abandons the running call if its deadline has
// passed. It reads nothing of the job but d until it owns the job.
func (j *Job) expire() {
	d := &j.dl
	s := d.state.Load()
	if s&phaseMask != callRunning || time.Since(d.epoch) < time.Duration(d.at.Load()) {
		return // done already, or a late fire meant for an earlier call
	}
	e := d.engine
	e.abandoned.Add(1) // before the worker can see it abandoned and count it out
	if !d.state.CompareAndSwap(s, s&^phaseMask|callAbandoned) {
		e.abandoned.Add(-1)
		return
	}
	e.abandonedTotal.Add(1)
	e.abandon(j)
}

// abandon records the job's running call as an error, frees its slot, and
// starts a worker in the place of the one still inside the call. Only the
// timer calls it, once it owns the job.
func (e *Engine) abandon(j *Job) {
	d := &j.dl
	e.running.Add(-1)
	*d.buf = nil // the call may still be writing into that array
	r := j.route
	if d.twin {
		r.Collector.CalledTwin(d.side, r.Timeout, true)
	} else {
		r.Collector.Called(d.side, r.Timeout, true)
	}
	r.Collector.Errored(j.request(), d.side,
		fmt.Errorf("%w: still running after %s, abandoned", ErrCandidateTimeout, r.Timeout))
	e.done(j)
	e.queue.leave()
	// The replacement inherits the abandoned worker's place in e.wg.
	go e.work()
}

// left is what the abandoned call's goroutine does once the call returns.
func (e *Engine) left() { e.abandoned.Add(-1) }

// stuck reports whether as many abandoned calls are still running as the
// pool has workers: no new call may start until one ends.
func (e *Engine) stuck() bool { return e.abandoned.Load() >= int64(e.workers) }

// Abandoned returns how many calls were abandoned past their deadline and
// are still running.
func (e *Engine) Abandoned() int64 { return e.abandoned.Load() }
