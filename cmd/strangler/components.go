package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/ported/delivery"
	"github.com/strangler-proxy/strangler/ported/events"
	"github.com/strangler-proxy/strangler/ported/hotcache"
	"github.com/strangler-proxy/strangler/ported/kafka"
	"github.com/strangler-proxy/strangler/ported/session"
	"github.com/strangler-proxy/strangler/ported/spool"
	"github.com/strangler-proxy/strangler/proxy/control"
)

// flushTimeout bounds each step of flushing accepted events on shutdown:
// the spool's push to Kafka, then the producer's own flush. What is not
// acked by then stays in the spool for the next start, so the bound costs
// duplicates at worst, never an event.
const flushTimeout = 10 * time.Second

// backend is what the ported handlers run on: the event spool, the Kafka
// producer and the campaign hot cache. It is built before the handlers and
// stopped after the front door has drained, so every request that got in
// finds its sink open.
type backend struct {
	log      *zap.Logger
	cfg      fileConfig
	spool    *spool.Spool
	producer *kafka.Producer // nil without kafka.brokers
	cache    *hotcache.Cache
	sessions *session.Reader // the monolith's PHP sessions
}

// openBackend opens the spool, starts the producer (which connects in the
// background, so a cluster that is away does not stop the start) and the
// spool's forwarder to it, and builds the hot cache, which loads nothing
// until its Run. On error it closes what it opened.
func openBackend(c fileConfig, log *zap.Logger, reg prometheus.Registerer) (_ *backend, err error) {
	b := &backend{log: log, cfg: c}
	if c.Kafka.Enabled() {
		if b.producer, err = kafka.NewProducer(c.Kafka, log, reg); err != nil {
			return nil, fmt.Errorf("kafka producer: %w", err)
		}
		defer func() {
			if err != nil {
				_ = b.producer.Close(context.Background())
			}
		}()
	} else if _, err = kafka.RegisterDisabled(reg); err != nil {
		// strangler_kafka_connected exists, at 0, without brokers too.
		return nil, fmt.Errorf("kafka metrics: %w", err)
	}
	// The spool is opened in direct mode too: it may hold events of an
	// earlier run in spool mode, which its forwarder still delivers.
	if b.spool, err = spool.Open(c.Spool, log, reg); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	defer func() {
		if err != nil {
			_ = b.spool.Close(context.Background())
		}
	}()
	if b.producer != nil {
		// The forwarder is the spool's goroutine; Close stops it.
		if err = b.spool.Forward(context.Background(), b.producer); err != nil {
			return nil, fmt.Errorf("spool forwarder: %w", err)
		}
	}
	b.cache, err = hotcache.New(context.Background(), hotcache.Options{
		Config: c.HotCache, Logger: log, Registerer: reg,
	})
	if err != nil {
		return nil, fmt.Errorf("hot cache: %w", err)
	}
	// The session store connects on first use: a Redis that is away at
	// start makes session reads answer 503, not the process fail.
	if b.sessions, err = session.New(session.Options{Config: c.Session, Logger: log, Registerer: reg}); err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	return b, nil
}

// sink is where the events intake puts accepted events.
func (b *backend) sink() delivery.Sink {
	if b.cfg.Events.Delivery == events.DeliveryDirect {
		// Kafka's ack before the 202; keys kept in the spool. loadConfig
		// refused direct without brokers.
		return b.spool.Direct(b.producer, b.cfg.Kafka.WithDefaults().PublishTimeout)
	}
	return b.spool
}

// deps are the live handlers' dependencies.
func (b *backend) deps(log *zap.Logger, reg prometheus.Registerer) handlerDeps {
	return handlerDeps{
		Events:     b.cfg.Events,
		Sink:       b.sink(),
		Keys:       b.spool,
		Campaigns:  b.cache,
		Sessions:   b.sessions,
		Logger:     log,
		Registerer: reg,
	}
}

// checks are the backend's readiness conditions.
//
// In spool mode (the default) Kafka is not one of them: an event is
// accepted once it is durable in the spool, which drains when the brokers
// come back, so an instance that is only spooling loses nothing and taking
// it out of the load balancer would only turn 202s into errors. The spool
// check fails when it cannot accept (full or failed); how much is waiting
// shows in strangler_spool_entries and strangler_kafka_connected. With
// `delivery: direct` every 202 waits for Kafka, so Kafka is a check.
func (b *backend) checks() []control.Check {
	cs := []control.Check{{Name: "hotcache", Fn: b.cache.Ready}}
	if b.cfg.Events.Delivery == events.DeliveryDirect {
		return append(cs, control.Check{Name: "kafka", Fn: b.producer.Ping})
	}
	return append(cs, control.Check{Name: "spool", Fn: b.spoolReady})
}

// spoolReady is the spool's Ping, saying how much waits when it refuses.
func (b *backend) spoolReady(ctx context.Context) error {
	if err := b.spool.Ping(ctx); err != nil {
		st := b.spool.Stats()
		return fmt.Errorf("%w (%d events, %d bytes waiting for Kafka)", err, st.Entries, st.Bytes)
	}
	return nil
}

// adminRoutes are the backend's endpoints on the admin listener. The
// refresh pattern names no method: the handler answers other methods 405
// itself, in JSON like its other answers.
func (b *backend) adminRoutes() []control.AdminRoute {
	return []control.AdminRoute{{Pattern: "/admin/hotcache/refresh", Handler: b.cache.RefreshHandler()}}
}

// close flushes and closes, in order: the spool first (it stops taking
// events and pushes what it holds to the producer), then the producer
// (which flushes to the brokers). Call it once nothing can publish any
// more. The spool gets up to flushTimeout and the first half of what is
// left before ctx's deadline, the producer the rest. A flush cut short
// (Kafka away) is logged, not returned: the un-acked events stay in the
// spool and go at the next start.
func (b *backend) close(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, min(flushTimeout, untilHalfway(ctx)))
	defer cancel()
	steps := []error{b.spool.Close(sctx)}
	if b.producer != nil {
		pctx, cancel := context.WithTimeout(ctx, flushTimeout)
		defer cancel()
		steps = append(steps, b.producer.Close(pctx))
	}
	var errs []error
	for _, err := range steps {
		switch {
		case err == nil:
		case errors.Is(err, context.DeadlineExceeded):
			b.log.Warn("flush to Kafka cut short; un-acked events stay in the spool for the next start", zap.Error(err))
		default:
			errs = append(errs, err)
		}
	}
	st := b.spool.Stats()
	b.log.Info("event delivery closed", zap.Int64("spooled", st.Entries), zap.String("spool_dir", b.cfg.Spool.Dir),
		zap.Bool("kafka", b.producer != nil))
	if err := b.sessions.Close(); err != nil {
		errs = append(errs, fmt.Errorf("session store: %w", err))
	}
	return errors.Join(errs...)
}

// untilHalfway is half the time left before ctx's deadline, or flushTimeout
// without one.
func untilHalfway(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d) / 2
	}
	return flushTimeout
}
