package routes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// applyWithin is the promise of the design: an edit applies within 1 s of
// the write. Scenario tests that are not about that promise use the looser
// waitLimit, since 2 shared cores under -race can stall a goroutine.
const (
	applyWithin = time.Second
	waitLimit   = 10 * time.Second
)

// configFile renders a config with static sections and the campaign
// route in mode.
func configFile(mode, extra string) string {
	c := `listen: ":8080"
kafka:
  brokers: []
  topic: events.v1
  sasl: {password: s3cret-old}
routes:
  - {name: events, methods: [POST], path: /api/v1/events, mode: shadow, handler: events.ingest}
  - name: campaign
    methods: [GET]
    path: "/api/v1/campaigns/{id}"
    mode: ` + mode + `
    handler: campaigns.get
    canary: {percent: 10}
`
	return c + extra
}

type watchEnv struct {
	t      *testing.T
	path   string // the path the watcher watches
	write  string // the path tests write new contents to
	live   *Live
	reg    *prometheus.Registry
	logs   *observer.ObservedLogs
	w      *Watcher
	reload chan os.Signal
	now    time.Time
	cancel context.CancelFunc
	done   chan error
}

type envOption func(*watchEnv, *WatchOptions)

// withSymlink makes the watched path a symlink to a file in another
// directory, which fsnotify on the link's directory cannot see change.
func withSymlink() envOption {
	return func(e *watchEnv, _ *WatchOptions) {
		real := filepath.Join(e.t.TempDir(), "real.yaml")
		if err := os.Rename(e.path, real); err != nil {
			e.t.Fatal(err)
		}
		if err := os.Symlink(real, e.path); err != nil {
			e.t.Fatal(err)
		}
		e.write = real
	}
}

func withPoll(d time.Duration) envOption {
	return func(_ *watchEnv, o *WatchOptions) { o.Poll = d }
}

// startWatcher writes the canary config, loads it and runs a Watcher on it.
// Poll defaults to an hour here, so changes seen are fsnotify's doing.
func startWatcher(t *testing.T, opts ...envOption) *watchEnv {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	e := &watchEnv{
		t: t, path: filepath.Join(t.TempDir(), "config.yaml"), reg: prometheus.NewRegistry(), logs: logs,
		reload: make(chan os.Signal, 1), now: time.Unix(1700000000, 0), done: make(chan error, 1),
	}
	e.write = e.path
	if err := os.WriteFile(e.path, []byte(configFile("canary", "")), 0o600); err != nil {
		t.Fatal(err)
	}
	e.live = NewLive(nil)
	o := WatchOptions{
		Path: e.path, Registry: testRegistry(), Publisher: e.live, Logger: zap.New(core), Registerer: e.reg,
		Poll: time.Hour, Reload: e.reload, Now: func() time.Time { return e.now },
	}
	for _, opt := range opts {
		opt(e, &o)
	}
	w, err := NewWatcher(o)
	if err != nil {
		t.Fatal(err)
	}
	e.w = w
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { e.done <- w.Run(ctx) }()
	t.Cleanup(e.stop)
	// Run adds its directory watch asynchronously; a write before that is
	// still caught by the poll in real use, but here the poll is an hour.
	select {
	case <-w.watching:
	case <-time.After(waitLimit):
		t.Fatal("Run did not set up its directory watch")
	}
	return e
}

func (e *watchEnv) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("Run returned %v, want nil", err)
		}
	case <-time.After(waitLimit):
		e.t.Fatal("Run did not return after cancel")
	}
}

