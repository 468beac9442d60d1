package spool

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strangler-proxy/strangler/internal/promreg"
)

type metrics struct {
	rejected      *prometheus.CounterVec
	batch         prometheus.Histogram
	commitTime    prometheus.Histogram
	forwarded     prometheus.Counter
	forwardErrors prometheus.Counter
	corrupt       prometheus.Counter
	resumeSkipped prometheus.Counter
	checkpoint    prometheus.Gauge
	all           []prometheus.Collector
}

func newMetrics(reg prometheus.Registerer, s *Spool) (*metrics, error) {
	m := &metrics{
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strangler_spool_rejected_total",
			Help: "Events the spool refused, by reason (full: backpressure, error: disk failure).",
		}, []string{"reason"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "strangler_spool_commit_batch_events",
			Help:    "Events covered by one group-commit fsync.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "strangler_spool_commit_seconds",
			Help: "Time to write and fsync one group commit: the disk's share of a 202's latency.",
			// 100µs … ~0.4s: a healthy disk syncs in well under a
			// millisecond; a shared one stalls for tens.
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 13),
		}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strangler_spool_forwarded_total", Help: "Spooled events acked by Kafka.",
		}),
		forwardErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strangler_spool_forward_errors_total", Help: "Failed sends to Kafka (each is retried).",
		}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strangler_spool_corrupt_records_total", Help: "Records skipped because their checksum failed.",
		}),
		resumeSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strangler_spool_resume_skipped_total",
			Help: "Un-acked entries not sent again after a restart because Kafka already held them.",
		}),
		checkpoint: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "strangler_spool_checkpoint_index", Help: "Last log index durably recorded as acked.",
		}),
	}
	m.checkpoint.Set(float64(s.acked.Load()))
	m.all = []prometheus.Collector{
		m.rejected, m.batch, m.commitTime, m.forwarded, m.forwardErrors, m.corrupt, m.resumeSkipped, m.checkpoint,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strangler_spool_entries", Help: "Events in the spool not yet acked by Kafka.",
		}, func() float64 { return float64(s.Stats().Entries) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strangler_spool_bytes", Help: "On-disk bytes of the events not yet acked by Kafka.",
		}, func() float64 { return float64(s.Stats().Bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strangler_spool_oldest_unacked_age_seconds",
			Help: "Age of the oldest event not yet acked by Kafka (forwarder lag); 0 when empty.",
		}, func() float64 {
			at := s.oldestUnacked()
			if at.IsZero() {
				return 0
			}
			return s.now().Sub(at).Seconds()
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "strangler_spool_appends_total", Help: "Events made durable.",
		}, func() float64 { return float64(s.appends.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "strangler_spool_fsyncs_total", Help: "Group commits (one fsync each).",
		}, func() float64 { return float64(s.commits.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strangler_spool_idempotency_keys", Help: "Idempotency-Keys remembered (within spool.idempotency_window).",
		}, func() float64 { n, _ := s.keys.stats(); return float64(n) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "strangler_spool_idempotency_evicted_total",
			Help: "Idempotency-Keys forgotten before their window ended, to stay under spool.idempotency_max_keys.",
		}, func() float64 { _, e := s.keys.stats(); return float64(e) }),
	}
	if err := promreg.Register(reg, "spool", m.all...); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) unregister(reg prometheus.Registerer) { promreg.Unregister(reg, m.all...) }
