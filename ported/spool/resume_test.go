package spool

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/ported/delivery"
	"github.com/strangler-proxy/strangler/ported/kafka"
	"github.com/strangler-proxy/strangler/ported/kafka/kafkatest"
)

const (
	resumeChildEnv  = "SPOOL_TEST_RESUME_CHILD_DIR"
	resumeBrokerEnv = "SPOOL_TEST_RESUME_BROKER"
	resumeTopic     = "events.v1"
)

func resumeMsg(seq int) delivery.Message {
	id := fmt.Sprintf("evt_%05d", seq)
	return delivery.Message{
		Key:     fmt.Appendf(nil, "user_%d", seq%10),
		Value:   fmt.Appendf(nil, `{"event_id":%q,"seq":%d}`, id, seq),
		EventID: id,
	}
}

// resumeChild forwards to the broker in resumeBrokerEnv with a checkpoint
// that is written once and then not for an hour: whatever it delivers,
// its spool still lists after a kill -9. Each stdin line "publish N"
// publishes the next N events; it answers "ok A" once A events (all) are
// acked by Kafka, or "spooled" with the broker away, where nothing acks.
func resumeChild(dir string) {
	s, err := Open(Config{Dir: dir, SegmentSize: 64 << 10, CheckpointInterval: time.Hour,
		RetryBackoff: 10 * time.Millisecond, MaxRetryBackoff: 50 * time.Millisecond}, zap.NewNop(), nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	p, err := kafka.NewProducer(kafka.Config{Brokers: []string{os.Getenv(resumeBrokerEnv)}, Topic: resumeTopic,
		RetryMax: 2, RetryBackoff: 10 * time.Millisecond, MaxRetryBackoff: 20 * time.Millisecond},
		zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	if err := s.Forward(context.Background(), p); err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	seq := 0
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		verb, arg, _ := strings.Cut(sc.Text(), " ")
		n, _ := strconv.Atoi(arg)
		for range n {
			if err := s.Publish(context.Background(), resumeMsg(seq)); err != nil {
				fmt.Println("error", err)
				os.Exit(2)
			}
			seq++
		}
		switch verb {
		case "publish":
			for s.Stats().Acked < s.Stats().Last {
				time.Sleep(5 * time.Millisecond)
			}
			fmt.Println("ok", s.Stats().Acked)
		case "spool":
			fmt.Println("spooled")
		}
	}
	select {} // until killed
}

// After a kill -9 the checkpoint lags what Kafka acked (here by an hour's
// worth: it is written once). The restarted forwarder reads the end of the
// topic back, skips what Kafka holds, and sends only the rest: every event
// ends up in Kafka exactly once.
func TestResumeSkipsWhatKafkaHolds(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.Options{Topic: resumeTopic, DataDir: t.TempDir()})
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), resumeChildEnv+"="+dir, resumeBrokerEnv+"="+c.Addr)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(stdout)
	say := func(cmd string) string {
		t.Helper()
		if _, err := io.WriteString(stdin, cmd+"\n"); err != nil {
			t.Fatal(err)
		}
		if !lines.Scan() {
			t.Fatalf("child ended after %q: %v", cmd, lines.Err())
		}
		return lines.Text()
	}
	if got := say("publish 600"); got != "ok 600" {
		t.Fatalf("child: %q, want all 600 acked", got)
	}
	c.Stop() // these 150 are spooled, never acked
	if got := say("spool 150"); got != "spooled" {
		t.Fatalf("child: %q", got)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	c.Restart()

	s := open(t, testConfig(dir))
	if st := s.Stats(); st.Entries < 700 {
		t.Fatalf("after the kill the spool lists %d un-acked events; the test needs a checkpoint that lags", st.Entries)
	}
	reg := prometheus.NewRegistry()
	p, err := kafka.NewProducer(kafka.Config{Brokers: []string{c.Addr}, Topic: resumeTopic}, zap.NewNop(), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close(context.Background()) }()
	if err := s.Forward(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, s)
	skipped := testutil.ToFloat64(s.m.resumeSkipped)
	closeSpool(t, s, 5*time.Second)

	copies := map[string]int{}
	for _, recs := range c.ReadAll(30 * time.Second) {
		for _, r := range recs {
			var e struct {
				EventID string `json:"event_id"`
			}
			if err := json.Unmarshal(r.Value, &e); err != nil {
				t.Fatal(err)
			}
			copies[e.EventID]++
			var pos string
			for _, h := range r.Headers {
				if string(h.Key) == kafka.PositionHeader {
					pos = string(h.Value)
				}
			}
			if !strings.HasPrefix(pos, s.ID()+":") {
				t.Errorf("%s: spool_position %q, want %s:INDEX", e.EventID, pos, s.ID())
			}
		}
	}
	for seq := range 750 {
		if n := copies[resumeMsg(seq).EventID]; n != 1 {
			t.Errorf("%s is in Kafka %d times, want once", resumeMsg(seq).EventID, n)
		}
	}
	if skipped < 590 {
		t.Errorf("resume skipped %v entries, want about the 600 Kafka held", skipped)
	}
}
