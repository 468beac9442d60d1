package kafka

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap"
)

// health tracks when a broker last answered: an ack, a connect, or a
// metadata probe (Producer.monitor sends one whenever nothing answered for
// a health_interval). It feeds strangler_kafka_connected, Ping, and the
// outage log: one Warn when an outage is declared, one Info when a broker
// answers again. An outage is no answer for stale (two intervals) while
// the probe asked since then failed or has hung for an interval: a busy
// producer whose acks merely lag is asked, and answers. A partition, where
// requests just hang, is seen the same way as a refused connection.
type health struct {
	log   *zap.Logger
	now   func() time.Time
	stale time.Duration
	start time.Time

	lastAnswer atomic.Int64 // unix ns; 0 before the first answer
	down       atomic.Bool  // an outage was logged and has not ended
	// probeAt is when the running or latest probe started, probeFailed
	// whether it failed; both written by the monitor and its probe.
	probeAt     atomic.Int64
	probeFailed atomic.Bool

	mu        sync.Mutex
	lastErr   error
	lastErrAt time.Time
	downSince time.Time
	warnedAt  time.Time // last "broker refused" line (rate limit)
	refused   int       // refusals not yet logged
}

func newHealth(log *zap.Logger, now func() time.Time, interval time.Duration) *health {
	return &health{log: log, now: now, stale: 2 * interval, start: now()}
}

// answered records a broker answer. The common case (no outage) is one
// atomic store.
func (h *health) answered() {
	now := h.now()
	h.lastAnswer.Store(now.UnixNano())
	if !h.down.Load() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down.CompareAndSwap(true, false) {
		h.log.Info("kafka reachable again", zap.Duration("outage", now.Sub(h.downSince)),
			zap.NamedError("last_error", h.lastErr))
	}
}

// failed records an error from the cluster. One that a broker answered
// with (a Kafka error code) while the cluster is otherwise up is not an
// outage; it is logged, at most once per stale period with a count.
func (h *health) failed(err error) {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastErr, h.lastErrAt = err, now
	var kerr sarama.KError
	if !errors.As(err, &kerr) || h.down.Load() {
		return
	}
	h.refused++
	if now.Sub(h.warnedAt) >= h.stale {
		h.log.Warn("kafka broker refused messages", zap.Int("count", h.refused), zap.Error(err))
		h.warnedAt, h.refused = now, 0
	}
}

// check declares (and logs) an outage: no broker answered for stale, and
// the cluster was asked since (a probe, or connect's attempts before the
// first answer) and failed or did not answer within probeWait.
func (h *health) check(probeWait time.Duration) {
	now := h.now()
	since := h.lastAnswerAt()
	if since.IsZero() {
		since = h.start
	}
	if h.down.Load() || now.Sub(since) < h.stale {
		return
	}
	if !h.lastAnswerAt().IsZero() {
		asked := time.Unix(0, h.probeAt.Load())
		if !asked.After(since) || (!h.probeFailed.Load() && now.Sub(asked) < probeWait) {
			return // not asked yet, or the question is still young
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down.CompareAndSwap(false, true) {
		h.downSince = since
		h.log.Warn("kafka unreachable: no broker answer", zap.Duration("for", now.Sub(since)),
			zap.Bool("ever_connected", !h.lastAnswerAt().IsZero()), zap.NamedError("last_error", h.lastErr))
	}
}

func (h *health) lastAnswerAt() time.Time {
	if ns := h.lastAnswer.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// connected reports whether a broker has answered and no outage is
// declared since.
func (h *health) connected() bool {
	return !h.lastAnswerAt().IsZero() && !h.down.Load()
}

// err is nil while connected and the latest outcome was not a failure.
func (h *health) err() error {
	last := h.lastAnswerAt()
	h.mu.Lock()
	lastErr, lastErrAt := h.lastErr, h.lastErrAt
	h.mu.Unlock()
	if last.IsZero() || h.down.Load() {
		cause := lastErr
		if cause == nil {
			cause = ErrNotConnected
		}
		if last.IsZero() {
			return fmt.Errorf("kafka: no broker answer yet: %w", cause)
		}
		return fmt.Errorf("kafka: no broker answer for %s: %w", h.now().Sub(last).Round(time.Second), cause)
	}
	if lastErr != nil && lastErrAt.After(last) {
		return fmt.Errorf("kafka: last produce failed: %w", lastErr)
	}
	return nil
}

// monitor probes the cluster with a metadata request whenever no broker
// has answered for a health interval, and runs the outage check. It stops
// with Close.
func (p *Producer) monitor() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.HealthInterval)
	defer t.Stop()
	var probing chan struct{} // non-nil while a probe runs
	for {
		select {
		case <-p.closing:
			if probing != nil {
				<-probing // Close closes the client under it
			}
			return
		case <-probing:
			probing = nil
		case <-t.C:
		}
		select {
		case <-p.closing:
			continue // a closing producer gets no acks; that is no outage
		default:
		}
		p.health.check(p.cfg.HealthInterval)
		last := p.health.lastAnswerAt()
		if probing == nil && p.now().Sub(last) >= p.cfg.HealthInterval {
			p.mu.RLock()
			client := p.client
			p.mu.RUnlock()
			if client != nil { // before that, connect's attempts are the probes
				probing = make(chan struct{})
				p.health.probeFailed.Store(false)
				p.health.probeAt.Store(p.now().UnixNano())
				go p.probe(client, probing)
			}
		}
	}
}

// probe asks for the topic's metadata: bounded by sarama's metadata
// timeout (dial plus read timeout), cut short by Close closing the client.
func (p *Producer) probe(client sarama.Client, done chan<- struct{}) {
	defer close(done)
	if err := client.RefreshMetadata(p.cfg.Topic); err != nil {
		select {
		case <-p.closing:
		default:
			p.health.probeFailed.Store(true)
			p.health.failed(fmt.Errorf("metadata probe: %w", err))
		}
		return
	}
	p.health.answered()
}
