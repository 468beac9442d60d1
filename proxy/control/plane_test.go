package control

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/routes"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newPlane is a Plane with a private registry, closed when the test ends.
func newPlane(t testing.TB) *Plane {
	t.Helper()
	p, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return p
}

// publish compiles rcs and publishes the table on p.
func publish(t testing.TB, p *Plane, rcs []routes.RouteConfig, allLegacy bool, reg routes.Registry) {
	t.Helper()
	tab, err := routes.Compile(routes.Config{AllLegacy: allLegacy, Routes: rcs}, reg)
	if err != nil {
		t.Fatalf("compile routes: %v", err)
	}
	if err := p.Publish(tab); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func captureRoute(name, file string) routes.RouteConfig {
	return routes.RouteConfig{Name: name, Path: "/" + name, Capture: &routes.CaptureConfig{Percent: 100, File: file}}
}

// Publish builds the whole runtime before the table goes live: the capture
// file is open (created) before any request, and the routes' parts are in
// the runtime Load returns.
func TestPublishBuildsTheRuntimeFirst(t *testing.T) {
	p := newPlane(t)
	file := filepath.Join(t.TempDir(), "capture.jsonl")
	sc := &routes.ShadowConfig{}
	rcs := []routes.RouteConfig{
		captureRoute("a", file),
		captureRoute("b", file), // the same file: one writer
		{Name: "s", Path: "/s", Mode: routes.ModeShadow, Handler: "h", Shadow: sc},
		{Name: "c", Path: "/c", Mode: routes.ModeCanary, Handler: "h", Canary: &routes.CanaryConfig{Percent: ptr(5.0)}},
	}
	h := routes.HandlerFunc(func(*fasthttp.RequestCtx) error { return nil })
	publish(t, p, rcs, false, routes.Registry{"h": h})
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("capture file not opened by Publish: %v", err)
	}
	rt := p.Load()
	byName := map[string]*Route{}
	for _, r := range rt.Table().Routes() {
		byName[r.Name] = rt.Route(r)
	}
	if a, b := byName["a"], byName["b"]; a.Capture == nil || a.Capture != b.Capture || a.CaptureSampler == nil {
		t.Errorf("capture writers %p %p, want one shared writer", a.Capture, b.Capture)
	}
	if s := byName["s"]; s.Shadow == nil || s.Sampler == nil || s.Shadow.Comparator == nil || s.Shadow.Collector != s.Collector {
		t.Errorf("shadow route runtime %+v incomplete", s)
	}
	if c := byName["c"]; c.Canary == nil || c.Shadow != nil {
		t.Errorf("canary route runtime %+v", c)
	}
	// A route no longer writing to the file closes it; a later table
	// that wants it opens it again.
	publish(t, p, rcs[2:], false, routes.Registry{"h": h})
	if n := len(p.captures); n != 0 {
		t.Errorf("%d capture files still open after no route writes to them", n)
	}
}

