package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/ported/account"
	"github.com/strangler-proxy/strangler/ported/campaign"
	"github.com/strangler-proxy/strangler/ported/campaigns"
	"github.com/strangler-proxy/strangler/ported/delivery"
	"github.com/strangler-proxy/strangler/ported/events"
	"github.com/strangler-proxy/strangler/ported/ping"
	"github.com/strangler-proxy/strangler/ported/session"
	"github.com/strangler-proxy/strangler/routes"
)

// handlerDeps is what ported handlers are built from: the event sink, the
// campaign data... serve fills it from the components it starts; check
// and routes pass the zero value, so a handler's constructor must not do
// I/O or start anything, only keep its dependencies.
type handlerDeps struct {
	// Events is the `events:` section (defaults applied by loadConfig).
	Events events.Config
	// Sink takes accepted events: the spool, or the Kafka producer with
	// `events.delivery: direct`. Nil: a sink that refuses every event.
	Sink delivery.Sink
	// Keys remembers Idempotency-Keys: the spool. Nil: the header is
	// ignored (the shadow side must not claim the live keys).
	Keys delivery.Keys
	// Campaigns is the campaign data, the hot cache. Nil: no campaigns.
	Campaigns campaignData
	// Sessions reads the monolith's PHP sessions. Nil: no session backend
	// (a handler that requires a session answers 503).
	Sessions *session.Reader
	// Now is the handlers' clock. Nil means time.Now.
	Now func() time.Time
	// Logger gets the handlers' logs. Nil means none.
	Logger *zap.Logger
	// Registerer takes the handlers' metrics. Nil: kept, not exported.
	Registerer prometheus.Registerer
}

// campaignData is what *hotcache.Cache offers the handlers: lookups by id
// for the events intake, whole sets for the campaign routes.
type campaignData interface {
	campaign.Lookup
	campaigns.Source
}

// registry names every ported handler a route may refer to with `handler:`.
// It is the one place a newly ported route is registered (explicit wiring,
// no init()). Shadow execution builds a second registry from shadow
// dependencies (a sink that records instead of publishing).
func registry(d handlerDeps) (routes.Registry, error) {
	d = d.withDefaults()
	ev, err := events.New(events.Options{
		Config:     d.Events,
		Campaigns:  d.Campaigns,
		Sink:       d.Sink,
		Keys:       d.Keys,
		Now:        d.Now,
		Logger:     d.Logger,
		Registerer: d.Registerer,
	})
	if err != nil {
		return nil, fmt.Errorf("handler %s: %w", events.Name, err)
	}
	return routes.Registry{
		ping.Name:          ping.Handler{},
		events.Name:        ev,
		campaigns.GetName:  campaigns.NewGet(d.Campaigns, d.Now),
		campaigns.ListName: campaigns.NewList(d.Campaigns, d.Now),
		account.Name:       account.New(d.Sessions),
	}, nil
}

// withDefaults fills what check and routes leave out with inert stand-ins,
// so every command sees the same handler names.
func (d handlerDeps) withDefaults() handlerDeps {
	if d.Sink == nil {
		d.Sink = noSink{}
	}
	if d.Campaigns == nil {
		d.Campaigns = noCampaigns{}
	}
	if d.Sessions == nil {
		// No backend: every read is ErrUnavailable. New cannot fail on
		// the zero config.
		d.Sessions, _ = session.New(session.Options{})
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	return d
}

// errNoSink is what the stand-in sink answers; only a command that serves
// nothing builds handlers with it.
var errNoSink = errors.New("no event sink configured")

type noSink struct{}

func (noSink) Publish(context.Context, delivery.Message) error { return errNoSink }

type noCampaigns struct{}

func (noCampaigns) Campaign(string) (*campaign.Campaign, bool) { return nil, false }
func (noCampaigns) Set() *campaign.Set                         { return nil }
