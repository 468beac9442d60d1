package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/strangler-proxy/strangler/internal/promtext"
)

// The kafka group (issue 12), opt-in with -groups kafka: the Go intake with
// kafka.brokers set to a kfake broker (cmd/benchrun/kfakeserver, pinned with
// the servers) and the default spool delivery, driven with two mixes:
//
//   - many keys (the baseline): 10,000 user_ids round robin, as intake
//     traffic is spread over users;
//   - one key: every event of one user_id. The forwarder never has two
//     events of a key in flight (per-key order through outages), so each
//     event of that key is its own produce request.
//
// The proxy's CPU is read once the spool has drained after each run, so it
// includes forwarding what the run accepted; a check after the rounds says
// whether Kafka holds every event the spool reports forwarded.
const (
	nameManyKeys = "10,000 user_ids"
	nameOneKey   = "one user_id"
	kafkaTopic   = "events.v1"
	manyKeys     = 10000
)

// kafkaGroup is what the kafka group started.
type kafkaGroup struct {
	cs      []contender
	broker  string
	kfake   *server
	proxy   *server
	servers []*server
}

func (k *kafkaGroup) stop() {
	for _, s := range k.servers {
		s.stop()
	}
}

// pids are the broker's process, to pin with the upstream's.
func (k *kafkaGroup) pids() []int { return []int{k.kfake.pid()} }

func (l launcher) startKafkaGroup(ctx context.Context, o options, upstream, campaigns string) (*kafkaGroup, error) {
	k := &kafkaGroup{}
	ok := false
	defer func() {
		if !ok {
			k.stop()
		}
	}()
	bin, addr, err := l.helper(ctx, "kfakeserver")
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	s, err := l.start("kfake", l.command(bin, "-port", port), false)
	if err != nil {
		return nil, err
	}
	k.servers, k.kfake, k.broker = append(k.servers, s), s, addr
	if err := waitTCP(ctx, s, addr); err != nil {
		return nil, err
	}
	px, err := l.runStrangler(ctx, "strangler, kafka", o.bin, false, func(listen, admin, dir string) string {
		return benchConfig(listen, admin, "http://"+upstream, dir, campaigns, "info") +
			fmt.Sprintf("kafka:\n  brokers: [%q]\n  topic: %s\n", addr, kafkaTopic)
	})
	if px != nil {
		k.servers = append(k.servers, px)
	}
	if err != nil {
		return nil, err
	}
	k.proxy = px
	event := benchEvent(time.Now())
	hdr := map[string]string{"Content-Type": "application/json", "Host": goHost}
	url := px.url + "/api/v1/events"
	k.cs = []contender{
		{Group: "kafka", Name: nameManyKeys, Baseline: true, Method: "POST", Body: event, Headers: hdr, URL: url,
			Proxy: px, Conns: o.phpConn, Spool: true, Drain: true, Keys: manyKeys},
		{Group: "kafka", Name: nameOneKey, Method: "POST", Body: event, Headers: hdr, URL: url,
			Proxy: px, Conns: o.phpConn, Spool: true, Drain: true},
	}
	ok = true
	return k, nil
}

// waitTCP waits until addr accepts a connection or s exits.
func waitTCP(ctx context.Context, s *server, addr string) error {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			return c.Close()
		}
		select {
		case <-s.done:
			return fmt.Errorf("%s exited (log %s)", s.name, s.log)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: %s not listening within 30s", s.name, addr)
}

// check compares the records in the topic (the partitions' end offsets
// summed: nothing else writes to it) with what the spool says it forwarded,
// after the rounds.
func (k *kafkaGroup) check() (string, error) {
	m, err := promtext.Scrape(k.proxy.admin + "/metrics")
	if err != nil {
		return "", err
	}
	forwarded, entries := m["strangler_spool_forwarded_total"], m["strangler_spool_entries"]
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_2_0_0
	cfg.Net.DialTimeout, cfg.Net.ReadTimeout, cfg.Net.WriteTimeout = 5*time.Second, 5*time.Second, 5*time.Second
	c, err := sarama.NewClient([]string{k.broker}, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	parts, err := c.Partitions(kafkaTopic)
	if err != nil {
		return "", err
	}
	var records int64
	for _, p := range parts {
		end, err := c.GetOffset(kafkaTopic, p, sarama.OffsetNewest)
		if err != nil {
			return "", err
		}
		records += end
	}
	line := fmt.Sprintf("Kafka holds %d records; the spool forwarded %.0f and holds %.0f un-acked", records, forwarded, entries)
	if float64(records) < forwarded || entries != 0 {
		return line, fmt.Errorf("kafka group: %s", line)
	}
	return line, nil
}

// waitDrained polls the proxy's metrics until its spool holds nothing
// un-acked, at most a minute, and says how long that took.
func waitDrained(ctx context.Context, admin string) (time.Duration, error) {
	start := time.Now()
	for {
		m, err := promtext.Scrape(admin + "/metrics")
		if err != nil {
			return 0, err
		}
		n := m["strangler_spool_entries"]
		if n == 0 {
			return time.Since(start), nil
		}
		if time.Since(start) > time.Minute {
			return 0, fmt.Errorf("spool still holds %.0f events a minute after the run", n)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// keysScript is a wrk script that POSTs body with its user_id replaced by
// one of keys ids, round robin.
func keysScript(c contender) (string, error) {
	const uid = `"user_id":"u_bench0001"`
	pre, post, ok := strings.Cut(c.Body, uid)
	if !ok {
		return "", fmt.Errorf("%s: the event has no %s to vary", c.key(), uid)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "local pre, post = %q, %q\nlocal i = 0\nlocal hdr = {", pre+`"user_id":"u_bench`, `"`+post)
	for k, v := range c.Headers {
		fmt.Fprintf(&b, "[%q] = %q, ", k, v)
	}
	fmt.Fprintf(&b, "}\nrequest = function()\n  i = (i + 1) %% %d\n", c.Keys)
	fmt.Fprintf(&b, "  return wrk.format(%q, nil, hdr, pre .. string.format(\"%%0%dd\", i) .. post)\nend\n", orDefault(c.Method, "GET"), len(strconv.Itoa(c.Keys-1)))
	return b.String(), nil
}
