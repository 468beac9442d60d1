// Package promreg registers a component's Prometheus collectors as one
// group: all of them or none, so a component that fails to start leaves no
// half-registered series behind to clash with its replacement.
package promreg

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers cs with reg, in order. On the first error it
// unregisters the ones it registered and returns the error, naming what
// (e.g. "spool"). A nil reg registers nothing: the component keeps its
// metrics private.
func Register(reg prometheus.Registerer, what string, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			Unregister(reg, cs[:i]...)
			return fmt.Errorf("register %s metrics: %w", what, err)
		}
	}
	return nil
}

// Unregister removes cs from reg (nil: nothing), so a later component can
// register under the same names.
func Unregister(reg prometheus.Registerer, cs ...prometheus.Collector) {
	if reg == nil {
		return
	}
	for _, c := range cs {
		reg.Unregister(c)
	}
}
