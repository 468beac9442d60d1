package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/strangler-proxy/strangler/ported/kafka/kafkatest"
)

// Two processes on one spool directory: the second refuses to start,
// naming the directory and the first one's pid, and the first keeps every
// event it accepted.
func TestSecondProcessRefusesAHeldSpool(t *testing.T) {
	m := startMonolith(t)
	spoolDir := t.TempDir()
	first := start(t, config{Upstream: m.URL, SpoolDir: spoolDir, Routes: eventsRoute("ported")})
	c := client()
	want := map[string]string{}
	post := func(n int) {
		t.Helper()
		for i := range n {
			user := fmt.Sprintf("u_first%05d", len(want)+i)
			code, id, err := postEvent(c, first.URL, event(user, nil))
			if err != nil || code != http.StatusAccepted {
				t.Fatalf("event to the first proxy: %d %v", code, err)
			}
			want[id] = user
		}
	}
	post(20)

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	second := config{Listen: freeAddr(t), Admin: freeAddr(t), Upstream: m.URL, SpoolDir: spoolDir, Routes: eventsRoute("ported")}
	if err := os.WriteFile(cfgPath, []byte(second.render()), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "run", "-config", cfgPath)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() == 0 {
		t.Fatalf("second process on a held spool: %v, want a non-zero exit\n%s", err, out)
	}
	pid := strconv.Itoa(first.cmd.Process.Pid)
	if !strings.Contains(string(out), spoolDir+" is locked by pid "+pid) {
		t.Errorf("second process's log does not name the directory %s and the holder's pid %s:\n%s", spoolDir, pid, out)
	}

	post(20)
	stopGracefully(t, first)
	got := strangleSpool(t, first.Config)
	if len(got) != len(want) {
		t.Errorf("the spool lists %d events, want the %d the first proxy accepted", len(got), len(want))
	}
	for id, user := range want {
		if got[id] != user {
			t.Errorf("event %s: spooled key %q, want %q", id, got[id], user)
		}
	}
}

// s3Switch is gofakes3 over HTTP that can be down: every request then gets
// a 503 SlowDown, as S3 answers when it sheds load.
type s3Switch struct {
	next http.Handler
	up   atomic.Bool
}

