package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/legacy-passthrough"
	"github.com/strangler-proxy/strangler/ported/delivery"
	"github.com/strangler-proxy/strangler/ported/events"
	"github.com/strangler-proxy/strangler/ported/hotcache"
	"github.com/strangler-proxy/strangler/ported/kafka"
	"github.com/strangler-proxy/strangler/ported/session"
	"github.com/strangler-proxy/strangler/ported/spool"
	"github.com/strangler-proxy/strangler/proxy"
	"github.com/strangler-proxy/strangler/proxy/shadowreport"
)

// config.yaml is the reference: the values it spells out for the ported
// components must be their packages' defaults, or `make run` would not run
// with "the embedded defaults" and the comments would lie.
func TestShippedConfigSpellsOutTheDefaults(t *testing.T) {
	c, _, err := loadConfig(filepath.Join("..", "..", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Kafka.Brokers) == 0 {
		c.Kafka.Brokers = nil // `brokers: []` and no key mean the same
	}
	if len(c.Legacy.Upstreams) == 0 && len(c.Legacy.TrustedProxies) == 0 {
		c.Legacy.Upstreams, c.Legacy.TrustedProxies = nil, nil
	}
	// The shadow section's learner and store take their defaults where
	// they are used; the front door's part is proxy.Config's.
	front, noise := c.Proxy, c.Proxy.Shadow.Noise
	front.Shadow.Noise, front.Shadow.Store, front.Shadow.DiffLog = compare.NoiseConfig{}, shadowreport.StoreConfig{}, shadowreport.DiffLogConfig{}
	if len(front.TLS.Certificates) == 0 && len(front.Server.ProxyProtocol.Trusted) == 0 {
		front.TLS.Certificates, front.Server.ProxyProtocol.Trusted = nil, nil
	}
	tests := []struct {
		section   string
		got, want any
	}{
		{"listen, admin_listen, server, tls, shadow", front, proxy.Config{}.WithDefaults()},
		{"log", c.Log, logConfig{}.WithDefaults()},
		{"shadow.noise", noise, compare.NoiseConfig{
			MinDiffs: compare.DefaultNoiseMinDiffs, RelativeThreshold: compare.DefaultNoiseRelativeThreshold,
			AbsoluteThreshold: compare.DefaultNoiseAbsoluteThreshold, MaxPaths: compare.DefaultNoiseMaxPaths,
			Warmup: compare.DefaultNoiseWarmup, Every: compare.DefaultNoiseEvery, SettleAfter: compare.DefaultNoiseSettleAfter,
			SettledEvery: compare.DefaultNoiseSettledEvery, MinObservations: compare.DefaultMinObservations,
			MinBits: compare.DefaultMinBits, ClockSkew: compare.DefaultClockSkew, MaxValues: compare.DefaultMaxValues,
		}},
		{"shadow.diff_log", c.Proxy.Shadow.DiffLog, shadowreport.DiffLogConfig{
			MaxBytes: shadowreport.DefaultDiffLogMaxBytes, Queue: shadowreport.DefaultDiffLogQueue}},
		{"shadow.store", c.Proxy.Shadow.Store, shadowreport.StoreConfig{
			Groups: shadowreport.DefaultStoreGroups, Examples: shadowreport.DefaultStoreExamples, MaxBody: shadowreport.DefaultStoreMaxBody}},
		{"events", c.Events, events.Config{}.WithDefaults()},
		{"spool", c.Spool, spool.Config{}.WithDefaults()},
		{"kafka", c.Kafka, kafka.Config{}.WithDefaults()},
		{"hotcache", c.HotCache, hotcache.Config{Source: c.HotCache.Source}.WithDefaults()},
		{"legacy", c.Legacy, legacy.Config{Upstream: c.Legacy.Upstream}.WithDefaults()},
		{"session", c.Session, session.Config{Backend: session.BackendFiles, SavePath: "var/sessions", Write: session.WriteConfig{Handlers: c.Session.Write.Handlers}}.WithDefaults()},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: config.yaml says\n%+v\nthe package's defaults are\n%+v", tt.section, tt.got, tt.want)
		}
	}
	if c.Kafka.Enabled() || c.Events.Delivery != events.DeliverySpool {
		t.Errorf("make run must keep events in the spool: brokers %v, delivery %q", c.Kafka.Brokers, c.Events.Delivery)
	}
	if want := "file://examples/monolith/data/campaigns.json"; c.HotCache.Source != want {
		t.Errorf("hotcache.source %q, want the shipped file %q", c.HotCache.Source, want)
	}
}

func TestSpoolCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	path := writeConfig(t, minimal+fmt.Sprintf("spool:\n  dir: %q\n", dir))
	dump := func() (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run([]string{"spool", "-config", path}, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	if code, out, errOut := dump(); code != 0 || out != "" || !strings.Contains(errOut, "nothing waiting") {
		t.Fatalf("no spool yet: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	s, err := spool.Open(spool.Config{Dir: dir}, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []delivery.Message{
		{Key: []byte("u_alice0001"), Value: []byte(`{"n":1}`), EventID: "e-1"},
		{Key: []byte("u_bob000002"), Value: []byte(`{"n":2}`), EventID: "e-2"},
	}
	for _, m := range want {
		if err := s.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := dump()
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(want) {
		t.Fatalf("want %d JSONL lines, got:\n%s", len(want), out)
	}
	for i, line := range lines {
		var r spool.DumpRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, line)
		}
		if r.EventID != want[i].EventID || r.Key != string(want[i].Key) || string(r.Value) != string(want[i].Value) {
			t.Errorf("line %d: %s, want %+v", i, line, want[i])
		}
	}

	bad := writeConfig(t, minimal+"spool:\n  dirr: x\n")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"spool", "-config", bad}, &stdout, &stderr); code != exitRunError || !strings.Contains(stderr.String(), `unknown key "spool.dirr"`) {
		t.Errorf("bad config: exit %d, stderr %q", code, &stderr)
	}
}

// mapstructureKeys lists the dotted keys a config struct decodes, leaves
// only (a squashed struct's keys are its parent's).
func mapstructureKeys(t reflect.Type, prefix string) []string {
	var out []string
	for f := range t.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		key := prefix + name
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case opts == "squash":
			out = append(out, mapstructureKeys(ft, prefix)...)
		case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Duration]():
			out = append(out, mapstructureKeys(ft, key+".")...)
		default:
			out = append(out, key)
		}
	}
	return out
}

// config.yaml is the reference: every key the static sections decode is
// there (so its comment is too), and only routes and all_legacy are left
// to the routes package.
func TestShippedConfigNamesEveryKey(t *testing.T) {
	_, v, err := loadConfig(filepath.Join("..", "..", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, k := range v.AllKeys() {
		have[k] = true
	}
	keys := mapstructureKeys(reflect.TypeFor[fileConfig](), "")
	if len(keys) < 100 {
		t.Fatalf("found only %d keys in fileConfig: the walk is broken", len(keys))
	}
	for _, k := range keys {
		if !have[k] {
			t.Errorf("config.yaml does not name %s", k)
		}
	}
}
