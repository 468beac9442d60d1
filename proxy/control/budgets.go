package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/routes"
)

// Run judges every route's budgets each budget interval until ctx ends,
// then returns nil. Only one Run may be active at a time.
func (p *Plane) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("control plane: already running")
	}
	defer p.running.Store(false)
	t := time.NewTicker(p.o.BudgetInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			p.checkBudgets()
		}
	}
}

// checkBudgets demotes every route in a Go-serving mode whose budgets are
// breached.
func (p *Plane) checkBudgets() {
	for _, rr := range p.Load().routes {
		if rr.budgets == nil || rr.Config.Mode == routes.ModeLegacy || rr.Demoted() {
			continue
		}
		var since time.Time
		if t := rr.demotion.reenabled.Load(); t != nil {
			since = *t
		}
		if breached, reason := rr.Collector.BreachedSince(*rr.budgets, since); breached {
			p.demote(rr, reason)
		}
	}
}

func (p *Plane) demote(rr *Route, reason string) {
	if !rr.demotion.state.CompareAndSwap(nil, &demotedState{at: p.now(), reason: reason}) {
		return
	}
	rr.demotion.gauge.Set(1)
	p.log.Warn("route demoted to legacy: budget breached; re-enable it with POST /admin/routes/{name}/reenable",
		zap.String("route", rr.Config.Name), zap.String("mode", string(rr.Config.Mode)), zap.String("reason", reason))
}

// ErrUnknownRoute: no route of the table in force has that name.
var ErrUnknownRoute = errors.New("no such route")

// Reenable lifts a route's demotion: its mode applies again, and its
// budgets judge only what happens from the next minute on. It reports
// whether the route was demoted.
func (p *Plane) Reenable(name string) (bool, error) {
	for r, rr := range p.Load().routes {
		if r.Name != name {
			continue
		}
		now := p.now()
		rr.demotion.reenabled.Store(&now)
		was := rr.demotion.state.Swap(nil)
		rr.demotion.gauge.Set(0)
		if was != nil {
			p.log.Warn("route re-enabled by an operator", zap.String("route", name),
				zap.String("mode", string(r.Mode)), zap.String("demoted_reason", was.reason))
		}
		return was != nil, nil
	}
	return false, fmt.Errorf("re-enable %q: %w", name, ErrUnknownRoute)
}
