package control

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/proxy/canary"
	"github.com/strangler-proxy/strangler/proxy/capture"
	"github.com/strangler-proxy/strangler/proxy/shadow"
	"github.com/strangler-proxy/strangler/proxy/shadowreport"
	"github.com/strangler-proxy/strangler/routes"
)

// Runtime is what the front door serves one route table with: the table
// and, per route, everything derived from it — splitters, the shadow
// engine's view, the capture writer, the collector. Publish builds it
// whole before the table goes live, and it is as immutable as the table.
// What must outlive a table (demotions, collectors, open capture files,
// legacy-event followers) is kept by route name or file in the Plane and
// shared between runtimes.
type Runtime struct {
	table  *routes.Table
	routes map[*routes.Route]*Route
	names  []string // the routes' names, in table order
}

// Table is the route table requests are matched against; never nil.
func (rt *Runtime) Table() *routes.Table { return rt.table }

// Route returns the runtime of r, a route of rt.Table(); nil for any other.
func (rt *Runtime) Route(r *routes.Route) *Route { return rt.routes[r] }

// Route is one route's part of a Runtime. Its fields are read on the
// request path: never modify them.
type Route struct {
	// Config is the compiled route.
	Config *routes.Route
	// Collector takes the route's figures; shared by every runtime that
	// has a route of this name.
	Collector *shadowreport.Collector
	// Canary splits mode canary; nil without a canary block.
	Canary *canary.Splitter
	// Override is the canary's QA override header, stripped from every
	// request of the route so its token reaches no upstream; "" if none.
	Override string
	// Sampler and Shadow serve mode shadow; nil without a shadow block.
	Sampler *canary.Splitter
	Shadow  *shadow.Route
	// Capture, with its sampler and body cap; nil without a capture block.
	Capture        *capture.Writer
	CaptureSampler *canary.Splitter
	CaptureMax     int

	demotion   *demotion
	budgets    *shadowreport.Budgets
	thresholds shadowreport.Thresholds
}

// Demoted reports whether a breached budget sends the route to legacy
// until a person re-enables it.
func (r *Route) Demoted() bool { return r.demotion.demoted() }

// demotion is a route's demotion state, kept by route name across route
// tables: set by the budget watcher, cleared by a person.
type demotion struct {
	state     atomic.Pointer[demotedState]
	reenabled atomic.Pointer[time.Time] // budgets judge only what came after
	gauge     prometheus.Gauge
}

type demotedState struct {
	at     time.Time
	reason string
}

func (d *demotion) demoted() bool { return d.state.Load() != nil }

// ResourceError is why a route table's runtime could not be built: a file
// it needs would not open (a capture file), or could never be read (the
// monolith's events file, or the directory it will be created in). The
// table is refused and the one in force stays.
type ResourceError struct {
	Route string // the route that needs the resource
	What  string // the route's key naming it, e.g. capture.file
	Path  string
	Err   error
}

func (e *ResourceError) Error() string {
	return fmt.Sprintf("route %q: %s %q: %v; the route table in force stays", e.Route, e.What, e.Path, e.Err)
}

func (e *ResourceError) Unwrap() error { return e.Err }

// build is the staging area of one Publish: the runtime, and what it
// opened or created that the Plane does not hold yet. Nothing here is
// visible to a request until commit.
type build struct {
	rt        *Runtime
	names     []string
	captures  map[string]*capture.Writer // opened by this build
	used      map[string]bool            // capture files the runtime writes to
	demotions map[string]*demotion       // created by this build
	events    map[string]LegacySource    // created by this build
	usedEv    map[string]bool            // sources the runtime reads
	epochs    []epochOf
}

// epochOf is a route's comparison rules, set on its collector at commit.
type epochOf struct {
	c *shadowreport.Collector
	r shadowreport.EpochRules
}

