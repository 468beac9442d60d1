package legacy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Active health checks (legacy.health). Each backend gets its own checker
// goroutine, started by Run and stopped with its context. A check opens a
// new connection (with the TLS handshake, for https), so it proves what a
// new request needs; with health.path set it also sends one GET and reads
// the status line. Its verdict is the backend's healthy flag: the balancer
// skips unhealthy backends while another is usable, /readyz (Ping) is ready
// while one is healthy, and a backend coming back healthy ends its
// ejection early.

// maxCheckHead bounds what a check reads of the answer: only the status
// line matters.
const maxCheckHead = 4 << 10

// errAlreadyRunning: Run was called twice on one pool.
var errAlreadyRunning = errors.New("legacy: health checks already running")

// Run checks every backend's health until ctx ends, then returns nil once
// the checkers have stopped. Call it once, on the forwarder New built (a
// derived one shares its checks); without it every backend counts as
// healthy and only passive ejection takes one out.
func (f *Forwarder) Run(ctx context.Context) error {
	p := f.pool
	if !p.running.CompareAndSwap(false, true) {
		return errAlreadyRunning
	}
	var wg sync.WaitGroup
	for _, b := range p.backends {
		wg.Go(func() { p.checkLoop(ctx, b) })
	}
	wg.Wait()
	return nil
}

// checkLoop checks b at once, then every health.interval (±10 %, so the
// checks of many backends and many proxies spread out).
func (p *pool) checkLoop(ctx context.Context, b *backend) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, p.health.Timeout)
		err := p.check(cctx, b)
		cancel()
		if ctx.Err() != nil {
			return // the check was cut by shutdown, not by the backend
		}
		p.report(b, err)
		iv := p.health.Interval
		t.Reset(iv - iv/10 + rand.N(iv/5+1))
	}
}

// check runs one health check of b.
func (p *pool) check(ctx context.Context, b *backend) error {
	c, err := p.dial(ctx, b)
	if err != nil {
		return err
	}
	defer c.Close()
	if p.health.Path == "" {
		return nil
	}
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	host := p.health.Host
	if host == "" {
		host = b.addr
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: strangler-health-check\r\nConnection: close\r\n\r\n",
		p.health.Path, host); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(io.LimitReader(c, maxCheckHead), maxCheckHead), nil)
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fmt.Errorf("GET %s: %s", p.health.Path, resp.Status)
	}
	return nil
}

// report applies one check's outcome. The first check decides at once;
// after it, healthy_after passes in a row make b healthy and
// unhealthy_after failures in a row unhealthy.
func (p *pool) report(b *backend, err error) {
	if err == nil {
		b.passes, b.failures = b.passes+1, 0
	} else {
		b.passes, b.failures = 0, b.failures+1
	}
	first := !b.checked.Swap(true)
	healthy := b.healthy.Load()
	switch {
	case !healthy && (first || b.passes >= p.health.HealthyAfter):
		b.healthy.Store(true)
		p.log.Info("backend healthy", zap.String("backend", b.addr), zap.Int("checks_passed", b.passes))
		p.readmit(b, "health checks pass")
	case healthy && err != nil && (first || b.failures >= p.health.UnhealthyAfter):
		b.healthy.Store(false)
		p.log.Warn("backend unhealthy", zap.String("backend", b.addr), zap.Int("checks_failed", b.failures), zap.Error(err))
	}
}

// Ping is the readiness check: nil while at least one backend is healthy.
// A backend the health checks have not reached yet (or without Run) counts
// as healthy if it accepts a connection within Config.DialTimeout (or ctx,
// if sooner), as /readyz always did. It does not reach PHP.
func (f *Forwarder) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.DialTimeout)
	defer cancel()
	var errs []error
	for _, b := range f.pool.backends {
		if b.checked.Load() {
			if b.healthy.Load() {
				return nil
			}
			errs = append(errs, fmt.Errorf("%s fails its health checks", b.addr))
			continue
		}
		c, err := f.pool.dial(ctx, b)
		if err == nil {
			_ = c.Close()
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", b.addr, err))
	}
	return fmt.Errorf("ping: %w: no healthy backend: %w", ErrUpstreamUnreachable, errors.Join(errs...))
}
