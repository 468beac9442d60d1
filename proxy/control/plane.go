package control

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/internal/promreg"
	"github.com/strangler-proxy/strangler/proxy/canary"
	"github.com/strangler-proxy/strangler/proxy/capture"
	"github.com/strangler-proxy/strangler/proxy/shadow"
	"github.com/strangler-proxy/strangler/proxy/shadowreport"
	"github.com/strangler-proxy/strangler/routes"
)

// DefaultBudgetInterval is how often Run judges budgets when
// Options.BudgetInterval is zero.
const DefaultBudgetInterval = 10 * time.Second

// Options are what New needs; every field is optional.
type Options struct {
	// Registerer takes strangler_route_demoted and the shadow figures
	// (shadowreport). Nil: a private registry that nothing exports.
	Registerer prometheus.Registerer
	// Logger gets demotions, re-enables and file errors. Nil: none.
	Logger *zap.Logger
	// Now is the clock of demotions and figures. Nil: time.Now.
	Now func() time.Time
	// BudgetInterval is how often Run judges route budgets. Zero:
	// DefaultBudgetInterval.
	BudgetInterval time.Duration

	// ShadowRegistry holds the Go handlers built with shadow dependencies
	// (their sink records instead of publishing), by handler name. Every Go
	// call made off the client's path — a Go candidate, the second call of a
	// Go primary for noise learning — uses these, never the live ones. Nil:
	// such calls are skipped (no_shadow_handler).
	ShadowRegistry routes.Registry
	// ShadowLegacy calls the monolith for legacy candidates and noise
	// learning, on its own connections and timeouts (a forwarder built
	// without tunnels). Nil: those calls are skipped (no_shadow_handler).
	ShadowLegacy routes.Handler
	// ClientIP is the client address canary splits and samples hash when
	// their sticky key is the IP. Nil: the connection's peer address.
	ClientIP canary.ClientIPFunc

	// DiffLog receives every comparison that did not match. Nil: none. The
	// caller closes it after the front door's Shutdown.
	DiffLog *shadowreport.DiffLog
	// DiffTopic receives the same entries for a Kafka topic. Nil: none.
	// The caller closes it after the front door's Shutdown.
	DiffTopic *shadowreport.DiffTopic
	// MismatchLog gets one line per mismatch. Give it the access log's
	// unsampled core: every mismatch must be logged. Nil: Logger.
	MismatchLog *zap.Logger
	// LegacyTopic opens a consumer of the topic the legacy side's messages
	// reach (shadow.legacy_events_topic), keyed by the value at keyPath.
	// Nil: routes naming a topic report their side effects not compared.
	LegacyTopic func(t routes.LegacyTopic, keyPath string) (LegacySource, error)
	// Noise tunes each route's noise learner.
	Noise compare.NoiseConfig
	// Store bounds each route's store of differing paths.
	Store shadowreport.StoreConfig
}

// Plane is the control plane of one front door: it builds the runtime of
// every route table before the table goes live (Publish), judges route
// budgets and demotes (Run), lifts demotions (Reenable), and is the
// migration report's source. The front door only reads Load, which is one
// atomic load: no request takes a lock to find its runtime.
type Plane struct {
	o       Options
	log     *zap.Logger
	now     func() time.Time
	stats   *shadowreport.Stats
	report  *shadowreport.Handler
	demoted *prometheus.GaugeVec // 1 while a route is demoted

	cur     atomic.Pointer[Runtime]
	running atomic.Bool

	// mu serialises Publish and Close, and guards the maps: what outlives
	// one runtime, by route name or file path.
	mu        sync.Mutex
	closed    bool
	demotions map[string]*demotion
	captures  map[string]*capture.Writer
	events    map[string]LegacySource // by kind, file or topic, key path
}

// LegacySource is a source of the legacy side's published messages that
// the Plane closes once no route reads it.
type LegacySource interface {
	shadow.LegacySource
	Close() error
}

// New builds a Plane serving an empty route table (everything legacy) and
// registers its metrics. It opens nothing and starts nothing.
func New(o Options) (*Plane, error) {
	p := &Plane{
		o: o, log: o.Logger, now: o.Now,
		demotions: map[string]*demotion{},
		captures:  map[string]*capture.Writer{},
		events:    map[string]LegacySource{},
	}
	if p.log == nil {
		p.log = zap.NewNop()
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.o.BudgetInterval <= 0 {
		p.o.BudgetInterval = DefaultBudgetInterval
	}
	reg := o.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	var err error
	p.stats, err = shadowreport.New(shadowreport.Options{
		Registerer: reg, Logger: p.log, MismatchLog: o.MismatchLog, Now: p.now, DiffLog: o.DiffLog, DiffTopic: o.DiffTopic, Noise: o.Noise, Store: o.Store,
	})
	if err != nil {
		return nil, err
	}
	p.demoted = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "strangler_route_demoted",
		Help: "1 while the route is demoted to legacy because a budget was breached, until re-enabled on the admin listener.",
	}, []string{"route"})
	if err := promreg.Register(reg, "control plane", p.demoted); err != nil {
		return nil, err
	}
	p.report = shadowreport.NewHandler(reportSource{p}, p.stats)
	p.cur.Store(&Runtime{table: &routes.Table{}, routes: map[*routes.Route]*Route{}})
	return p, nil
}

// Interface guard: the routes watcher publishes through it.
var _ routes.Publisher = (*Plane)(nil)

// Load returns the runtime in force; never nil. It is the request path's
// one read of the control plane.
func (p *Plane) Load() *Runtime { return p.cur.Load() }

// Table returns the route table in force; never nil.
func (p *Plane) Table() *routes.Table { return p.cur.Load().table }

// Stats are the per-route figures the front door and the shadow engine
// record into.
func (p *Plane) Stats() *shadowreport.Stats { return p.stats }

// Report is the migration report handler (HTML and JSON).
func (p *Plane) Report() *shadowreport.Handler { return p.report }

// ErrClosed: Publish after Close.
var ErrClosed = errors.New("control plane closed")

// Publish builds t's runtime — splitters, shadow routes, capture writers,
// legacy-event followers — and only then makes it the one requests see.
// A resource that will not open (a capture file) refuses t with a
// *ResourceError: nothing of t is published and the runtime in force
// stays as it was.
func (p *Plane) Publish(t *routes.Table) error {
	if t == nil {
		t = &routes.Table{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("publish route table: %w", ErrClosed)
	}
	b, err := p.build(t)
	if err != nil {
		return err
	}
	p.commit(b)
	return nil
}

// Close closes the capture files and legacy-event followers. Call it after
// the front door's Shutdown, when no request or shadow job can write to
// them; Publish fails from then on.
func (p *Plane) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	return p.closeFiles()
}
