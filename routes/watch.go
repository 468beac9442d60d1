package routes

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/internal/promreg"
)

// Reload results, the values of the `result` label.
const (
	ResultOK            = "ok"
	ResultInvalid       = "invalid"
	ResultStaticChanged = "static_changed"
	ResultReadError     = "read_error"
	// ResultResourceError: the table validated, but its publisher could
	// not build what it needs (a capture file would not open).
	ResultResourceError = "resource_error"
)

// WatchOptions configures a Watcher.
type WatchOptions struct {
	// Path of the config file. Required.
	Path string
	// Data is the file as the process read it at start. The static
	// sections the process runs with, the baseline that later edits of
	// them are refused against, the first table and the sum that tells an
	// edit come from these bytes, so an edit saved after that one read is
	// a change Run sees, applies or refuses — never a baseline taken
	// silently. Nil: NewWatcher reads Path.
	Data []byte
	// Registry resolves route handlers. Nil: no handlers, so only legacy
	// routes validate.
	Registry Registry
	// Publisher makes each table live: the first one (from Data) in
	// NewWatcher, then every edit that validates. Required.
	Publisher Publisher
	// Logger; nil: no logs. Named "routes" by NewWatcher.
	Logger *zap.Logger
	// Registerer for the reload metrics; nil: metrics are kept but not
	// registered anywhere.
	Registerer prometheus.Registerer
	// Debounce waits this long after the last file event before reloading,
	// so an editor's truncate+write or remove+create is read once, whole.
	// Zero: 100ms.
	Debounce time.Duration
	// Poll re-reads the file this often and reloads when its sha256
	// changed, for changes fsnotify cannot see (network file systems, a
	// symlink whose target lives elsewhere, a lost watch). Zero: 1s.
	Poll time.Duration
	// Reload triggers a reload on each receive; main wires SIGHUP to it.
	// Nil: no manual trigger.
	Reload <-chan os.Signal
	// Now is the clock for the last-success metric. Nil: time.Now.
	Now func() time.Time
}

// Watcher reloads the route table when the config file changes. Each
// reload reads the file, skips it if its sha256 is unchanged since the last
// attempt, parses it into a fresh viper, refuses it if any top-level key
// other than routes and all_legacy differs from the file the process
// started with (WatchOptions.Data), then decodes, validates and compiles
// the routes and hands the table to the Publisher, which may refuse it
// too. A refused reload keeps the running table and logs one Error line
// with every reason; an accepted one logs what changed, found by comparing
// the decoded route configs field by field (Changes).
//
// It watches the file's directory rather than the file, so editors' atomic
// saves (write a temp file, rename it over) and remove+recreate are seen.
type Watcher struct {
	o        WatchOptions
	path     string // absolute, clean
	dir      string
	log      *zap.Logger
	baseline map[string]any // static leaves of the initial file, by dotted key
	pub      Publisher
	running  atomic.Bool
	// watching is closed once the first Run has its directory watch in
	// place (or has given up on it) and has looked at the file once, so
	// tests can write without racing either.
	watching     chan struct{}
	watchingOnce sync.Once

	// Owned by the Run goroutine; current is also read by DryRun, under mu.
	lastSum     [sha256.Size]byte
	lastReadErr string
	mu          sync.Mutex
	current     Config // the decoded routes of the table in force
	// retry: the last attempt was refused by the Publisher, which depends
	// on more than the file, so a signal retries the same bytes.
	retry bool

	reloads     *prometheus.CounterVec
	lastSuccess prometheus.Gauge
	info        *prometheus.GaugeVec // the sha256 of the file in force
}