// build makes the runtime of t without publishing it. Caller holds mu.
func (p *Plane) build(t *routes.Table) (*build, error) {
	b := &build{
		rt:        &Runtime{table: t, routes: map[*routes.Route]*Route{}},
		captures:  map[string]*capture.Writer{},
		used:      map[string]bool{},
		demotions: map[string]*demotion{},
		events:    map[string]LegacySource{},
		usedEv:    map[string]bool{},
	}
	for _, r := range t.Routes() {
		b.names = append(b.names, r.Name)
		rr := &Route{Config: r, Collector: p.stats.Route(r.Name)}
		rr.demotion = p.demotionOf(b, r.Name)
		if r.Canary != nil {
			rr.Canary = canary.ForCanary(r, p.o.ClientIP)
			rr.Override = rr.Canary.OverrideHeader()
		}
		if r.Shadow != nil {
			rr.Sampler = canary.ForShadow(r, p.o.ClientIP)
			sr, err := p.shadowRoute(b, r, rr.Collector)
			if err != nil {
				b.abort(p)
				return nil, err
			}
			rr.Shadow = sr
			// New comparison rules start a new epoch on the report, once
			// the table is published (commit).
			b.epochs = append(b.epochs, epochOf{rr.Collector, shadowreport.RulesOf(r.Shadow.Comparator(), r.Shadow.Rules())})
		}
		if c := r.Capture; c != nil {
			w, err := p.captureWriter(b, c)
			if err != nil {
				b.abort(p)
				return nil, &ResourceError{Route: r.Name, What: "capture.file", Path: c.File, Err: err}
			}
			rr.Capture = w
			rr.CaptureSampler = canary.New(canary.Config{Route: r.Name, Sticky: r.Canary.StickyKey(), Permille: canary.Permille(c.Percent), ClientIP: p.o.ClientIP})
			rr.CaptureMax = routes.DefaultShadowMaxBodyBytes
			if r.Shadow != nil {
				rr.CaptureMax = r.Shadow.MaxBodyBytes
			}
		}
		if bg := r.Budgets; bg != nil {
			rr.budgets = &shadowreport.Budgets{
				MaxMismatchRate: bg.MaxMismatchRate, MaxErrorRate: bg.MaxErrorRate, MaxP99Ratio: bg.MaxP99Ratio,
				Window: bg.Window, MinSamples: bg.MinSamples,
			}
		}
		if v := r.Verdict; v != nil {
			rr.thresholds = ThresholdsOf(v)
		}
		b.rt.routes[r] = rr
	}
	return b, nil
}

// abort undoes a build that will not be published: it closes the files
// it opened and forgets the collectors it created.
func (b *build) abort(p *Plane) {
	for path, w := range b.captures {
		if err := w.Close(); err != nil {
			p.log.Warn("close capture file", zap.String("file", path), zap.Error(err))
		}
	}
	for key, src := range b.events {
		if err := src.Close(); err != nil {
			p.log.Warn("close legacy events source", zap.String("source", key), zap.Error(err))
		}
	}
	p.stats.Retain(p.cur.Load().names)
}

// commit makes what the build created the Plane's, publishes the runtime,
// then lets go of what no route uses any more: figures and demotions of
// removed routes, capture files no route writes to. A request of the old
// table still holding a closed capture file drops its record. Caller
// holds mu.
func (p *Plane) commit(b *build) {
	for name, d := range b.demotions {
		d.gauge = p.demoted.WithLabelValues(name)
		p.demotions[name] = d
	}
	for path, w := range b.captures {
		p.captures[path] = w
	}
	for key, f := range b.events {
		p.events[key] = f
	}
	b.rt.names = b.names
	p.cur.Store(b.rt)
	for _, e := range b.epochs {
		e.c.SetRules(e.r)
	}

	p.stats.Retain(b.names)
	keep := make(map[string]bool, len(b.names))
	for _, n := range b.names {
		keep[n] = true
	}
	for name := range p.demotions {
		if !keep[name] {
			delete(p.demotions, name)
			p.demoted.DeleteLabelValues(name)
		}
	}
	for path, w := range p.captures {
		if b.used[path] {
			continue
		}
		delete(p.captures, path)
		if err := w.Close(); err != nil {
			p.log.Warn("close capture file", zap.String("file", path), zap.Error(err))
		}
	}
	for key, src := range p.events {
		if b.usedEv[key] {
			continue
		}
		delete(p.events, key)
		if err := src.Close(); err != nil {
			p.log.Warn("close legacy events source", zap.String("source", key), zap.Error(err))
		}
	}
}

// shadowRoute is the engine's view of a route with a shadow block.
func (p *Plane) shadowRoute(b *build, r *routes.Route, c *shadowreport.Collector) (*shadow.Route, error) {
	sh := r.Shadow
	sr := &shadow.Route{
		Name:        r.Name,
		Primary:     sh.Primary,
		AllowUnsafe: sh.AllowUnsafe,
		Timeout:     sh.Timeout,
		MaxBody:     sh.MaxBodyBytes,
		Comparator:  sh.Comparator(),
		Collector:   c,
	}
	// Never the live Go handler off the client's path: a Go call there runs
	// with shadow dependencies, or not at all.
	goShadow := p.o.ShadowRegistry[r.HandlerName]
	if sh.Primary == routes.SidePorted {
		sr.Candidate = p.o.ShadowLegacy
	} else {
		sr.Candidate = goShadow
	}
	// Noise from the legacy side only (asked twice for safe methods); the
	// Go side asked twice is the determinism check.
	sr.LegacyTwin, sr.KeyPath = p.o.ShadowLegacy, sh.KeyPath
	if goShadow != nil {
		sr.GoTwin = goShadow
	}
	src, err := p.legacySource(b, sh)
	if err != nil {
		return nil, &ResourceError{Route: r.Name, What: "shadow.legacy_events_file", Path: sh.LegacyEventsFile, Err: err}
	}
	if src != nil {
		sr.LegacyEvents = src
	}
	return sr, nil
}

