package main

import (
	"fmt"

	"github.com/strangler-proxy/strangler/ported/kafka"
	"github.com/strangler-proxy/strangler/proxy/shadow"
	"github.com/strangler-proxy/strangler/routes"
)

// sideEffectProblems checks that every route in mode shadow can read the
// source of the legacy side's published messages it names: a mistyped or
// unreadable events file would otherwise leave its side effects
// uncompared until someone reads the report.
func sideEffectProblems(t *routes.Table, kc kafka.Config) []string {
	if t == nil {
		return nil
	}
	var out []string
	for i, r := range t.Routes() {
		sh := r.Shadow
		if r.Mode != routes.ModeShadow || sh == nil {
			continue
		}
		if f := sh.LegacyEventsFile; f != "" {
			if err := shadow.CheckReadable(f); err != nil {
				out = append(out, fmt.Sprintf("routes[%d] %q: shadow.legacy_events_file %q cannot be read (%v): the legacy side's published events would not be compared; name the monolith's STRANGLER_EVENTS_FILE",
					i, r.Name, f, err))
			}
		}
		if sh.LegacyEventsTopic != nil && !kc.Enabled() {
			out = append(out, fmt.Sprintf("routes[%d] %q: shadow.legacy_events_topic needs kafka.brokers", i, r.Name))
		}
	}
	return out
}
