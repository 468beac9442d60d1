package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/legacy-passthrough"
	"github.com/strangler-proxy/strangler/ported/kafka"
	"github.com/strangler-proxy/strangler/proxy"
	"github.com/strangler-proxy/strangler/proxy/control"
	"github.com/strangler-proxy/strangler/proxy/shadow"
	"github.com/strangler-proxy/strangler/proxy/shadowreport"
	"github.com/strangler-proxy/strangler/routes"
)

// shadowSide is what shadow execution adds to the process: the registry
// built a second time on shadow dependencies (a sink that records instead
// of publishing), a tap on the live sink (what a Go primary really
// published), a forwarder of its own for legacy candidates (derived from
// the live one: its connections, their backends), and the diff log.
type shadowSide struct {
	registry routes.Registry
	recorder *shadow.RecordingSink
	// keyWindow is how long Idempotency-Keys are remembered
	// (spool.idempotency_window): by the shadow handlers, and by the
	// engine for comparing retries.
	keyWindow time.Duration
	tap       *shadow.TapSink
	fwd       *legacy.Forwarder
	diffLog   *shadowreport.DiffLog
	// diffTopic publishes the diff entries through a producer of its own,
	// so diff events never queue behind (or in front of) accepted events.
	diffTopic    *shadowreport.DiffTopic
	diffProducer *kafka.Producer
	// legacyTopic opens consumers of the topics the legacy side's
	// messages reach (shadow.legacy_events_topic).
	legacyTopic func(routes.LegacyTopic, string) (control.LegacySource, error)
}

// withShadow returns the live handlers' dependencies with their sink
// tapped, and the shadow side built from the same dependencies but for the
// sink. On error nothing is left open.
func withShadow(live handlerDeps, fwd *legacy.Forwarder, c fileConfig, log *zap.Logger) (_ handlerDeps, _ *shadowSide, err error) {
	s := &shadowSide{recorder: shadow.NewRecordingSink(0), keyWindow: c.Spool.IdempotencyWindow, legacyTopic: legacyTopicOpener(c.Kafka, log)}
	if live.Sink != nil {
		s.tap = shadow.NewTapSink(live.Sink, 0)
		live.Sink = s.tap
	}
	sd := live
	sd.Sink = s.recorder
	// A candidate's copy must not claim, or replay, the live request's
	// Idempotency-Key: it claims and replays keys in a memory of its own,
	// as the live intake would (proxy/shadow keys.go).
	sd.Keys = s.recorder.Keys(c.Spool.IdempotencyWindow)
	// The shadow handlers' own metrics stay private: registered next to the
	// live ones they would clash (same names, other labels), and what they
	// measure is in strangler_shadow_* already.
	sd.Registerer = nil
	sd.Logger = log.Named("shadow")
	// A candidate reads the session the primary's request carries, from
	// the same store, and never writes it.
	if sd.Sessions != nil {
		sd.Sessions = sd.Sessions.ReadOnly()
	}
	if s.registry, err = registry(sd); err != nil {
		return live, nil, fmt.Errorf("shadow handlers: %w", err)
	}
	// The same backends, health and ejections as the client traffic's,
	// on connections of its own.
	if s.fwd, err = fwd.Derive(shadowLegacyConfig(c), log.Named("shadow"), prometheus.NewRegistry()); err != nil {
		return live, nil, fmt.Errorf("shadow legacy forwarder: %w", err)
	}
	defer func() {
		if err != nil {
			_ = s.close(context.Background()) // what was opened so far
		}
	}()
	if dl := c.Proxy.Shadow.DiffLog; dl.Path != "" {
		if s.diffLog, err = shadowreport.OpenDiffLog(dl, log); err != nil {
			return live, nil, err
		}
	}
	if topic := c.Proxy.Shadow.DiffTopic; topic != "" {
		kc := c.Kafka
		kc.Topic = topic
		// Its metrics stay private like the shadow handlers' (same names as
		// the live producer's); strangler_shadow_difftopic_events_total
		// says what became of the diff events.
		if s.diffProducer, err = kafka.NewProducer(kc, log.Named("shadow"), nil); err != nil {
			return live, nil, fmt.Errorf("shadow.diff_topic: %w", err)
		}
		s.diffTopic = shadowreport.NewDiffTopic(s.diffProducer, c.Proxy.Shadow.DiffLog.Queue, log)
	}
	return live, s, nil
}

