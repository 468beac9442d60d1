package main

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// stuckOutput blocks every Write until released, like a pipe nobody reads.
type stuckOutput struct {
	release chan struct{}
	mu      sync.Mutex
	b       strings.Builder
}

func (s *stuckOutput) Write(p []byte) (int, error) {
	<-s.release
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *stuckOutput) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAccessLinesDroppedWhenBehindAreCountedAndLogged(t *testing.T) {
	out := &stuckOutput{release: make(chan struct{})}
	lg := newLoggers(logConfig{Level: "info", FlushInterval: time.Millisecond, BufferBytes: 64 << 10}, out)
	reg := prometheus.NewRegistry()
	if err := lg.register(reg); err != nil {
		t.Fatal(err)
	}
	line := []byte(`{"level":"info","msg":"request","path":"` + strings.Repeat("x", 200) + `"}` + "\n")
	const n = 1000 // 220 KB against a 64 KiB bound
	for range n {
		_, _ = lg.access.Write(line)
	}
	if v := droppedMetric(t, reg); v == 0 || uint64(v) != lg.lines.Dropped() {
		t.Errorf("strangler_log_lines_dropped_total = %v while the output is stuck, writer says %d", v, lg.lines.Dropped())
	}
	close(out.release)
	lg.close()
	if lg.lines.Dropped() == 0 || lg.lines.Dropped()+lg.lines.Written() != n {
		t.Errorf("dropped %d + written %d, want > 0 dropped and %d in all", lg.lines.Dropped(), lg.lines.Written(), n)
	}
	logs := out.String()
	if !strings.Contains(logs, `"msg":"log lines dropped`) || !strings.Contains(logs, `"dropped_total":`) {
		t.Errorf("no warning about the dropped lines in:\n%.2000s", logs)
	}
	if c := strings.Count(logs, `"msg":"request"`); uint64(c) != lg.lines.Written() {
		t.Errorf("%d access lines in the output, %d counted written", c, lg.lines.Written())
	}
}

func droppedMetric(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "strangler_log_lines_dropped_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("strangler_log_lines_dropped_total not registered")
	return 0
}

func TestWarnLevelSilencesTheAccessLog(t *testing.T) {
	lg := newLoggers(logConfig{Level: "warn", FlushInterval: time.Millisecond, BufferBytes: 64 << 10}, &strings.Builder{})
	defer lg.close()
	if lg.access != nil {
		t.Error("access writer set at level warn")
	}
	lg.log.Info("not written", zap.Int("x", 1))
}