// NewWatcher takes the file's first contents (WatchOptions.Data, or one
// read of Path) as the baseline for static sections and for change
// detection, registers the reload metrics, and compiles and publishes the
// first table from the same bytes. It fails if that table does not
// validate or the Publisher refuses it.
func NewWatcher(o WatchOptions) (*Watcher, error) {
	if o.Path == "" {
		return nil, errors.New("routes watcher: Path is required")
	}
	if o.Publisher == nil {
		return nil, errors.New("routes watcher: Publisher is required")
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Debounce <= 0 {
		o.Debounce = 100 * time.Millisecond
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	abs, err := filepath.Abs(o.Path)
	if err != nil {
		return nil, fmt.Errorf("routes watcher %s: %w", o.Path, err)
	}
	w := &Watcher{o: o, path: abs, dir: filepath.Dir(abs), log: o.Logger.Named("routes"), pub: o.Publisher, watching: make(chan struct{})}

	data := o.Data
	if data == nil {
		if data, err = os.ReadFile(abs); err != nil {
			return nil, fmt.Errorf("routes watcher: %w", err)
		}
	}
	v, err := parse(abs, data)
	if err != nil {
		return nil, fmt.Errorf("load routes %s: %w", abs, err)
	}
	w.baseline = staticLeaves(v.AllSettings())
	w.lastSum = sha256.Sum256(data)
	c, err := Decode(v)
	if err != nil {
		return nil, fmt.Errorf("load routes %s: %w", abs, err)
	}
	t, err := Compile(c, o.Registry)
	if err != nil {
		return nil, fmt.Errorf("load routes %s: %w", abs, err)
	}

	w.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strangler_config_reloads_total",
		Help: "Route table reload attempts by result (ok, invalid, static_changed, read_error, resource_error).",
	}, []string{"result"})
	for _, r := range []string{ResultOK, ResultInvalid, ResultStaticChanged, ResultReadError, ResultResourceError} {
		w.reloads.WithLabelValues(r)
	}
	w.lastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "strangler_config_last_reload_success_timestamp_seconds",
		Help: "Unix time of the last successful route table load (start-up counts).",
	})
	// A fleet's instances each watch their own copy of the file: the sum
	// in force is what tells an operator they run the same table.
	w.info = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "strangler_config_info",
		Help: "1, labelled with the sha256 of the config file whose route table is in force.",
	}, []string{"sha256"})
	if err := promreg.Register(o.Registerer, "routes watcher", w.reloads, w.lastSuccess, w.info); err != nil {
		return nil, err
	}
	if err := w.pub.Publish(t); err != nil {
		return nil, fmt.Errorf("load routes %s: %w", abs, err)
	}
	w.info.WithLabelValues(hex.EncodeToString(w.lastSum[:])).Set(1)
	w.current = c
	w.lastSuccess.Set(unixSeconds(o.Now()))
	return w, nil
}

// Run watches until ctx is done, then stops its file watch and returns nil.
// Only one Run may be active at a time.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("routes watcher: already running")
	}
	defer w.running.Store(false)

	var events <-chan fsnotify.Event
	var errs <-chan error
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		w.log.Warn("file watch unavailable; relying on polling and SIGHUP", zap.Duration("poll", w.o.Poll), zap.Error(err))
	} else {
		// Close stops fsnotify's reader goroutine before Run returns.
		defer fw.Close()
		w.addWatch(fw)
		events, errs = fw.Events, fw.Errors
	}
	w.log.Info("watching config file", zap.String("path", w.path),
		zap.Duration("debounce", w.o.Debounce), zap.Duration("poll", w.o.Poll))
	// An edit saved between the start-up read and the watch raised no
	// event this watch can see: look once now.
	w.reload("start")
	w.watchingOnce.Do(func() { close(w.watching) })

	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	poll := time.NewTicker(w.o.Poll)
	defer poll.Stop()
	reload := w.o.Reload

	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if filepath.Clean(ev.Name) == w.path {
				debounce.Reset(w.o.Debounce)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// An overflow means lost events: look at the file anyway.
			w.log.Warn("file watch error", zap.Error(err))
			debounce.Reset(w.o.Debounce)
		case <-debounce.C:
			w.reload("fsnotify")
		case <-poll.C:
			if fw != nil && len(fw.WatchList()) == 0 {
				// The directory was removed or renamed; watch it again once
				// it is back.
				w.addWatch(fw)
			}
			w.reload("poll")
		case _, ok := <-reload:
			if !ok {
				reload = nil
				continue
			}
			w.reload("signal")
		}
	}
}

func (w *Watcher) addWatch(fw *fsnotify.Watcher) {
	if err := fw.Add(w.dir); err != nil {
		w.log.Warn("cannot watch config directory; relying on polling and SIGHUP",
			zap.String("dir", w.dir), zap.Duration("poll", w.o.Poll), zap.Error(err))
	}
}

