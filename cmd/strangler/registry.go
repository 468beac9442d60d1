package main

import (
	"github.com/strangler-proxy/strangler/ported/ping"
	"github.com/strangler-proxy/strangler/routes"
)

// handlerDeps is what ported handlers are built from: the event sink, the
// campaign lookup... serve fills it from the components it starts; check
// and routes pass the zero value, so a handler's constructor must not do
// I/O or start anything, only keep its dependencies.
type handlerDeps struct{}

// registry names every ported handler a route may refer to with `handler:`.
// It is the one place a newly ported route is registered (explicit wiring,
// no init()). Shadow execution will build a second registry from shadow
// dependencies (a sink that records instead of publishing).
func registry(handlerDeps) routes.Registry {
	return routes.Registry{
		ping.Name: ping.Handler{},
	}
}