func (e *watchEnv) writeFile(s string) {
	e.t.Helper()
	if err := os.WriteFile(e.write, []byte(s), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

func (e *watchEnv) campaignMode() Mode {
	for _, r := range e.live.Load().Routes() {
		if r.Name == "campaign" {
			return r.Mode
		}
	}
	return ""
}

// metric reads a registered metric's value (label result, if given).
func (e *watchEnv) metric(name, result string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if result == "" || labelIs(m, "result", result) {
				if m.Counter != nil {
					return m.Counter.GetValue()
				}
				return m.Gauge.GetValue()
			}
		}
	}
	e.t.Fatalf("metric %s{result=%q} not registered", name, result)
	return 0
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// waitReloaded waits for the n-th "config reloaded" line, the last step
// of a successful reload (after Live.Store and the metrics).
func (e *watchEnv) waitReloaded(n int) {
	e.t.Helper()
	waitFor(e.t, waitLimit, fmt.Sprintf("reload #%d logged", n), func() bool {
		return e.logs.FilterMessage("config reloaded").Len() >= n
	})
}

// waitRefused waits for the n-th refusal line (logged after the metric).
func (e *watchEnv) waitRefused(n int) {
	e.t.Helper()
	waitFor(e.t, waitLimit, fmt.Sprintf("refusal #%d logged", n), func() bool {
		return e.logs.FilterMessageSnippet("refused").Len() >= n
	})
}

func (e *watchEnv) reloads(result string) float64 {
	return e.metric("strangler_config_reloads_total", result)
}

// refusals returns the problems of every refused reload logged so far.
func (e *watchEnv) refusals() [][]string {
	var out [][]string
	for _, le := range e.logs.FilterMessageSnippet("refused").All() {
		if le.Level != zapcore.ErrorLevel {
			e.t.Errorf("refusal logged at %s", le.Level)
		}
		var ps []string
		if f, ok := le.ContextMap()["problems"].([]any); ok {
			for _, p := range f {
				ps = append(ps, p.(string))
			}
		}
		out = append(out, ps)
	}
	return out
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func TestWatcherAppliesEditWithinOneSecond(t *testing.T) {
	e := startWatcher(t)
	e.now = e.now.Add(time.Minute) // read by the watcher only after the write below
	if got := e.metric("strangler_config_last_reload_success_timestamp_seconds", ""); got != 1700000000 {
		t.Errorf("last success at start = %v, want 1700000000", got)
	}
	e.writeFile(configFile("ported", ""))
	took := waitFor(t, applyWithin, "ported campaign applied", func() bool { return e.campaignMode() == ModePorted })
	t.Logf("applied %s after the write", took)
	e.waitReloaded(1)

	if got := e.reloads(ResultOK); got != 1 {
		t.Errorf("reloads ok = %v, want 1", got)
	}
	if got := e.metric("strangler_config_last_reload_success_timestamp_seconds", ""); got != 1700000060 {
		t.Errorf("last success = %v, want 1700000060", got)
	}
	ok := e.logs.FilterMessage("config reloaded").All()
	if len(ok) != 1 || ok[0].Level != zapcore.InfoLevel {
		t.Fatalf("got %d 'config reloaded' lines, want 1 at info", len(ok))
	}
	f := ok[0].ContextMap()
	if f["routes"] != int64(2) || f["ported"] != int64(1) || f["shadow"] != int64(1) || f["canary"] != int64(0) || f["all_legacy"] != false {
		t.Errorf("reload line fields %v", f)
	}
	if ch, _ := f["changes"].([]any); len(ch) != 1 || ch[0] != "campaign: canary 10%→ported" {
		t.Errorf("changes = %v, want [campaign: canary 10%%→ported]", f["changes"])
	}
}

func TestWatcherReportsAddedRemovedAndKillSwitch(t *testing.T) {
	e := startWatcher(t)
	e.writeFile(strings.Replace(configFile("canary", ""), "routes:\n  - {name: events,", "all_legacy: true\nroutes:\n  - {name: events2,", 1))
	waitFor(t, waitLimit, "all_legacy applied", func() bool { return e.live.Load().AllLegacy() })
	e.waitReloaded(1)
	ok := e.logs.FilterMessage("config reloaded").All()
	if len(ok) != 1 {
		t.Fatalf("got %d reload lines", len(ok))
	}
	got, _ := ok[0].ContextMap()["changes"].([]any)
	want := []any{"all_legacy: false→true", "+events2 (shadow)", "-events (shadow)"}
	if len(got) != len(want) {
		t.Fatalf("changes = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("changes[%d] = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestWatcherTruncateThenWrite(t *testing.T) {
	e := startWatcher(t)
	// Two events, like a program that truncates, then writes.
	f, err := os.OpenFile(e.write, os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if _, err := f.WriteString(configFile("ported", "")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitLimit, "ported campaign applied", func() bool { return e.campaignMode() == ModePorted })
	e.waitReloaded(1)
	// The empty intermediate file is debounced away, or, if the watcher was
	// descheduled long enough to read it, refused: never applied.
	if got := e.reloads(ResultOK); got != 1 {
		t.Errorf("reloads ok = %v, want exactly 1", got)
	}
}

func TestWatcherRefusesPartialWriteThenAppliesComplete(t *testing.T) {
	e := startWatcher(t)
	before := e.live.Load()
	full := configFile("ported", "")
	partial := full[:strings.Index(full, "mode: ported")+len("mode: po")] + "\n    handler: [campaigns"
	e.writeFile(partial)
	waitFor(t, waitLimit, "partial write refused", func() bool { return e.reloads(ResultInvalid) == 1 })
	e.waitRefused(1)
	if e.live.Load() != before {
		t.Fatal("table replaced by a partial write")
	}
	r := e.refusals()
	if len(r) != 1 || len(r[0]) != 1 || !strings.Contains(r[0][0], "yaml") {
		t.Errorf("refusal problems = %q, want one yaml parse error", r)
	}

	e.writeFile(full)
	waitFor(t, waitLimit, "complete write applied", func() bool { return e.campaignMode() == ModePorted })
}

func TestWatcherRemoveAndRecreate(t *testing.T) {
	e := startWatcher(t)
	if err := os.Remove(e.path); err != nil {
		t.Fatal(err)
	}
	e.writeFile(configFile("ported", ""))
	waitFor(t, waitLimit, "recreated file applied", func() bool { return e.campaignMode() == ModePorted })

	// And again, so the watch demonstrably survived the first recreate.
	if err := os.Remove(e.path); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // longer than the debounce: the removal is seen alone
	e.writeFile(configFile("legacy", ""))
	waitFor(t, waitLimit, "second recreate applied", func() bool { return e.campaignMode() == ModeLegacy })
	if got := e.reloads(ResultReadError); got != 1 {
		t.Errorf("read errors = %v, want 1 (the file was missing for one debounce)", got)
	}
}

func TestWatcherRenameOver(t *testing.T) {
	e := startWatcher(t)
	for i, mode := range []string{"ported", "legacy"} {
		tmp := filepath.Join(filepath.Dir(e.path), ".config.yaml.swp")
		if err := os.WriteFile(tmp, []byte(configFile(mode, "")), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, e.path); err != nil {
			t.Fatal(err)
		}
		waitFor(t, waitLimit, "atomic save applied", func() bool { return e.campaignMode() == Mode(mode) })
		e.waitReloaded(i + 1)
		if got := e.reloads(ResultOK); got != float64(i+1) {
			t.Errorf("reloads ok = %v, want %d", got, i+1)
		}
	}
}

func TestWatcherReloadSignalCatchesWhatFsnotifyMissed(t *testing.T) {
	// The watched path is a symlink into another directory: writes to the
	// target raise no event in the watched directory, and Poll is an hour.
	e := startWatcher(t, withSymlink())
	e.writeFile(configFile("ported", ""))
	time.Sleep(300 * time.Millisecond) // asserting an absence: three debounces
	if e.campaignMode() != ModeCanary {
		t.Fatal("change applied without a trigger; the test no longer shows the signal path")
	}
	e.reload <- syscall.SIGHUP
	waitFor(t, waitLimit, "signal-triggered reload applied", func() bool { return e.campaignMode() == ModePorted })
	e.waitReloaded(1)

	// A signal with nothing new says so and does not reload.
	e.reload <- syscall.SIGHUP
	waitFor(t, waitLimit, "unchanged reported", func() bool {
		return e.logs.FilterMessageSnippet("file unchanged").Len() == 1
	})
	if got := e.reloads(ResultOK); got != 1 {
		t.Errorf("reloads ok = %v, want 1", got)
	}
}

func TestWatcherPollFallback(t *testing.T) {
	e := startWatcher(t, withSymlink(), withPoll(100*time.Millisecond))
	e.writeFile(configFile("ported", ""))
	waitFor(t, waitLimit, "polled change applied", func() bool { return e.campaignMode() == ModePorted })
}

func TestWatcherRefusesStaticChange(t *testing.T) {
	e := startWatcher(t)
	before := e.live.Load()
	changed := strings.NewReplacer(
		"brokers: []", "brokers: [b1:9092, b2:9092]",
		`listen: ":8080"`, `listen: ":9090"`,
		"s3cret-old", "s3cret-new",
	).Replace(configFile("ported", "hotcache: {refresh: 1h}\n"))
	e.writeFile(changed)
	waitFor(t, waitLimit, "static change refused", func() bool { return e.reloads(ResultStaticChanged) == 1 })
	e.waitRefused(1)
	if e.live.Load() != before {
		t.Fatal("table replaced although a static section changed")
	}
	want := []string{
		"config reload not supported for hotcache.refresh: old=<unset>, new=1h",
		"config reload not supported for kafka.brokers: old=[], new=[b1:9092 b2:9092]",
		"config reload not supported for kafka.sasl.password: old=<redacted>, new=<redacted>",
		`config reload not supported for listen: old=:8080, new=:9090`,
	}
	r := e.refusals()
	if len(r) != 1 || strings.Join(r[0], "\n") != strings.Join(want, "\n") {
		t.Errorf("refusal problems:\n%s\nwant:\n%s", strings.Join(r[0], "\n"), strings.Join(want, "\n"))
	}
	for _, le := range e.logs.All() {
		for _, v := range le.ContextMap() {
			if strings.Contains(strings.Join(anyStrings(v), " "), "s3cret") {
				t.Errorf("secret logged: %v", le.ContextMap())
			}
		}
	}

	// Putting the static sections back lets the routes edit through.
	e.writeFile(configFile("ported", ""))
	waitFor(t, waitLimit, "routes-only change applied", func() bool { return e.campaignMode() == ModePorted })
}

func anyStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			out = append(out, anyStrings(x)...)
		}
		return out
	}
	return nil
}

func TestWatcherRefusesUnknownHandler(t *testing.T) {
	e := startWatcher(t)
	before := e.live.Load()
	e.writeFile(strings.Replace(configFile("ported", ""), "handler: campaigns.get", "handler: campaigns.gett", 1))
	waitFor(t, waitLimit, "unknown handler refused", func() bool { return e.reloads(ResultInvalid) == 1 })
	e.waitRefused(1)
	if e.live.Load() != before {
		t.Fatal("table replaced by an invalid config")
	}
	want := `routes[1] "campaign": handler "campaigns.gett" is not registered; known handlers: campaigns.get, campaigns.list, events.ingest`
	if r := e.refusals(); len(r) != 1 || len(r[0]) != 1 || r[0][0] != want {
		t.Errorf("refusal problems = %q, want [%q]", r, want)
	}
	// The same bad bytes are not re-tried on every poll or signal.
	e.reload <- syscall.SIGHUP
	waitFor(t, waitLimit, "unchanged reported", func() bool { return e.logs.FilterMessageSnippet("file unchanged").Len() == 1 })
	if got := e.reloads(ResultInvalid); got != 1 {
		t.Errorf("invalid reloads = %v, want 1", got)
	}
}

func TestWatcherRunStopsAndLeavesNoGoroutines(t *testing.T) {
	e := startWatcher(t)
	if err := e.w.Run(context.Background()); err == nil {
		t.Error("second concurrent Run succeeded")
	}
	e.stop()
	goleak.VerifyNone(t)
}

func TestNewWatcherOptions(t *testing.T) {
	live := NewLive(nil)
	path := filepath.Join(t.TempDir(), "c.yaml")
	if _, err := NewWatcher(WatchOptions{Publisher: live}); err == nil {
		t.Error("NewWatcher without Path succeeded")
	}
	if _, err := NewWatcher(WatchOptions{Path: path}); err == nil {
		t.Error("NewWatcher without Publisher succeeded")
	}
	if _, err := NewWatcher(WatchOptions{Path: path, Publisher: live}); err == nil {
		t.Error("NewWatcher on a missing file succeeded")
	}
	if err := os.WriteFile(path, []byte("routes: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if _, err := NewWatcher(WatchOptions{Path: path, Publisher: live, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewWatcher(WatchOptions{Path: path, Publisher: live, Registerer: reg}); err == nil {
		t.Error("second watcher registered the same metrics without error")
	}
}

// refusing is a Publisher that refuses every table.
type refusing struct{ err error }

func (r refusing) Publish(*Table) error { return r.err }

// NewWatcher compiles and publishes the first table from the bytes it is
// given, and fails when they do not validate or the publisher refuses.
func TestNewWatcherPublishesFirstTable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	// The file on disk is not what NewWatcher reads when given Data.
	if err := os.WriteFile(path, []byte("routes: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	live := NewLive(nil)
	if _, err := NewWatcher(WatchOptions{Path: path, Data: []byte(matchYAML), Registry: testRegistry(), Publisher: live}); err != nil {
		t.Fatal(err)
	}
	if n := len(live.Load().Routes()); n != 10 {
		t.Errorf("published %d routes, want 10 (from Data, not the file)", n)
	}
	bad := []byte("routes:\n  - {name: x, path: /x, mode: ported, handler: nope}\n")
	if _, err := NewWatcher(WatchOptions{Path: path, Data: bad, Registry: testRegistry(), Publisher: live}); err == nil ||
		!strings.Contains(err.Error(), `routes[0] "x": handler "nope" is not registered`) {
		t.Errorf("bad routes: error = %v", err)
	}
	_, err := NewWatcher(WatchOptions{Path: path, Data: []byte(matchYAML), Registry: testRegistry(), Publisher: refusing{errors.New("capture file will not open")}})
	if err == nil || !strings.Contains(err.Error(), "capture file will not open") {
		t.Errorf("refused first table: error = %v", err)
	}
}

// gate publishes into live while open, and refuses while closed.
type gate struct {
	live   *Live
	closed atomic.Bool
}

func (g *gate) Publish(t *Table) error {
	if g.closed.Load() {
		return errors.New("capture file will not open")
	}
	return g.live.Publish(t)
}

// A table the publisher refuses is a refused reload (resource_error) that
// keeps the running table; the same bytes are retried on a signal, not on
// every poll.
func TestWatcherRefusedByPublisher(t *testing.T) {
	g := &gate{}
	e := startWatcher(t, func(e *watchEnv, o *WatchOptions) { g.live = e.live; o.Publisher = g })
	before := e.live.Load()
	g.closed.Store(true)
	e.writeFile(configFile("ported", ""))
	waitFor(t, waitLimit, "refused by the publisher", func() bool { return e.reloads(ResultResourceError) == 1 })
	e.waitRefused(1)
	if e.live.Load() != before {
		t.Fatal("table replaced although the publisher refused it")
	}
	if r := e.refusals(); len(r) != 1 || len(r[0]) != 1 || r[0][0] != "capture file will not open" {
		t.Errorf("refusal problems = %q", r)
	}
	g.closed.Store(false)
	e.reload <- syscall.SIGHUP
	waitFor(t, waitLimit, "retried on the signal", func() bool { return e.campaignMode() == ModePorted })
	e.waitReloaded(1)
	if ch, _ := e.logs.FilterMessage("config reloaded").All()[0].ContextMap()["changes"].([]any); len(ch) != 1 || ch[0] != "campaign: canary 10%→ported" {
		t.Errorf("changes = %v: the change is against the table in force, not the refused attempt", ch)
	}
}

// The reload line names every field an edit changed.
func TestWatcherListsChangedFields(t *testing.T) {
	e := startWatcher(t)
	e.writeFile(strings.Replace(configFile("canary", ""), "handler: events.ingest}",
		"handler: events.ingest, shadow: {headers: [Content-Type], max_body_bytes: 4096}, capture: {percent: 1, file: /tmp/c.jsonl}}", 1))
	e.waitReloaded(1)
	got, _ := e.logs.FilterMessage("config reloaded").All()[0].ContextMap()["changes"].([]any)
	if len(got) != 1 || got[0] != "events: updated shadow, capture" {
		t.Errorf("changes = %v", got)
	}
	e.writeFile(strings.Replace(configFile("canary", ""), "handler: events.ingest}",
		"handler: events.ingest, shadow: {headers: [Content-Type, Location], max_body_bytes: 4096}, capture: {percent: 2, file: /tmp/c.jsonl}}", 1))
	e.waitReloaded(2)
	got, _ = e.logs.FilterMessage("config reloaded").All()[1].ContextMap()["changes"].([]any)
	if len(got) != 1 || got[0] != "events: updated shadow.headers, capture.percent" {
		t.Errorf("changes = %v", got)
	}
}

// infoSums lists the sha256 labels of strangler_config_info set to 1.
func (e *watchEnv) infoSums() []string {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != "strangler_config_info" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "sha256" && m.GetGauge().GetValue() == 1 {
					out = append(out, l.GetValue())
				}
			}
		}
	}
	return out
}

func sumOf(s string) string {
	b := sha256.Sum256([]byte(s))
	return hex.EncodeToString(b[:])
}

// A fleet compares strangler_config_info across instances: it must name
// the file whose table is in force, never a refused one.
func TestConfigInfoNamesTheFileInForce(t *testing.T) {
	e := startWatcher(t)
	if got, want := e.infoSums(), []string{sumOf(configFile("canary", ""))}; !slices.Equal(got, want) {
		t.Fatalf("at start: sums %v, want %v", got, want)
	}
	ported := configFile("ported", "")
	e.writeFile(ported)
	e.waitReloaded(1)
	if got, want := e.infoSums(), []string{sumOf(ported)}; !slices.Equal(got, want) {
		t.Fatalf("after the reload: sums %v, want %v", got, want)
	}
	if got := e.logs.FilterMessage("config reloaded").All()[0].ContextMap()["sha256"]; got != sumOf(ported) {
		t.Errorf("reload line sha256 = %v, want %s", got, sumOf(ported))
	}
	e.writeFile(strings.Replace(ported, "handler: campaigns.get", "handler: campaigns.gett", 1))
	e.waitRefused(1)
	if got, want := e.infoSums(), []string{sumOf(ported)}; !slices.Equal(got, want) {
		t.Errorf("after a refused edit: sums %v, want %v (the table in force)", got, want)
	}
}
