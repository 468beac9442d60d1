package session

import "github.com/prometheus/client_golang/prometheus"

// Outcomes of a session read (strangler_session_reads_total's result).
const (
	resultFound       = "found"
	resultNoCookie    = "no_cookie"
	resultInvalidID   = "invalid_id"
	resultNotFound    = "not_found"
	resultEmpty       = "empty"
	resultRefused     = "refused"
	resultUnavailable = "unavailable"
)

type metrics struct {
	reads   *prometheus.CounterVec
	seconds *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strangler_session_reads_total",
			Help: "PHP session reads by Go handlers, by backend and result (found, no_cookie, invalid_id, not_found, empty, refused, unavailable).",
		}, []string{"backend", "result"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "strangler_session_read_seconds",
			Help:    "Time to read one PHP session from its store.",
			Buckets: []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 25e-3, 100e-3, 1},
		}, []string{"backend"}),
	}
	if reg != nil {
		reg.MustRegister(m.reads, m.seconds)
	}
	return m
}

func (m *metrics) result(backend, result string) { m.reads.WithLabelValues(backend, result).Inc() }
