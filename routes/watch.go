package routes

import (
	"bytes"
	"context"
	"crypto/sha256"
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
)

// WatchOptions configures a Watcher.
type WatchOptions struct {
	// Path of the config file. Required.
	Path string
	// Registry resolves route handlers. Nil: no handlers, so only legacy
	// routes validate.
	Registry Registry
	// Live receives each table that validates. Required.
	Live *Live
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
// other than routes and all_legacy differs from the file as it was when
// the Watcher was created, then decodes, validates and compiles the routes
// and stores the table in Live. A refused reload keeps the running table
// and logs one Error line with every reason.
//
// It watches the file's directory rather than the file, so editors' atomic
// saves (write a temp file, rename it over) and remove+recreate are seen.
type Watcher struct {
	o        WatchOptions
	path     string // absolute, clean
	dir      string
	log      *zap.Logger
	baseline map[string]any // static leaves of the initial file, by dotted key
	running  atomic.Bool
	// watching is closed once the first Run has its directory watch in
	// place (or has given up on it), so tests can write without racing it.
	watching     chan struct{}
	watchingOnce sync.Once

	// Owned by the Run goroutine.
	lastSum     [sha256.Size]byte
	lastReadErr string

	reloads     *prometheus.CounterVec
	lastSuccess prometheus.Gauge
}

// NewWatcher reads the config file once, as the baseline for static
// sections and for change detection, and registers the reload metrics.
// Create it before loading the table main starts with, so that no edit can
// fall between the two unseen.
func NewWatcher(o WatchOptions) (*Watcher, error) {
	if o.Path == "" {
		return nil, errors.New("routes watcher: Path is required")
	}
	if o.Live == nil {
		return nil, errors.New("routes watcher: Live is required")
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
	w := &Watcher{o: o, path: abs, dir: filepath.Dir(abs), log: o.Logger.Named("routes"), watching: make(chan struct{})}

	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("routes watcher: %w", err)
	}
	v, err := parse(abs, data)
	if err != nil {
		return nil, fmt.Errorf("routes watcher %s: %w", abs, err)
	}
	w.baseline = staticLeaves(v.AllSettings())
	w.lastSum = sha256.Sum256(data)

	w.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strangler_config_reloads_total",
		Help: "Route table reload attempts by result (ok, invalid, static_changed, read_error).",
	}, []string{"result"})
	for _, r := range []string{ResultOK, ResultInvalid, ResultStaticChanged, ResultReadError} {
		w.reloads.WithLabelValues(r)
	}
	w.lastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "strangler_config_last_reload_success_timestamp_seconds",
		Help: "Unix time of the last successful route table load (start-up counts).",
	})
	w.lastSuccess.Set(unixSeconds(o.Now()))
	if err := promreg.Register(o.Registerer, "routes watcher", w.reloads, w.lastSuccess); err != nil {
		return nil, err
	}
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
	w.watchingOnce.Do(func() { close(w.watching) })
	w.log.Info("watching config file", zap.String("path", w.path),
		zap.Duration("debounce", w.o.Debounce), zap.Duration("poll", w.o.Poll))

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
	if sum == w.lastSum {
		if trigger == "signal" {
			w.log.Info("config reload requested; file unchanged since the last attempt", zap.String("path", w.path))
		}
		return
	}
	w.lastSum = sum

	t, result, problems := w.check(data)
	if t == nil {
		w.refuse(trigger, result, problems)
		return
	}
	old := w.o.Live.Load()
	w.o.Live.Store(t)
	w.reloads.WithLabelValues(ResultOK).Inc()
	w.lastSuccess.Set(unixSeconds(w.o.Now()))

	counts := map[Mode]int{}
	for _, r := range t.routes {
		counts[r.Mode]++
	}
	fields := []zap.Field{
		zap.String("path", w.path), zap.String("trigger", trigger),
		zap.Int("routes", len(t.routes)), zap.Bool("all_legacy", t.allLegacy),
	}
	for _, m := range modes {
		fields = append(fields, zap.Int(string(m), counts[m]))
	}
	fields = append(fields, zap.Strings("changes", diffTables(old, t)))
	w.log.Info("config reloaded", fields...)
}

// check turns file contents into a table, or says why not.
func (w *Watcher) check(data []byte) (t *Table, result string, problems []string) {
	if len(bytes.TrimSpace(data)) == 0 {
		// Most likely caught between an editor's truncate and its write.
		return nil, ResultInvalid, []string{"config file is empty; keeping the current routes"}
	}
	v, err := parse(w.path, data)
	if err != nil {
		return nil, ResultInvalid, []string{err.Error()}
	}
	static := staticDiff(w.baseline, staticLeaves(v.AllSettings()))
	c, err := Decode(v)
	if err == nil {
		t, err = Compile(c, w.o.Registry)
	}
	switch {
	case len(static) > 0:
		return nil, ResultStaticChanged, append(static, Problems(err)...)
	case err != nil:
		return nil, ResultInvalid, Problems(err)
	}
	return t, ResultOK, nil
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

// diffTables lists what a reload changed: `name: old→new` for routes whose
// mode (or canary percent) changed, `name: updated` for other edits,
// `+name (mode)` and `-name (mode)` for added and removed routes.
func diffTables(old, cur *Table) []string {
	out := []string{}
	if old.AllLegacy() != cur.AllLegacy() {
		out = append(out, fmt.Sprintf("all_legacy: %t→%t", old.AllLegacy(), cur.AllLegacy()))
	}
	before := map[string]*Route{}
	for _, r := range old.Routes() {
		before[r.Name] = r
	}
	seen := map[string]bool{}
	for _, r := range cur.Routes() {
		seen[r.Name] = true
		o, ok := before[r.Name]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("+%s (%s)", r.Name, modeLabel(r)))
		case modeLabel(o) != modeLabel(r):
			out = append(out, fmt.Sprintf("%s: %s→%s", r.Name, modeLabel(o), modeLabel(r)))
		case signature(o) != signature(r):
			out = append(out, r.Name+": updated")
		}
	}
	for _, r := range old.Routes() {
		if !seen[r.Name] {
			out = append(out, fmt.Sprintf("-%s (%s)", r.Name, modeLabel(r)))
		}
	}
	return out
}

func modeLabel(r *Route) string {
	if r.Mode == ModeCanary && r.Canary != nil && r.Canary.Percent != nil {
		return fmt.Sprintf("canary %g%%", *r.Canary.Percent)
	}
	return string(r.Mode)
}

// signature covers every configured field of r, for "updated".
func signature(r *Route) string {
	s := fmt.Sprintf("%v|%s|%s|%s|%t", r.Methods, r.Host, r.Path, r.HandlerName, r.Fallback)
	if r.Shadow != nil {
		sh := *r.Shadow
		s += fmt.Sprintf("|shadow %s %v %v %t %s", sh.Primary, *sh.SamplePercent, sh.Ignore, sh.AllowUnsafe, sh.Timeout)
	}
	if r.Canary != nil {
		c := *r.Canary
		s += fmt.Sprintf("|canary %d %s %s %x", c.Permille(), c.Sticky, c.OverrideHeader, sha256.Sum256([]byte(c.OverrideToken)))
	}
	return s
}
