package shadow

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/internal/promreg"
	"github.com/strangler-proxy/strangler/proxy/shadowreport"
	"github.com/strangler-proxy/strangler/routes"
)

// Pool defaults.
const (
	DefaultWorkers = 8
	DefaultQueue   = 256
)

// Skip reasons, as counted by shadowreport.Collector.Skipped.
const (
	SkipPoolFull        = "pool_full"
	SkipUnsafeMethod    = "unsafe_method"
	SkipBodyTooLarge    = "body_too_large"
	SkipBodyUnread      = "body_unread"
	SkipResponseTooBig  = "response_too_large"
	SkipPrimaryStreamed = "primary_streamed"
	SkipPrimaryBody     = "primary_body_incomplete"
	SkipShutdown        = "shutdown"
	SkipNoCandidate     = "no_shadow_handler"
	SkipUpgrade         = "upgrade" // a WebSocket tunnel: nothing to compare
	// SkipStuck: as many calls abandoned past their deadline are still
	// running as the pool has workers (deadline.go).
	SkipStuck = "stuck_candidates"
)

// ErrCandidateTimeout marks a candidate call still running at the route's
// shadow.timeout: it is abandoned, its answer never compared.
var ErrCandidateTimeout = errors.New("candidate call past shadow.timeout")

// Options configure an Engine.
type Options struct {
	// Workers run candidate calls, one each at a time. Zero: DefaultWorkers.
	Workers int
	// Queue is how many begun jobs may wait for a worker. A request finding
	// Workers+Queue jobs begun and not finished is not shadowed (skipped:
	// pool_full). Zero: DefaultQueue.
	Queue int
	// WakeInterval is how long an awake worker waits for more jobs before
	// it parks; jobs queued meanwhile wake no one (see dispatcher). Zero:
	// DefaultWakeInterval; negative: none, every job wakes a worker.
	WakeInterval time.Duration
	// Logger gets the engine's own warnings. Nil: none.
	Logger *zap.Logger
	// Registerer gets the pool gauges. Nil: a private registry.
	Registerer prometheus.Registerer
	// Now is the clock of call durations. Nil: time.Now.
	Now func() time.Time
	// Recorded is what Go handlers built with shadow dependencies published
	// (their RecordingSink). Nil: a Go candidate's side effects are not
	// compared.
	Recorded Published
	// Tapped is what live Go handlers published (a TapSink around the live
	// sink). Nil: a Go primary's side effects are not compared.
	Tapped Published
	// IdempotencyWindow is how long the first answer to an Idempotency-Key
	// is remembered for comparing its retries (keys.go): the live spool's
	// spool.idempotency_window. Zero: DefaultIdempotencyWindow.
	IdempotencyWindow time.Duration
}

// Route is what the engine needs to shadow one route. The front door
// builds it once per route table; it is immutable.
type Route struct {
	Name    string
	Primary routes.Side
	// Candidate serves the other side: the Go handler built with shadow
	// dependencies, or the shadow legacy forwarder. Required.
	Candidate routes.Handler
	// LegacyTwin asks the legacy side a second time on the noise sample,
	// for safe methods only (Diffy's noise): the shadow forwarder. Nil:
	// noise is learned from the legacy answers across requests only.
	LegacyTwin routes.Handler
	// GoTwin asks the Go side a second time on the noise sample, any
	// method (its shadow dependencies publish nothing): where its two
	// answers differ and the legacy side's values are not generated, the
	// Go side is not deterministic, a finding. Nil: not checked.
	GoTwin routes.Handler
	// AllowUnsafe lets a legacy candidate see unsafe methods.
	AllowUnsafe bool
	// Timeout bounds each call of a job (the candidate, the noise twin):
	// past it the call is abandoned and the comparison is an error
	// (deadline.go). Zero: no deadline.
	Timeout time.Duration
	// MaxBody caps the request body copied and each response captured.
	MaxBody int
	// Comparator compares the two answers. Required.
	Comparator *compare.Comparator
	// Collector records the outcome. Required.
	Collector *shadowreport.Collector
	// LegacyEvents is what the legacy side published (its events file, or
	// the topic its messages reach). Nil: when the Go side publishes, the
	// comparison says its side effects were not compared.
	LegacyEvents LegacySource
	// KeyPath is where an answer and a message hold the key that ties a
	// message to its request. Empty: DefaultKeyPath.
	KeyPath string
	// Redact applies compare.RedactAnswer to the Go side's answers and
	// messages before comparing: an offline run's primary is a captured
	// answer, redacted when it was captured.
	Redact bool
}

func (r *Route) candidateSide() routes.Side {
	if r.Primary == routes.SidePorted {
		return routes.SideLegacy
	}
	return routes.SidePorted
}

// Engine runs shadow jobs on a bounded pool of workers. Create it with
// New, start the workers with Start, stop them with Close.
type Engine struct {
	workers, capacity int
	log               *zap.Logger
	now               func() time.Time
	recorded, tapped  Published
	retries           *retryWindows // keyed requests' first answers (keys.go)

	slots chan struct{} // a token per begun job: bounds jobs in flight
	queue *dispatcher

	mu      sync.Mutex // guards started against Close
	closed  bool
	started bool
	wg      sync.WaitGroup

	ctxs     sync.Pool // *fasthttp.RequestCtx
	jobPool  sync.Pool // *Job
	running  atomic.Int64
	finished atomic.Uint64

	// Calls abandoned past their deadline: still running, and ever.
	abandoned      atomic.Int64
	abandonedTotal atomic.Uint64
}

