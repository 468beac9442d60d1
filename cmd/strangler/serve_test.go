package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/routes"
)

// TestStartReadsTheConfigOnce: the process runs on the bytes serve read,
// and an edit saved after that read — before the watcher is up — is
// neither lost nor silently taken as the baseline: a routes edit is
// applied, a static edit is refused against the configuration the process
// really runs with.
func TestStartReadsTheConfigOnce(t *testing.T) {
	campaigns, err := filepath.Abs(filepath.Join("..", "..", "examples", "monolith", "data", "campaigns.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		edit      func(string) string
		wantMode  routes.Mode // the ping route's mode once the watcher looked
		wantInLog string
	}{
		{"routes edit", func(s string) string { return strings.Replace(s, "mode: legacy", "mode: ported", 1) },
			routes.ModePorted, `"msg":"config reloaded"`},
		{"static edit", func(s string) string { return strings.Replace(s, "timeout: 30s", "timeout: 31s", 1) },
			routes.ModeLegacy, `config reload not supported for legacy.timeout: old=30s, new=31s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			config := fmt.Sprintf("listen: %q\nadmin_listen: %q\nlegacy:\n  upstream: http://127.0.0.1:1\n  timeout: 30s\n"+
				"spool:\n  dir: %q\nhotcache:\n  source: %q\nroutes:\n"+
				"  - {name: ping, methods: [GET], path: /api/v1/ping, mode: legacy, handler: ping}\n",
				freeAddr(t), freeAddr(t), t.TempDir(), "file://"+campaigns)
			path := writeConfig(t, config)
			data, err := os.ReadFile(path) // serve's one read
			if err != nil {
				t.Fatal(err)
			}
			c, _, err := parseConfig(path, data)
			if err != nil {
				t.Fatal(err)
			}
			// The edit lands after the read, before anything else looks.
			if err := os.WriteFile(path, []byte(tt.edit(config)), 0o644); err != nil {
				t.Fatal(err)
			}
			logs := &syncBuffer{}
			lg := newLoggers(logConfig{Level: "info"}.WithDefaults(), logs)
			defer lg.close()
			a, err := start(c, path, data, lg, make(chan os.Signal))
			if err != nil {
				t.Fatal(err)
			}
			stop := func() int {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return a.wait(ctx)
			}
			stopped := false
			defer func() {
				if !stopped {
					stop()
				}
			}()
			mode := func() routes.Mode { return a.plane.Table().Routes()[0].Mode }
			for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), tt.wantInLog); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("no %s in the log within 10s:\n%s", tt.wantInLog, logs)
				}
			}
			if m := mode(); m != tt.wantMode {
				t.Errorf("ping mode %s, want %s", m, tt.wantMode)
			}
			if a.cfg.Legacy.Timeout != 30*time.Second {
				t.Errorf("the process runs with legacy.timeout %s, want the 30s it read", a.cfg.Legacy.Timeout)
			}
			stopped = true
			if code := stop(); code != exitOK {
				t.Errorf("exit %d after the stop, want 0:\n%s", code, logs)
			}
		})
	}
}

// The shadow side's forwarder never tunnels: its requests are copies.
func TestShadowForwarderHasNoTunnels(t *testing.T) {
	if !shadowLegacyConfig(fileConfig{}).NoTunnels {
		t.Error("the shadow forwarder's config tunnels websocket handshakes")
	}
}
