package shadowreport

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/ported/kafka/kafkatest"
	"github.com/strangler-proxy/strangler/routes"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, kafkatest.LeakOptions()...) }

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 12, 0, 30, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newStats(t testing.TB, clk *clock, mod func(*Options)) (*Stats, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	o := Options{Registerer: reg, Now: clk.Now, Logger: zap.NewNop()}
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s, reg
}

func jsonResponse(status int, body string, h ...string) compare.Response {
	r := compare.Response{Status: status, Body: []byte(body), Header: [][2]string{{"Content-Type", "application/json"}}}
	for i := 0; i+1 < len(h); i += 2 {
		r.Header = append(r.Header, [2]string{h[i], h[i+1]})
	}
	return r
}

// compareOnce runs one comparison through c the way the proxy will.
func compareOnce(c *Collector, cmp *compare.Comparator, p, q compare.Response) compare.Outcome {
	return c.Compared(Comparison{
		Request:     Request{ID: "req-1", Method: "GET", URI: "/api/v1/campaigns/cmp_000042?token=abc"},
		PrimarySide: routes.SideLegacy, Primary: p, Candidate: q, Result: cmp.Diff(p, q),
	})
}

// counterValue reads the counter series of reg with exactly these labels.
func counterValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return math.NaN()
}

func countSeries(t testing.TB, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}
