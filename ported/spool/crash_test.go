package spool

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/ported/delivery"
)

const (
	crashChildEnv = "SPOOL_TEST_CRASH_CHILD_DIR"
	crashBaseEnv  = "SPOOL_TEST_CRASH_BASE"
)

// crashChild is the process TestKill9 kills: concurrent publishers print
// "ok <id>" once Publish returned, and an in-process sender acks
// (printing "delivered <id>") so checkpoints and truncations are in flight
// when SIGKILL lands.
func crashChild(dir string) {
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		fmt.Fprintf(os.Stdout, format+"\n", args...) // one write per line
		out.Unlock()
	}
	s, err := Open(Config{Dir: dir, SegmentSize: 64 << 10, CheckpointInterval: 2 * time.Millisecond}, zap.NewNop(), nil)
	if err != nil {
		say("error %v", err)
		os.Exit(2)
	}
	acks := make(chan func(), 4096)
	go func() {
		// A broker slower than the publishers, so a backlog of accepted,
		// undelivered events exists when the kill lands.
		for fn := range acks {
			time.Sleep(time.Millisecond)
			fn()
		}
	}()
	sender := senderFunc(func(_ context.Context, m delivery.Message, ack func(error)) error {
		acks <- func() {
			say("delivered %s", m.EventID)
			ack(nil)
		}
		return nil
	})
	if err := s.Forward(context.Background(), sender); err != nil {
		say("error %v", err)
		os.Exit(2)
	}
	base, _ := strconv.Atoi(os.Getenv(crashBaseEnv))
	var n atomic.Int64
	for range 8 {
		go func() {
			for {
				id := fmt.Sprintf("evt_%09d", base+int(n.Add(1)))
				m := delivery.Message{Key: []byte(id[len(id)-2:]), Value: []byte(`{"event_id":"` + id + `"}`), EventID: id}
				if err := s.Publish(context.Background(), m); err != nil {
					say("error %v", err)
					continue
				}
				say("ok %s", id)
			}
		}()
	}
	select {}
}

type senderFunc func(ctx context.Context, m delivery.Message, ack func(error)) error

func (f senderFunc) Send(ctx context.Context, m delivery.Message, ack func(error)) error {
	return f(ctx, m, ack)
}

// TestKill9 kills a publishing process at random moments and checks that
// every event it acknowledged was either delivered or is replayed after
// reopening: Publish's "durable" survives SIGKILL, mid-truncation included.
func TestKill9(t *testing.T) {
	dir := t.TempDir()
	accepted := map[string]bool{}
	delivered := map[string]bool{}
	rng := rand.New(rand.NewPCG(7, 9))
	for round := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashBaseEnv+"="+strconv.Itoa(round*100_000_000))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start child: %v", err)
		}
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			_, _ = io.Copy(io.Discard, stdout)
		}()
		killAfter := 200 + rng.IntN(800) // accepted events
		timeout := time.After(30 * time.Second)
		oks := 0
	read:
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					break read
				}
				kind, id, _ := strings.Cut(line, " ")
				switch kind {
				case "ok":
					accepted[id] = true
					oks++
				case "delivered":
					delivered[id] = true
				default:
					t.Fatalf("round %d child: %s", round, line)
				}
				if oks == killAfter {
					_ = cmd.Process.Kill() // SIGKILL: no deferred code, no Close
				}
			case <-timeout:
				_ = cmd.Process.Kill()
				t.Fatalf("round %d: child accepted only %d events in 30s", round, oks)
			}
		}
		_ = cmd.Wait()
		t.Logf("round %d: killed after %d accepted events", round, oks)
	}

	s := open(t, testConfig(dir))
	fs := newFakeSender(t)
	if err := s.Forward(context.Background(), fs); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, s)
	closeSpool(t, s, time.Second)
	replayed := map[string]bool{}
	for _, id := range fs.ackedIDs() {
		replayed[id] = true
	}
	var lost []string
	for id := range accepted {
		if !delivered[id] && !replayed[id] {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d acknowledged events lost after SIGKILL, e.g. %v", len(lost), lost[:min(5, len(lost))])
	}
	t.Logf("%d accepted, %d delivered before a kill, %d replayed after", len(accepted), len(delivered), len(replayed))
}