// ThresholdsOf is the report's view of a route's verdict block.
func ThresholdsOf(v *routes.Verdict) shadowreport.Thresholds {
	return shadowreport.Thresholds{
		TargetMismatchRate: v.TargetMismatchRate, MaxErrorRateGap: v.MaxErrorRateGap, MaxP99Ratio: v.MaxP99Ratio,
		AllowUncomparedSideEffects: v.AllowUncomparedSideEffects,
	}
}

// demotionOf returns the demotion state of a route name, new to the build
// if the Plane has none. Caller holds mu.
func (p *Plane) demotionOf(b *build, name string) *demotion {
	if d := p.demotions[name]; d != nil {
		return d
	}
	d := &demotion{}
	b.demotions[name] = d
	return d
}

// legacySource returns the source of the legacy side's messages a shadow
// block names — its events file (opened on first use: the monolith creates
// it with its first event) or the topic they reach — shared by the routes
// naming the same one; nil when it names none. A topic that cannot be
// consumed is a source whose Health says why (the brokers may be back
// soon); an events file that could never be read is an error, which
// refuses the table. Caller holds mu.
func (p *Plane) legacySource(b *build, sh *routes.ShadowConfig) (LegacySource, error) {
	var key string
	switch {
	case sh.LegacyEventsFile != "":
		key = "file\x00" + sh.LegacyEventsFile + "\x00" + sh.KeyPath
	case sh.LegacyEventsTopic != nil:
		t := sh.LegacyEventsTopic
		key = "topic\x00" + t.Topic + "\x00" + t.Group + "\x00" + t.Wait.String() + "\x00" + sh.KeyPath
	default:
		return nil, nil
	}
	b.usedEv[key] = true
	if src := p.events[key]; src != nil {
		return src, nil
	}
	if src := b.events[key]; src != nil {
		return src, nil
	}
	var src LegacySource
	switch {
	case sh.LegacyEventsFile != "":
		if err := followable(sh.LegacyEventsFile); err != nil {
			return nil, err
		}
		src = shadow.NewEventsFile(sh.LegacyEventsFile, sh.KeyPath, 0)
	case p.o.LegacyTopic == nil:
		src = shadow.Unavailable("the Kafka topic "+sh.LegacyEventsTopic.Topic, "this process has no Kafka consumer (kafka.brokers is empty)")
	default:
		var err error
		if src, err = p.o.LegacyTopic(*sh.LegacyEventsTopic, sh.KeyPath); err != nil {
			p.log.Error("legacy events topic", zap.String("topic", sh.LegacyEventsTopic.Topic), zap.Error(err))
			src = shadow.Unavailable("the Kafka topic "+sh.LegacyEventsTopic.Topic, err.Error())
		}
	}
	b.events[key] = src
	return src, nil
}

// followable reports why the events file at path could never be read, or
// nil: it must be readable, or, until the monolith's first event creates
// it, its directory must exist.
func followable(path string) error {
	f, err := os.Open(path)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case err != nil:
		return fmt.Errorf("the file does not exist yet, and its directory: %w", err)
	case !st.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// captureWriter returns the writer of a capture file, opening it if no
// route writes to it yet. Caller holds mu.
func (p *Plane) captureWriter(b *build, c *routes.CaptureConfig) (*capture.Writer, error) {
	b.used[c.File] = true
	if w := p.captures[c.File]; w != nil {
		return w, nil
	}
	if w := b.captures[c.File]; w != nil {
		return w, nil
	}
	w, err := capture.Open(c.File, c.MaxBytes, p.log)
	if err != nil {
		return nil, err
	}
	b.captures[c.File] = w
	return w, nil
}

// closeFiles closes every capture file and legacy-event follower. Caller
// holds mu.
func (p *Plane) closeFiles() error {
	var errs []error
	for path, w := range p.captures {
		errs = append(errs, w.Close())
		delete(p.captures, path)
	}
	for path, f := range p.events {
		errs = append(errs, f.Close())
		delete(p.events, path)
	}
	return errors.Join(errs...)
}
