package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/ported/kafka/kafkatest"
)

// Operations (issue 12): what the process says and does around its
// lifecycle, tried on the real binary as an operator would.

// strangler runs the binary with args and returns its exit code and output.
func strangler(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// The command line: strangler alone prints the usage and starts nothing;
// each command's -h prints its flags; exit codes are 0, 1 for a finding, 2
// for a usage or run error.
func TestCommandLineOfTheBinary(t *testing.T) {
	if code, out, errOut := strangler(t); code != 2 || out != "" || !strings.Contains(errOut, "usage: strangler COMMAND") {
		t.Errorf("strangler alone: exit %d, stdout %q, stderr %q; want 2 and the usage on stderr", code, out, errOut)
	}
	if code, out, _ := strangler(t, "run", "-h"); code != 0 || !strings.Contains(out, "usage: strangler run") || !strings.Contains(out, "-config") {
		t.Errorf("strangler run -h: exit %d, %q; want 0 and run's flags", code, out)
	}
	if code, out, _ := strangler(t, "check", "-h"); code != 0 || !strings.Contains(out, "-against") {
		t.Errorf("strangler check -h: exit %d, %q; want 0 and check's flags", code, out)
	}
	bad := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(bad, []byte("lissten: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := strangler(t, "check", bad); code != 1 || !strings.Contains(errOut, `unknown key "lissten"`) {
		t.Errorf("check of a bad file: exit %d, %q; want 1", code, errOut)
	}
	if code, _, errOut := strangler(t, "run", "-config", bad); code != 2 || !strings.Contains(errOut, "start failed") {
		t.Errorf("run of a bad file: exit %d, %q; want 2", code, errOut)
	}
}

// strangler check -against asks the running instance what a reload of the
// file would do: a legacy.upstream change, which `check` alone finds valid,
// is one the instance refuses; a route edit it would apply, naming it.
func TestCheckAgainstARunningInstance(t *testing.T) {
	m := startMonolith(t)
	p := start(t, config{Upstream: m.URL, Routes: pingRoutes("legacy")})
	running, err := os.ReadFile(p.Config)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(old, new string) string {
		t.Helper()
		if !strings.Contains(string(running), old) {
			t.Fatalf("config lacks %q:\n%s", old, running)
		}
		f := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(f, []byte(strings.Replace(string(running), old, new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	upstream := edit(m.URL, "http://127.0.0.1:1")
	if code, out, _ := strangler(t, "check", upstream); code != 0 || !strings.Contains(out, ": ok:") {
		t.Fatalf("check alone of the upstream change: exit %d, %q; want it valid", code, out)
	}
	code, _, errOut := strangler(t, "check", "-against", p.Admin, upstream)
	if code != 1 || !strings.Contains(errOut, "would refuse it (static_changed)") ||
		!strings.Contains(errOut, "config reload not supported for legacy.upstream: old="+m.URL+", new=http://127.0.0.1:1") {
		t.Errorf("check -against of the upstream change: exit %d, %q; want 1 and the refusal", code, errOut)
	}
	code, out, errOut := strangler(t, "check", "-against", p.Admin, edit("mode: legacy", "mode: ported"))
	if code != 0 || !strings.Contains(out, "would apply it, changing:") || !strings.Contains(out, "ping: legacy→ported") {
		t.Errorf("check -against of a flip: exit %d, stdout %q, stderr %q; want 0 and the change", code, out, errOut)
	}
	if code, out, _ := strangler(t, "check", "-against", p.Admin, p.Config); code != 0 || !strings.Contains(out, "no change to its routes") {
		t.Errorf("check -against of the running file: exit %d, %q", code, out)
	}
	// The instance still runs its own table: a dry run changes nothing.
	if _, b := get(t, p.URL+"/api/v1/ping"); implementation(t, b) != "php" {
		t.Errorf("after the dry runs the ping route answers %s", b)
	}
	if code, _, errOut := strangler(t, "check", "-against", "http://"+freeAddr(t), p.Config); code != 2 || !strings.Contains(errOut, "ask the running instance") {
		t.Errorf("check -against nobody: exit %d, %q; want 2", code, errOut)
	}
}

// SIGTERM: /readyz answers 503 at once while the listener still serves for
// server.shutdown_delay; then the listener closes; the whole shutdown ends
// within server.shutdown_timeout although Kafka went away with events still
// to deliver, which stay in the spool.
func TestShutdownDelayThenABoundedStop(t *testing.T) {
	const delay, timeout = 4 * time.Second, 10 * time.Second
	k := kafkatest.Start(t, kafkatest.Options{Topic: topic})
	m := startMonolith(t)
	p := start(t, config{Upstream: m.URL, Brokers: []string{k.Addr}, Routes: eventsRoute("ported"),
		Extra: fmt.Sprintf("server:\n  shutdown_delay: %s\n  shutdown_timeout: %s\n", delay, timeout)})
	waitReady(t, p)
	c := client()
	defer c.CloseIdleConnections()
	for i := range 3 {
		if code, _, err := postEvent(c, p.URL, event(fmt.Sprintf("u_stop%04d", i), nil)); err != nil || code != http.StatusAccepted {
			t.Fatalf("event %d: %d %v", i, code, err)
		}
	}
	k.Consume(3, 300*time.Millisecond, 20*time.Second)
	k.Stop()
	for i := range 5 {
		if code, _, err := postEvent(c, p.URL, event(fmt.Sprintf("u_stuck%04d", i), nil)); err != nil || code != http.StatusAccepted {
			t.Fatalf("event %d with Kafka away: %d %v", i, code, err)
		}
	}
	c.CloseIdleConnections()

	sent := time.Now()
	p.signal(syscall.SIGTERM)
	for {
		resp, err := http.Get(p.Admin + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(b), `"draining"`) {
				break
			}
		}
		if time.Since(sent) > delay {
			t.Fatalf("/readyz not 503 draining within the delay after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Readiness is off, the listener still serves: a new connection's
	// request gets its answer.
	seen := time.Since(sent)
	status, err := getOnNewConnection(p.URL + "/static/hello.txt")
	switch {
	case seen < delay-time.Second && (err != nil || status != http.StatusOK):
		t.Errorf("%s after SIGTERM, within shutdown_delay: %d %v; want the request served", seen.Round(time.Millisecond), status, err)
	case seen >= delay-time.Second:
		t.Logf("readiness seen %s after SIGTERM: too late to check the listener within the delay", seen)
	}
	// Then the listener closes, not before the delay.
	for {
		conn, err := net.DialTimeout("tcp", strings.TrimPrefix(p.URL, "http://"), time.Second)
		if err != nil {
			if since := time.Since(sent); since < delay {
				t.Errorf("the listener closed %s after SIGTERM, before shutdown_delay %s", since, delay)
			}
			break
		}
		conn.Close()
		if time.Since(sent) > timeout {
			t.Fatal("the listener still accepts after shutdown_timeout")
		}
		time.Sleep(50 * time.Millisecond)
	}
	code := p.waitExit(t, timeout+10*time.Second)
	took := time.Since(sent)
	if code != 0 || took > timeout+time.Second {
		t.Errorf("exit %d %s after SIGTERM; want 0 within shutdown_timeout %s\n%s", code, took.Round(time.Millisecond), timeout, p.logs)
	}
	t.Logf("exit %d %s after SIGTERM", code, took.Round(time.Millisecond))
	if got := strangleSpool(t, p.Config); len(got) != 5 {
		t.Errorf("%d events left in the spool, want the 5 Kafka never acked", len(got))
	}
}

// getOnNewConnection GETs url on a connection of its own.
func getOnNewConnection(url string) (int, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// Past server.concurrency a connection gets 503 with Retry-After, from the
// real binary: fasthttp's own refusal had none.
func TestConcurrencyLimitAnswers503WithRetryAfter(t *testing.T) {
	m := startMonolith(t)
	p := start(t, config{Upstream: m.URL, Extra: "server:\n  concurrency: 1\n"})
	hold, err := net.DialTimeout("tcp", strings.TrimPrefix(p.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	_ = hold.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprint(hold, "GET /static/hello.txt HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	br := bufio.NewReader(hold)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("first connection: %v %v", resp, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// hold stays open: the next connection is one too many.
	resps := exchangeAll(t, p.URL, "GET /static/hello.txt HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	if len(resps) != 1 || resps[0].StatusCode != 503 || resps[0].Header.Get("Retry-After") != "1" ||
		!strings.Contains(bodyOf(resps[0]), "request id") {
		t.Fatalf("over server.concurrency: %d answers, first %+v", len(resps), resps)
	}
}

// readyz is the admin /readyz status and body.
func readyz(t *testing.T, p *proc) (int, string) {
	t.Helper()
	resp, err := http.Get(p.Admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// /readyz fails exactly when the intake starts refusing: with the spool
// filling up (no brokers), readiness is 200 while events are accepted and
// 503, naming the spool, from the moment they are refused — not only once
// max_bytes is reached, which events of one size never reach exactly.
func TestReadyzFailsWhenTheSpoolRefusesTheNextEvent(t *testing.T) {
	m := startMonolith(t)
	p := start(t, config{Upstream: m.URL, Routes: eventsRoute("ported"),
		SpoolExtra: "  max_bytes: 65536\n  segment_size: 65536\n  full_retry_after: 7s\n"})
	waitReady(t, p)
	c := client()
	defer c.CloseIdleConnections()
	early := 0 // readiness may turn one event early: the sizes differ by a few bytes
	for i := range 2000 {
		status, body := readyz(t, p)
		code, _, err := postEvent(c, p.URL, event(fmt.Sprintf("u_full%04d", i), nil))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case code == http.StatusAccepted && status == http.StatusOK:
			continue
		case code == http.StatusAccepted && early == 0:
			early++
			continue
		case code == http.StatusAccepted:
			t.Fatalf("event %d: readiness %d %s while the intake still accepts", i, status, body)
		case code != http.StatusServiceUnavailable:
			t.Fatalf("event %d: %d, want 202 or 503", i, code)
		case status != http.StatusServiceUnavailable || !strings.Contains(body, "spool full"):
			t.Fatalf("event %d refused while /readyz says %d %s", i, status, body)
		}
		// Full: it stays so, and both say it.
		for range 5 {
			code, _, _ := postEvent(c, p.URL, event("u_full9999", nil))
			if status, body := readyz(t, p); code != http.StatusServiceUnavailable || status != http.StatusServiceUnavailable {
				t.Fatalf("full spool: event %d, readiness %d %s", code, status, body)
			}
		}
		return
	}
	t.Fatal("the spool never filled")
}

// With delivery: direct every 202 waits for Kafka, so /readyz follows the
// brokers: 503 naming kafka within two kafka.health_interval of them going
// away, while events are refused; 200 again once they are back.
func TestReadyzInDirectModeFollowsTheBrokers(t *testing.T) {
	k := kafkatest.Start(t, kafkatest.Options{Topic: topic})
	m := startMonolith(t)
	p := start(t, config{Upstream: m.URL, Brokers: []string{k.Addr}, KafkaExtra: "  health_interval: 1s\n",
		Routes: eventsRoute("ported"), Extra: "events:\n  delivery: direct\n"})
	waitReady(t, p)
	c := client()
	defer c.CloseIdleConnections()
	if code, _, err := postEvent(c, p.URL, event("u_direct0001", nil)); err != nil || code != http.StatusAccepted {
		t.Fatalf("event with Kafka up: %d %v", code, err)
	}
	k.Stop()
	waitReadyz := func(want int) string {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			status, body := readyz(t, p)
			if status == want {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz still %d %s, want %d", status, body, want)
			}
		}
	}
	if body := waitReadyz(http.StatusServiceUnavailable); !strings.Contains(body, `"name": "kafka"`) || strings.Contains(body, `"draining"`) {
		t.Errorf("readiness without brokers: %s", body)
	}
	if code, _, err := postEvent(c, p.URL, event("u_direct0002", nil)); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("event while /readyz says no broker: %d %v, want 503", code, err)
	}
	k.Restart()
	waitReadyz(http.StatusOK)
	if code, _, err := postEvent(c, p.URL, event("u_direct0003", nil)); err != nil || code != http.StatusAccepted {
		t.Errorf("event with Kafka back: %d %v", code, err)
	}
}
