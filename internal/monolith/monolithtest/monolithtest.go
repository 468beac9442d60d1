// Package monolithtest starts the sample monolith for one test.
package monolithtest

import (
	"context"
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
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("monolith %s logs:\n%s", m.URL, m.LogTail())
		}
		if err := m.Stop(); err != nil {
			t.Errorf("stop monolith: %v", err)
		}
	})
	return m
}