// A table whose capture file will not open is refused whole: the runtime
// in force stays, what the refused build opened is closed, and the error
// names the route, the key and the file.
func TestPublishRefusesTableWhoseCaptureFileWillNotOpen(t *testing.T) {
	p := newPlane(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.jsonl")
	publish(t, p, []routes.RouteConfig{captureRoute("a", good)}, false, nil)
	before := p.Load()

	other := filepath.Join(dir, "other.jsonl")
	missing := filepath.Join(dir, "no-such-dir", "c.jsonl")
	tab, err := routes.Compile(routes.Config{Routes: []routes.RouteConfig{
		captureRoute("a", good), captureRoute("b", other), captureRoute("c", missing),
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Publish(tab)
	var re *ResourceError
	if !errors.As(err, &re) || re.Route != "c" || re.What != "capture.file" || re.Path != missing || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Publish = %v, want a ResourceError for route c's capture.file", err)
	}
	if !strings.Contains(err.Error(), `route "c": capture.file "`+missing+`"`) || !strings.Contains(err.Error(), "stays") {
		t.Errorf("error %q does not say what and where", err)
	}
	if p.Load() != before {
		t.Fatal("the refused table's runtime was published")
	}
	if len(p.captures) != 1 || p.captures[good] == nil {
		t.Errorf("open capture files %v, want only the one in force", p.captures)
	}
	if p.stats.Lookup("b") != nil || p.stats.Lookup("c") != nil {
		t.Error("the refused table's routes left figures behind")
	}
	// The writer the refused build opened for b was closed: its file can
	// be opened again, and nothing leaks (goleak in TestMain).
	publish(t, p, []routes.RouteConfig{captureRoute("a", good), captureRoute("b", other)}, false, nil)
}

// Through the routes watcher: an edit whose capture file will not open is
// refused with result resource_error, logged with the reason, and the
// table in force stays; a signal retries the same bytes once it is fixed.
func TestReloadRefusedWhenCaptureFileWillNotOpen(t *testing.T) {
	p := newPlane(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	capDir := filepath.Join(dir, "captures")
	config := func(mode string) string {
		return "routes:\n  - name: r\n    path: /r\n    mode: " + mode + "\n" +
			"    capture: {percent: 100, file: " + filepath.Join(capDir, "r.jsonl") + "}\n"
	}
	first := []byte("routes:\n  - {name: r, path: /r}\n")
	if err := os.WriteFile(path, first, 0o600); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	reg := prometheus.NewRegistry()
	hup := make(chan os.Signal, 1)
	w, err := routes.NewWatcher(routes.WatchOptions{
		Path: path, Data: first, Publisher: p, Logger: zap.New(core), Registerer: reg, Poll: time.Hour, Reload: hup,
	})
	if err != nil {
		t.Fatal(err)
	}
	before := p.Load()
	// The edit lands before Run: its first look at the file finds it.
	if err := os.WriteFile(path, []byte(config("legacy")), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watcher: %v", err)
		}
	}()

	waitFor(t, "the refusal", func() bool { return logs.FilterMessageSnippet("refused").Len() == 1 })
	le := logs.FilterMessageSnippet("refused").All()[0]
	problems := fmt.Sprint(le.ContextMap()["problems"])
	if le.ContextMap()["result"] != routes.ResultResourceError || !strings.Contains(problems, `route "r": capture.file`) ||
		!strings.Contains(problems, "no such file or directory") {
		t.Errorf("refusal line %v", le.ContextMap())
	}
	if p.Load() != before {
		t.Fatal("the refused table was published")
	}

	// The operator creates the directory and signals: the same bytes apply.
	if err := os.Mkdir(capDir, 0o700); err != nil {
		t.Fatal(err)
	}
	hup <- syscall.SIGHUP
	waitFor(t, "the retried reload", func() bool { return logs.FilterMessage("config reloaded").Len() == 1 })
	if rr := p.Load().Route(p.Table().Routes()[0]); rr.Capture == nil {
		t.Error("the applied table has no capture writer")
	}
}

func ptr[T any](v T) *T { return &v }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
	}
}

// The monolith's events file may not exist before its first event, but its
// directory must: a table following a file that can never appear is
// refused like an unopenable capture file.
func TestPublishRefusesAnEventsFileThatCannotBeFollowed(t *testing.T) {
	p := newPlane(t)
	dir := t.TempDir()
	shadowed := func(file string) []routes.RouteConfig {
		return []routes.RouteConfig{{Name: "s", Path: "/s", Mode: routes.ModeShadow, Handler: "h",
			Shadow: &routes.ShadowConfig{LegacyEventsFile: file}}}
	}
	reg := routes.Registry{"h": routes.HandlerFunc(func(*fasthttp.RequestCtx) error { return nil })}
	publish(t, p, shadowed(filepath.Join(dir, "not-yet.jsonl")), false, reg) // created later by the monolith
	before := p.Load()
	missing := filepath.Join(dir, "no-such-dir", "events.jsonl")
	tab, err := routes.Compile(routes.Config{Routes: shadowed(missing)}, reg)
	if err != nil {
		t.Fatal(err)
	}
	var re *ResourceError
	if err := p.Publish(tab); !errors.As(err, &re) || re.What != "shadow.legacy_events_file" || re.Path != missing {
		t.Fatalf("Publish = %v, want a ResourceError for shadow.legacy_events_file", err)
	}
	if p.Load() != before {
		t.Error("the refused table was published")
	}
}
