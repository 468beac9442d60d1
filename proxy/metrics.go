package proxy

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strangler-proxy/strangler/internal/promreg"
)

// Label values used by the front door itself.
const (
	routeUnmatched = "_unmatched" // the request matched no route (it went to legacy)
	backendLegacy  = "legacy"
	backendPorted  = "ported"
	// backendProxy marks answers the front door gave without calling a
	// backend: limits, unparsable requests.
	backendProxy = "proxy"
	modeNone     = "none" // no route was looked up
)

// metrics are the front door's Prometheus series. Children are cached in
// sync.Maps so that, once warm, a request costs no label hashing and no
// lock (a *Vec's WithLabelValues takes a read lock on every call).
type metrics struct {
	requests         *prometheus.CounterVec
	duration         *prometheus.HistogramVec
	inFlight         prometheus.Gauge
	overrideRejected *prometheus.CounterVec

	counters   sync.Map // counterKey → prometheus.Counter
	histograms sync.Map // histogramKey → prometheus.Observer
	statuses   [600]string
}

type counterKey struct {
	route, mode, backend string
	status               int
}

type histogramKey struct{ route, backend string }

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strangler_requests_total",
			Help: "Requests answered by the front door, by route, mode, backend (legacy|ported|proxy) and status.",
		}, []string{"route", "mode", "backend", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "strangler_request_duration_seconds",
			Help: "Time from the request head to the handler's return (a streamed body is written after it).",
			// Past DefBuckets: slow PHP pages and uploads take seconds to a minute.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route", "backend"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "strangler_requests_in_flight",
			Help: "Requests being handled now.",
		}),
		overrideRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strangler_canary_override_rejected_total",
			Help: "Requests carrying a route's canary override header with a wrong token (the hash decided).",
		}, []string{"route"}),
	}
	if err := promreg.Register(reg, "proxy", m.requests, m.duration, m.inFlight, m.overrideRejected); err != nil {
		return nil, err
	}
	for i := range m.statuses {
		m.statuses[i] = strconv.Itoa(i)
	}
	return m, nil
}

func (m *metrics) observe(route, mode, backend string, status int, seconds float64) {
	ck := counterKey{route, mode, backend, status}
	c, ok := m.counters.Load(ck)
	if !ok {
		c, _ = m.counters.LoadOrStore(ck, m.requests.WithLabelValues(route, mode, backend, m.status(status)))
	}
	c.(prometheus.Counter).Inc()

	hk := histogramKey{route, backend}
	h, ok := m.histograms.Load(hk)
	if !ok {
		h, _ = m.histograms.LoadOrStore(hk, m.duration.WithLabelValues(route, backend))
	}
	h.(prometheus.Observer).Observe(seconds)
}

func (m *metrics) status(code int) string {
	if code >= 0 && code < len(m.statuses) {
		return m.statuses[code]
	}
	return strconv.Itoa(code)
}