// New builds an Engine and registers its gauges; it starts nothing.
func New(o Options) (*Engine, error) {
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	switch {
	case o.WakeInterval == 0:
		o.WakeInterval = DefaultWakeInterval
	case o.WakeInterval < 0:
		o.WakeInterval = 0
	}
	e := &Engine{
		workers:  o.Workers,
		capacity: o.Workers + o.Queue,
		log:      o.Logger,
		now:      o.Now,
		recorded: o.Recorded,
		tapped:   o.Tapped,
	}
	if e.log == nil {
		e.log = zap.NewNop()
	}
	e.log = e.log.Named("shadow")
	if e.now == nil {
		e.now = time.Now
	}
	e.retries = newRetryWindows(o.IdempotencyWindow, maxRetryWindows, e.now)
	e.slots = make(chan struct{}, e.capacity)
	e.queue = newDispatcher(e.workers, e.capacity, o.WakeInterval)
	e.ctxs.New = func() any { return new(fasthttp.RequestCtx) }
	e.jobPool.New = func() any { return new(Job) }

	if err := promreg.Register(o.Registerer, "shadow pool",
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strangler_shadow_jobs_in_flight",
			Help: "Shadow jobs begun and not finished: waiting for the primary's body, queued, or running.",
		}, func() float64 { return float64(len(e.slots)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strangler_shadow_jobs_capacity",
			Help: "Shadow jobs that may be in flight at once (shadow.workers + shadow.queue); past it copies are skipped.",
		}, func() float64 { return float64(e.capacity) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "strangler_shadow_worker_wakeups_total",
			Help: "Times a shadow job woke a parked worker; under steady load about one per shadow.wake_interval, not one per job.",
		}, func() float64 { return float64(e.queue.wakes()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strangler_shadow_workers_busy",
			Help: "Shadow workers running a candidate now.",
		}, func() float64 { return float64(e.running.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strangler_shadow_candidates_abandoned",
			Help: "Candidate calls abandoned past the route's shadow.timeout and still running; at shadow.workers, copies are skipped (stuck_candidates).",
		}, func() float64 { return float64(e.abandoned.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "strangler_shadow_candidates_abandoned_total",
			Help: "Candidate calls abandoned past the route's shadow.timeout (each compared as an error, its worker replaced).",
		}, func() float64 { return float64(e.abandonedTotal.Load()) }),
	); err != nil {
		return nil, err
	}
	return e, nil
}

// Start starts the workers. Calling it again does nothing; after Close it
// does nothing.
func (e *Engine) Start() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started || e.closed {
		return
	}
	e.started = true
	e.wg.Add(e.workers)
	for range e.workers {
		go e.work()
	}
}

// work is one of the pool's workers. Each holds a place in e.wg; one whose
// call was abandoned hands its place to the replacement abandon starts.
func (e *Engine) work() {
	if e.queue.work(e.runJob) {
		e.wg.Done()
	}
}

// runJob runs j; false when its call was abandoned (abandon counted the
// worker out of running).
func (e *Engine) runJob(j *Job) bool {
	e.running.Add(1)
	if !e.run(j) {
		return false
	}
	e.running.Add(-1)
	return true
}

// Close stops taking jobs and waits, until ctx ends, for the workers to
// finish what is queued and running. A job whose primary body is still
// streaming when Close is called is dropped (skipped: shutdown) when it
// ends. It returns an error if jobs were still running when ctx ended.
// Calls abandoned past their deadline are not waited for.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	e.closed = true
	started := e.started
	e.mu.Unlock()
	if !started {
		for _, j := range e.queue.close(false) {
			j.skip(SkipShutdown)
		}
		return nil
	}
	e.queue.close(true)
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("drain shadow pool: %d jobs still running: %w", e.running.Load(), ctx.Err())
	}
}

// InFlight returns how many jobs are begun and not finished.
func (e *Engine) InFlight() int { return len(e.slots) }

// Finished returns how many jobs have ended, compared or not.
func (e *Engine) Finished() uint64 { return e.finished.Load() }

// reserve takes a slot without waiting.
func (e *Engine) reserve() bool {
	select {
	case e.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// submit hands a begun job to the workers; its slot guarantees room.
func (e *Engine) submit(j *Job) {
	if reason := e.queue.push(j); reason != "" {
		j.skip(reason)
	}
}

// done recycles j and frees its slot.
func (e *Engine) done(j *Job) {
	if j.idem != "" {
		e.retries.end(j.route.Name, j.idem, j.first)
	}
	j.reset()
	e.jobPool.Put(j)
	e.finished.Add(1)
	<-e.slots
}

func (e *Engine) acquireCtx(req *fasthttp.Request, remote net.Addr) *fasthttp.RequestCtx {
	c := e.ctxs.Get().(*fasthttp.RequestCtx)
	c.Init(req, remote, nopLogger{})
	// As the front door's server: header names as sent, nothing added.
	c.Response.Header.DisableNormalizing()
	c.Response.Header.SetNoDefaultContentType(true)
	return c
}

func (e *Engine) releaseCtx(c *fasthttp.RequestCtx) {
	c.ResetUserValues()
	c.Request.Reset()
	c.Response.Reset()
	e.ctxs.Put(c)
}

// nopLogger keeps fasthttp's default logger (stderr) out of shadow calls.
type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