// reload runs one attempt; trigger says what caused it, for the log.
func (w *Watcher) reload(trigger string) {
	data, err := os.ReadFile(w.path)
	if err != nil {
		// Log and count a read error once per streak, not once per poll.
		if msg := err.Error(); msg != w.lastReadErr {
			w.lastReadErr = msg
			w.refuse(trigger, ResultReadError, []string{msg})
		}
		return
	}
	w.lastReadErr = ""
	sum := sha256.Sum256(data)
	if sum == w.lastSum && !(trigger == "signal" && w.retry) {
		if trigger == "signal" {
			w.log.Info("config reload requested; file unchanged since the last attempt", zap.String("path", w.path))
		}
		return
	}
	w.lastSum = sum
	w.retry = false

	t, c, result, problems := w.check(data)
	if t == nil {
		w.refuse(trigger, result, problems)
		return
	}
	if err := w.pub.Publish(t); err != nil {
		// Not the file's fault alone: a signal tries the same bytes again
		// once the resource is fixed.
		w.retry = true
		w.refuse(trigger, ResultResourceError, []string{err.Error()})
		return
	}
	w.mu.Lock()
	changes := Changes(w.current, c)
	w.current = c
	w.mu.Unlock()
	w.reloads.WithLabelValues(ResultOK).Inc()
	w.lastSuccess.Set(unixSeconds(w.o.Now()))
	w.info.Reset()
	w.info.WithLabelValues(hex.EncodeToString(sum[:])).Set(1)

	counts := map[Mode]int{}
	for _, r := range t.routes {
		counts[r.Mode]++
	}
	fields := []zap.Field{
		zap.String("path", w.path), zap.String("trigger", trigger), zap.String("sha256", hex.EncodeToString(sum[:])),
		zap.Int("routes", len(t.routes)), zap.Bool("all_legacy", t.allLegacy),
	}
	for _, m := range modes {
		fields = append(fields, zap.Int(string(m), counts[m]))
	}
	fields = append(fields, zap.Strings("changes", changes))
	w.log.Info("config reloaded", fields...)
}

// check turns file contents into a table and its decoded routes, or says
// why not.
func (w *Watcher) check(data []byte) (t *Table, c Config, result string, problems []string) {
	if len(bytes.TrimSpace(data)) == 0 {
		// Most likely caught between an editor's truncate and its write.
		return nil, c, ResultInvalid, []string{"config file is empty; keeping the current routes"}
	}
	v, err := parse(w.path, data)
	if err != nil {
		return nil, c, ResultInvalid, []string{err.Error()}
	}
	static := staticDiff(w.baseline, staticLeaves(v.AllSettings()))
	c, err = Decode(v)
	if err == nil {
		t, err = Compile(c, w.o.Registry)
	}
	switch {
	case len(static) > 0:
		return nil, c, ResultStaticChanged, append(static, Problems(err)...)
	case err != nil:
		return nil, c, ResultInvalid, Problems(err)
	}
	return t, c, ResultOK, nil
}

func (w *Watcher) refuse(trigger, result string, problems []string) {
	w.reloads.WithLabelValues(result).Inc()
	w.log.Error("config reload refused; keeping the current routes",
		zap.String("path", w.path), zap.String("trigger", trigger),
		zap.String("result", result), zap.Strings("problems", problems))
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// reloadable are the top-level keys this package owns; all others are
// static.
var reloadable = [...]string{"routes", "all_legacy"}

// staticLeaves flattens viper's AllSettings to dotted keys, leaving out
// the reloadable keys.
func staticLeaves(all map[string]any) map[string]any {
	out := map[string]any{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			key := prefix + k
			if prefix == "" && slices.Contains(reloadable[:], k) {
				continue
			}
			// An empty section has no leaves, so it equals an absent one.
			if sub, ok := v.(map[string]any); ok {
				walk(key+".", sub)
				continue
			}
			out[key] = v
		}
	}
	walk("", all)
	return out
}

// staticDiff says, NATS-style and in key order, which static settings
// differ. Values of secret-looking keys are redacted.
func staticDiff(old, cur map[string]any) []string {
	union := maps.Clone(old)
	maps.Copy(union, cur)
	keys := slices.Sorted(maps.Keys(union))
	var out []string
	for _, k := range keys {
		a, inOld := old[k]
		b, inCur := cur[k]
		if inOld == inCur && reflect.DeepEqual(a, b) {
			continue
		}
		out = append(out, fmt.Sprintf("config reload not supported for %s: old=%s, new=%s",
			k, showValue(k, a, inOld), showValue(k, b, inCur)))
	}
	return out
}

func showValue(key string, v any, set bool) string {
	switch {
	case !set:
		return "<unset>"
	case isSecretKey(key):
		return "<redacted>"
	}
	return fmt.Sprintf("%v", v)
}

func isSecretKey(key string) bool {
	leaf := key[strings.LastIndexByte(key, '.')+1:]
	for _, s := range []string{"password", "secret", "token", "credential"} {
		if strings.Contains(leaf, s) {
			return true
		}
	}
	return false
}
