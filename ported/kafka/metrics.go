package kafka

import (
	"github.com/prometheus/client_golang/prometheus"
	gometrics "github.com/rcrowley/go-metrics"

	"github.com/strangler-proxy/strangler/internal/promreg"
)

type metrics struct {
	reg         prometheus.Registerer
	produced    prometheus.Counter
	acked       prometheus.Counter
	errors      prometheus.Counter
	inflight    prometheus.Gauge
	inflightB   prometheus.Gauge
	connected   prometheus.Collector
	tokenSigned prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, h *health) (*metrics, error) {
	m := &metrics{
		produced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strangler_kafka_produced_total", Help: "Messages handed to the Kafka producer.",
		}),
		acked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strangler_kafka_acked_total", Help: "Messages acknowledged by the brokers (acks=all).",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strangler_kafka_errors_total", Help: "Messages the producer failed back after its retries.",
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "strangler_kafka_inflight_messages", Help: "Messages handed to the producer and not yet acked or failed.",
		}),
		inflightB: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "strangler_kafka_inflight_bytes", Help: "Key and value bytes of the in-flight messages.",
		}),
		connected: connectedGauge(func() float64 {
			if h.connected() {
				return 1
			}
			return 0
		}),
		tokenSigned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strangler_kafka_msk_iam_tokens_signed_total", Help: "MSK IAM tokens signed (refreshes included).",
		}),
	}
	if err := promreg.Register(reg, "kafka", m.collectors()...); err != nil {
		return nil, err
	}
	m.reg = reg
	return m, nil
}

// connectedGauge is strangler_kafka_connected.
func connectedGauge(fn func() float64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strangler_kafka_connected",
		Help: "1 while brokers answer (acks, the connect, metadata probes); 0 from when none answered for two kafka.health_interval and a probe failed or hung an interval, and always 0 without kafka.brokers.",
	}, fn)
}

// RegisterDisabled registers strangler_kafka_connected at 0 when no brokers
// are configured, so that the series exists whatever the config (alerts
// and dashboards need not guess why it is missing). unregister undoes it.
func RegisterDisabled(reg prometheus.Registerer) (unregister func(), err error) {
	g := connectedGauge(func() float64 { return 0 })
	if err := promreg.Register(reg, "kafka", g); err != nil {
		return nil, err
	}
	return func() { promreg.Unregister(reg, g) }, nil
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.produced, m.acked, m.errors, m.inflight, m.inflightB, m.connected, m.tokenSigned}
}

// unregister lets a later producer register under the same names.
func (m *metrics) unregister() { promreg.Unregister(m.reg, m.collectors()...) }

// discardRegistry is the go-metrics registry given to sarama. sarama records
// meters and histograms on every request; a real go-metrics meter also
// starts a process-wide ticker goroutine that never stops and recomputes
// every meter's rates every 5s. We export our own Prometheus metrics and
// never read sarama's, so each constructor is answered with go-metrics' Nil
// implementation: no goroutine, no CPU, and no write to the package-level
// metrics.UseNilMetrics switch, which would change behaviour for every other
// go-metrics user in the process.
type discardRegistry struct{}

var _ gometrics.Registry = discardRegistry{}

// DiscardMetrics is the go-metrics registry to give any other sarama
// client in the process (a test's consumer), for the reasons above.
func DiscardMetrics() gometrics.Registry { return discardRegistry{} }

func (discardRegistry) Each(func(string, any))            {}
func (discardRegistry) Get(string) any                    { return nil }
func (discardRegistry) GetAll() map[string]map[string]any { return nil }
func (discardRegistry) Register(string, any) error        { return nil }
func (discardRegistry) RunHealthchecks()                  {}
func (discardRegistry) Unregister(string)                 {}
func (discardRegistry) UnregisterAll()                    {}

// GetOrRegister is how go-metrics' GetOrRegisterX helpers create metrics:
// they pass a constructor and type-assert the result, so the Nil value must
// have the constructor's type.
func (discardRegistry) GetOrRegister(_ string, v any) any {
	switch v.(type) {
	case func() gometrics.Meter:
		return gometrics.NilMeter{}
	case func() gometrics.Histogram:
		return gometrics.NilHistogram{}
	case func() gometrics.Counter:
		return gometrics.NilCounter{}
	case func() gometrics.Gauge:
		return gometrics.NilGauge{}
	case func() gometrics.GaugeFloat64:
		return gometrics.NilGaugeFloat64{}
	case func() gometrics.Timer:
		return gometrics.NilTimer{}
	case func() gometrics.EWMA:
		return gometrics.NilEWMA{}
	default:
		// Already-built metrics are handed in by value; returning them keeps
		// the caller's type assertion valid.
		return v
	}
}