// diffTopicCloseTimeout bounds how long shutdown waits for queued diff
// events to reach Kafka.
const diffTopicCloseTimeout = 5 * time.Second

// shadowLegacyConfig is the legacy section with the shadow pool's limits:
// a candidate call is bounded by shadow.legacy_timeout, head and body, on
// at most shadow.workers connections of its own. Its requests are copies
// with no client connection behind them, so a websocket handshake is
// forwarded as an ordinary request, never tunnelled.
func shadowLegacyConfig(c fileConfig) legacy.Config {
	lc := c.Legacy
	sh := c.Proxy.Shadow
	lc.Timeout, lc.ReadTimeout, lc.WriteTimeout = sh.LegacyTimeout, sh.LegacyTimeout, sh.LegacyTimeout
	lc.DialTimeout = min(lc.DialTimeout, sh.LegacyTimeout)
	lc.MaxConns = sh.Workers
	lc.NoTunnels = true
	return lc
}

// options adds the shadow side to the front door's options: what the
// engine compares published events with.
func (s *shadowSide) options(o proxy.Options) proxy.Options {
	o.Recorded = s.recorder
	o.IdempotencyWindow = s.keyWindow
	if s.tap != nil {
		o.Tapped = s.tap
	}
	return o
}

// planeOptions adds the shadow side to the control plane's options: the
// candidates shadow routes are built with, and the diff sinks.
func (s *shadowSide) planeOptions(o control.Options) control.Options {
	o.ShadowRegistry = s.registry
	o.ShadowLegacy = s.fwd
	o.DiffLog, o.DiffTopic = s.diffLog, s.diffTopic
	o.LegacyTopic = s.legacyTopic
	return o
}

// legacyTopicOpener opens a consumer of a legacy events topic on the
// kafka section's cluster (its brokers, TLS and SASL), with the route's
// group or strangler-shadow-<host name>: each instance needs its own.
func legacyTopicOpener(kc kafka.Config, log *zap.Logger) func(routes.LegacyTopic, string) (control.LegacySource, error) {
	return func(t routes.LegacyTopic, keyPath string) (control.LegacySource, error) {
		if !kc.Enabled() {
			return nil, errors.New("kafka.brokers is empty: no cluster to read the legacy events topic from")
		}
		sc, err := kafka.ConsumerConfig(kc, log.Named("shadow"))
		if err != nil {
			return nil, err
		}
		group := t.Group
		if group == "" {
			host, _ := os.Hostname()
			group = "strangler-shadow-" + host
		}
		return shadow.NewTopic(shadow.TopicOptions{
			Brokers: kc.Brokers, Config: sc, Topic: t.Topic, Group: group, KeyPath: keyPath, Wait: t.Wait,
			Logger: log.Named("shadow"),
		})
	}
}

// close closes the diff log and the shadow forwarder. Call it after the
// front door's Shutdown, which drains the shadow pool.
func (s *shadowSide) close(ctx context.Context) error {
	if s == nil {
		return nil
	}
	var errs []error
	if s.diffLog != nil {
		errs = append(errs, s.diffLog.Close())
	}
	if s.diffTopic != nil {
		ctx, cancel := context.WithTimeout(ctx, diffTopicCloseTimeout)
		defer cancel()
		if err := s.diffTopic.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("diff topic: %w (undelivered diff events dropped)", err))
		}
		errs = append(errs, s.diffProducer.Close(ctx))
	}
	s.fwd.Close()
	return errors.Join(errs...)
}