func (s *s3Switch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.up.Load() {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>down</Message></Error>`)
		return
	}
	s.next.ServeHTTP(w, r)
}

// Started while S3 is down (require_initial_load, the default), the proxy
// is not ready, and what it serves meanwhile says "later", never "no":
// lookups answer the contract's JSON 503 with Retry-After (not the front
// door's text 500), an event naming a campaign gets 503 with Retry-After
// (not a permanent 422 campaign_not_found), an event naming none is
// accepted. Once S3 answers, all of it works.
func TestStartedWhileS3IsDown(t *testing.T) {
	backend := s3mem.New()
	sw := &s3Switch{next: gofakes3.New(backend).Server()}
	srv := httptest.NewServer(sw)
	defer srv.Close()
	data, err := os.ReadFile(shippedCampaigns())
	if err != nil {
		t.Fatal(err)
	}
	if err := backend.CreateBucket("data"); err != nil {
		t.Fatal(err)
	}
	if _, err := backend.PutObject("data", "campaigns.json", map[string]string{"Content-Type": "application/json"},
		bytes.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatal(err)
	}

	m := startMonolith(t)
	p := start(t, config{
		Upstream: m.URL, HotCache: "s3://data/campaigns.json",
		HotCacheExtra: fmt.Sprintf("  s3: {endpoint: %q, path_style: true, access_key_id: test, secret_access_key: test}\n", srv.URL),
		Routes:        campaignRoutes + eventsRoute("ported"),
	})
	if resp, body := get(t, p.Admin+"/readyz"); resp.StatusCode != http.StatusServiceUnavailable || readiness(t, body)["hotcache"] {
		t.Errorf("/readyz with S3 down: %d %s, want 503 with hotcache failing", resp.StatusCode, body)
	}
	for _, path := range []string{"/api/v1/campaigns/cmp_000001", "/api/v1/campaigns?country=DE"} {
		resp, body := get(t, p.URL+path)
		want := `{"error":"unavailable","message":"campaign data unavailable","request_id":"` + resp.Header.Get("X-Request-Id") + `"}`
		ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/json" ||
			string(body) != want || ra < 1 || ra > 60 {
			t.Errorf("GET %s with S3 down: %d %q Retry-After %q %s; want 503 application/json Retry-After 1..60 %s",
				path, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Retry-After"), body, want)
		}
	}
	cmp := activeCampaign(t)
	c := client()
	resp, err := c.Post(p.URL+"/api/v1/events", "application/json", bytes.NewReader(event("u_s3down001", cmp)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(body), `"campaign data unavailable, retry later"`) {
		t.Errorf("event naming a campaign with S3 down: %d Retry-After %q %s; want 503 with Retry-After",
			resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if code, _, err := postEvent(c, p.URL, event("u_s3down002", nil)); err != nil || code != http.StatusAccepted {
		t.Errorf("event naming no campaign with S3 down: %d %v, want 202", code, err)
	}

	sw.up.Store(true)
	waitReady(t, p)
	if resp, body := get(t, p.URL+"/api/v1/campaigns/cmp_000001"); resp.StatusCode != http.StatusOK {
		t.Errorf("campaign once S3 is up: %d %s", resp.StatusCode, body)
	}
	if code, _, err := postEvent(c, p.URL, event("u_s3down003", cmp)); err != nil || code != http.StatusAccepted {
		t.Errorf("event naming a campaign once S3 is up: %d %v, want 202", code, err)
	}
}

// seqEvent is a valid page_view of user carrying its place in the user's
// sequence in metadata.seq.
func seqEvent(user string, seq int) []byte {
	return fmt.Appendf(nil, `{"type":"page_view","user_id":%q,"occurred_at":%q,"country":"DE","metadata":{"seq":"%d"}}`,
		user, time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), seq)
}

// A broker outage longer than the producer's retries, under clients that
// post each user's events in order and retry what did not get a 202: in
// Kafka the first copy of each event comes in the order its user sent
// them (the issue saw seq 455-459, then 444, then 445-459 again), nothing
// accepted is lost, and the outage is logged once when it starts and once
// when it ends.
func TestBrokerOutageKeepsEachUsersOrder(t *testing.T) {
	k := kafkatest.Start(t, kafkatest.Options{Topic: topic, DataDir: t.TempDir()})
	m := startMonolith(t)
	p := start(t, config{
		Upstream: m.URL, Brokers: []string{k.Addr}, Routes: eventsRoute("ported"),
		// Retries that run out within the outage, and a quick health check.
		KafkaExtra: "  retry_max: 2\n  retry_backoff: 10ms\n  max_retry_backoff: 50ms\n  health_interval: 200ms\n",
	})
	waitReady(t, p)

	const users = 12
	var (
		accepted atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		mu       sync.Mutex
		sent     = map[string]int{} // user → events that got a 202
	)
	for u := range users {
		wg.Go(func() {
			c := &http.Client{Timeout: 10 * time.Second}
			defer c.CloseIdleConnections()
			user := fmt.Sprintf("u_order%04d", u)
			for seq := 0; ; seq++ {
				for { // until this event got its 202: a retrying client
					select {
					case <-stop:
						mu.Lock()
						sent[user] = seq
						mu.Unlock()
						return
					default:
					}
					if code, _, err := postEvent(c, p.URL, seqEvent(user, seq)); err == nil && code == http.StatusAccepted {
						accepted.Add(1)
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	waitCount := func(n int64) {
		for deadline := time.Now().Add(60 * time.Second); accepted.Load() < n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("only %d events accepted, want %d", accepted.Load(), n)
			}
		}
	}
	waitCount(300)
	k.Stop()
	before := accepted.Load()
	time.Sleep(3 * time.Second) // well past retry_max × backoff and two health intervals
	waitCount(before + 100)     // accepted into the spool meanwhile
	k.Restart()
	waitCount(accepted.Load() + 300)
	close(stop)
	wg.Wait()
	stopGracefully(t, p)

	var total int
	for _, n := range sent {
		total += n
	}
	first := map[string]int{} // user → highest seq whose first copy was seen
	seen := map[string]bool{} // user/seq
	for part, recs := range k.ReadAll(60 * time.Second) {
		for _, r := range recs {
			var e struct {
				UserID   string            `json:"user_id"`
				Metadata map[string]string `json:"metadata"`
			}
			if err := json.Unmarshal(r.Value, &e); err != nil {
				t.Fatalf("record %d/%d: %v", part, r.Offset, err)
			}
			seq, err := strconv.Atoi(e.Metadata["seq"])
			if err != nil {
				t.Fatalf("record %d/%d without seq: %s", part, r.Offset, r.Value)
			}
			id := fmt.Sprint(e.UserID, "/", seq)
			if seen[id] {
				continue // a retried request's second event: a later copy
			}
			seen[id] = true
			if prev, ok := first[e.UserID]; ok && seq < prev {
				t.Errorf("partition %d offset %d: first copy of %s seq %d after seq %d", part, r.Offset, e.UserID, seq, prev)
			}
			first[e.UserID] = max(first[e.UserID], seq)
		}
	}
	for user, n := range sent {
		for seq := range n {
			if !seen[fmt.Sprint(user, "/", seq)] {
				t.Errorf("%s seq %d got a 202 and is not in Kafka", user, seq)
			}
		}
	}
	logs := p.logs.String()
	if n := strings.Count(logs, `"kafka unreachable: no broker answer"`); n != 1 {
		t.Errorf("%d log lines for the outage's start, want 1:\n%s", n, grepLines(logs, "kafka"))
	}
	if n := strings.Count(logs, `"kafka reachable again"`); n != 1 {
		t.Errorf("%d log lines for the outage's end, want 1:\n%s", n, grepLines(logs, "kafka"))
	}
	t.Logf("%d users, %d events accepted, %d during the outage", users, total, accepted.Load()-before)
}

// postKeyed POSTs body with an Idempotency-Key; it returns the status and,
// for a 202, the event id.
func postKeyed(c *http.Client, url, key string, body []byte) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, url+"/api/v1/events", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", strconv.Quote(key))
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var a accepted
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", err
	}
	if resp.StatusCode == http.StatusAccepted {
		if err := json.Unmarshal(b, &a); err != nil {
			return 0, "", fmt.Errorf("202 body %q: %w", b, err)
		}
	}
	return resp.StatusCode, a.EventID, nil
}

// keyedClients run n clients, each posting its user's events in order with
// one Idempotency-Key per event and retrying it, whatever happens (no
// answer, 503, 409), until it gets a 202. url is the proxy to use (nil
// while it is down). stop ends them; they return, per user, the event id
// of each event's 202s (all of them must be the same).
type keyedLoad struct {
	mu       sync.Mutex
	ids      map[string][]string // user/seq → the event ids of its 202s
	accepted atomic.Int64
	answers  sync.Map // status → *atomic.Int64
}

func runKeyedClients(n int, url func() *string, stop <-chan struct{}, wg *sync.WaitGroup) *keyedLoad {
	l := &keyedLoad{ids: map[string][]string{}}
	for u := range n {
		wg.Go(func() {
			c := &http.Client{Timeout: 10 * time.Second}
			defer c.CloseIdleConnections()
			user := fmt.Sprintf("u_keyed%04d", u)
			for seq := 0; ; seq++ {
				name := fmt.Sprint(user, "/", seq)
				body := seqEvent(user, seq)
				for {
					select {
					case <-stop:
						return
					default:
					}
					p := url()
					if p == nil {
						time.Sleep(10 * time.Millisecond)
						continue
					}
					code, id, err := postKeyed(c, *p, name, body)
					if err == nil {
						v, _ := l.answers.LoadOrStore(code, new(atomic.Int64))
						v.(*atomic.Int64).Add(1)
					}
					if err == nil && code == http.StatusAccepted {
						l.mu.Lock()
						l.ids[name] = append(l.ids[name], id)
						answered := len(l.ids[name])
						l.mu.Unlock()
						if answered == 1 {
							l.accepted.Add(1)
						}
						// Now and then the client retries anyway, as
						// one that lost the answer would.
						if seq%7 != 0 || answered > 1 {
							break
						}
						continue
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	return l
}

// check reads the topic back: every event that got a 202 is there exactly
// once, under the one event id all its 202s named.
func (l *keyedLoad) check(t *testing.T, k *kafkatest.Cluster) {
	t.Helper()
	inKafka := map[string][]string{} // user/seq → event ids
	for part, recs := range k.ReadAll(60 * time.Second) {
		for _, r := range recs {
			var e struct {
				EventID  string            `json:"event_id"`
				UserID   string            `json:"user_id"`
				Metadata map[string]string `json:"metadata"`
			}
			if err := json.Unmarshal(r.Value, &e); err != nil {
				t.Fatalf("record %d/%d: %v", part, r.Offset, err)
			}
			name := e.UserID + "/" + e.Metadata["seq"]
			inKafka[name] = append(inKafka[name], e.EventID)
		}
	}
	replays, dups := 0, 0
	for name, ids := range l.ids {
		for _, id := range ids[1:] {
			replays++
			if id != ids[0] {
				t.Errorf("%s: 202s named event ids %v; a retried key must get the first answer", name, ids)
				break
			}
		}
		switch got := inKafka[name]; {
		case len(got) == 0:
			t.Errorf("%s got a 202 (%s) and is not in Kafka", name, ids[0])
		case len(got) > 1:
			dups += len(got) - 1
			t.Errorf("%s is in Kafka %d times: %v", name, len(got), got)
		case got[0] != ids[0]:
			t.Errorf("%s: Kafka has event %s, its 202 said %s", name, got[0], ids[0])
		}
	}
	var answers []string
	l.answers.Range(func(k, v any) bool {
		answers = append(answers, fmt.Sprintf("%v×%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	t.Logf("%d keyed events accepted, %d repeated 202s, answers %v, %d records in Kafka, %d duplicates",
		len(l.ids), replays, answers, len(inKafka), dups)
}

// Clients that retry with an Idempotency-Key until they get a 202, while
// the proxy is killed with SIGKILL and restarted on the same spool: each
// event is in Kafka once, under the event id its 202 named (a retry whose
// first attempt was stored gets that first answer, across restarts).
func TestKeyedRetriesAcrossKill9(t *testing.T) {
	k := kafkatest.Start(t, kafkatest.Options{Topic: topic})
	m := startMonolith(t)
	cfg := config{Upstream: m.URL, Brokers: []string{k.Addr}, SpoolDir: t.TempDir(), Routes: eventsRoute("ported")}
	var cur atomic.Pointer[string]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	load := runKeyedClients(8, cur.Load, stop, &wg)
	for round := range 3 {
		p := start(t, cfg)
		cur.Store(&p.URL)
		target := load.accepted.Load() + 150 + rand.Int64N(150)
		for load.accepted.Load() < target {
			time.Sleep(2 * time.Millisecond)
		}
		p.signal(syscall.SIGKILL)
		cur.Store(nil)
		<-p.done
		t.Logf("round %d: SIGKILL after %d keyed events", round+1, load.accepted.Load())
	}
	p := start(t, cfg)
	cur.Store(&p.URL)
	for target := load.accepted.Load() + 100; load.accepted.Load() < target; {
		time.Sleep(2 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	stopGracefully(t, p)
	load.check(t, k)
}

// `delivery: direct` through a network partition: requests wait for an
// ack that does not come and get 503; the clients retry with their key
// (409 while the first attempt's message is still unsettled). After the
// partition heals, what the producer held is delivered, and its retries
// get the first answer: each event is in Kafka once. Without the key, each
// of the 96 "503, retry later" answers became a second event.
func TestKeyedRetriesThroughAPartitionInDirectMode(t *testing.T) {
	k := kafkatest.Start(t, kafkatest.Options{Topic: topic})
	m := startMonolith(t)
	p := start(t, config{
		Upstream: m.URL, Brokers: []string{k.Addr}, Routes: eventsRoute("ported"),
		KafkaExtra: "  publish_timeout: 500ms\n  read_timeout: 3s\n  write_timeout: 3s\n  health_interval: 500ms\n",
		Extra:      "events:\n  delivery: direct\n",
	})
	waitReady(t, p)
	url := p.URL
	stop := make(chan struct{})
	var wg sync.WaitGroup
	load := runKeyedClients(6, func() *string { return &url }, stop, &wg)
	waitFor := func(n int64) {
		for deadline := time.Now().Add(60 * time.Second); load.accepted.Load() < n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("only %d keyed events accepted, want %d", load.accepted.Load(), n)
			}
		}
	}
	waitFor(100)
	k.Partition()
	time.Sleep(2 * time.Second) // several publish_timeouts: 503s, then 409s
	k.Heal()
	waitFor(load.accepted.Load() + 100)
	close(stop)
	wg.Wait()
	stopGracefully(t, p)
	if v, ok := load.answers.Load(http.StatusServiceUnavailable); !ok || v.(*atomic.Int64).Load() == 0 {
		t.Error("no 503 during the partition: the test did not cut anything")
	}
	load.check(t, k)
}
