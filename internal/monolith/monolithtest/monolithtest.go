// Package monolithtest starts the sample monolith for one test.
package monolithtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/internal/monolith"
)

// startTimeout is generous: the machine running the tests is shared.
const startTimeout = 60 * time.Second

// Start starts a monolith and stops it when the test ends. It fails the test
// (never skips) when Nginx or PHP-FPM is missing; the message says how to
// install them. On a failed test the tails of the Nginx and PHP logs are
// logged before the runtime dir is removed.
func Start(t testing.TB, o monolith.Options) *monolith.Monolith {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	m, err := monolith.Start(ctx, o)
	if err != nil {
		t.Fatalf("start monolith: %v", err)
	}
	stopAtEnd(t, "monolith", m)
	return m
}

// StartN starts n monoliths at once, each as Start does, for tests of
// several backends.
func StartN(t testing.TB, n int, o monolith.Options) []*monolith.Monolith {
	t.Helper()
	ms := make([]*monolith.Monolith, n)
	errs := make([]error, n)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { ms[i], errs[i] = monolith.Start(ctx, o) })
	}
	wg.Wait()
	for i, m := range ms {
		if m != nil {
			stopAtEnd(t, fmt.Sprintf("monolith %d", i), m)
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("start monoliths: %v", err)
	}
	return ms
}

// stopAtEnd stops m when the test ends, logging its logs' tails first if
// the test failed. Stopping it earlier is fine: Stop is idempotent.
func stopAtEnd(t testing.TB, name string, m *monolith.Monolith) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s %s logs:\n%s", name, m.URL, m.LogTail())
		}
		if err := m.Stop(); err != nil {
			t.Errorf("stop %s: %v", name, err)
		}
	})
}
