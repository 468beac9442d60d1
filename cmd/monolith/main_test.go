package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/strangler-proxy/strangler/ported/kafka/kafkatest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, append(kafkatest.LeakOptions(),
		// go-metrics starts one process-wide ticker with sarama's first
		// meter and never stops it.
		goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"))...)
}

func TestRunFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"listen without port", []string{"-listen", "127.0.0.1"}},
		{"bad port", []string{"-listen", "127.0.0.1:http2"}},
		{"port out of range", []string{"-listen", "127.0.0.1:70000"}},
		{"env without =", []string{"-env", "NOVALUE"}},
		{"unknown flag", []string{"-nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(context.Background(), tt.args, &out, &errOut); code != 2 {
				t.Errorf("exit %d, want 2; stderr %q", code, errOut.String())
			}
		})
	}
}

// syncBuffer is written by run and read by the test at the same time.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunServesUntilCancelled: the URLs are printed, both answer, and
// cancelling (what SIGINT/SIGTERM do in main) stops everything with exit 0.
func TestRunServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan struct{})
	var code int // read after done is closed
	go func() {
		defer close(done)
		code = run(ctx, []string{"-listen", "127.0.0.1:0", "-workers", "1", "-proxy-pass"}, &out, &errOut)
	}()
	// Even when the test fails early, the monolith is stopped before exit.
	t.Cleanup(func() { cancel(); <-done })

	urlRE := regexp.MustCompile(`http://127\.0\.0\.1:[0-9]+`)
	var urls []string
	var dir string
	dirRE := regexp.MustCompile(`runtime dir (\S+)\)`)
	deadline := time.Now().Add(time.Minute)
	for len(urls) < 2 {
		select {
		case <-done:
			t.Fatalf("run exited %d early: %s", code, errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no URLs printed; stdout %q stderr %q", out.String(), errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
		urls = urlRE.FindAllString(out.String(), -1)
		if m := dirRE.FindStringSubmatch(out.String()); m != nil {
			dir = m[1]
		}
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for _, u := range urls {
		resp, err := client.Get(u + "/api/v1/ping")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", u, resp.StatusCode)
		}
	}
	tr.CloseIdleConnections()

	cancel()
	select {
	case <-done:
		if code != 0 {
			t.Errorf("exit %d, want 0; stderr %q", code, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if _, err := os.Stat(dir); dir == "" || !os.IsNotExist(err) {
		t.Errorf("runtime dir %q still there after exit (%v)", dir, err)
	}
}
