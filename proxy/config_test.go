package proxy

import (
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{}.WithDefaults()
	s := c.Server
	if c.Listen != ":8080" || c.AdminListen != "127.0.0.1:9901" ||
		s.ReadTimeout != 30*time.Second || s.WriteTimeout != 60*time.Second || s.IdleTimeout != 75*time.Second ||
		s.MaxHeaderLineBytes != 8192 || s.MaxHeaderBytes != 32768 || s.MaxBodyBytes != 1536<<20 ||
		s.ShutdownTimeout != 25*time.Second || *s.ShutdownDelay != 5*time.Second || s.MaxConnsPerIP != 0 || s.Concurrency != 0 {
		t.Errorf("defaults: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	if sh := c.Shadow; sh.Workers != 8 || sh.Queue != 256 || sh.LegacyTimeout != 5*time.Second || sh.BudgetInterval != 10*time.Second || sh.DiffLog.Path != "" {
		t.Errorf("shadow defaults: %+v", sh)
	}
	// A short shutdown_timeout gets a fifth of it as the delay.
	if d := *(Config{Server: ServerConfig{ShutdownTimeout: 2 * time.Second}}.WithDefaults().Server.ShutdownDelay); d != 400*time.Millisecond {
		t.Errorf("shutdown_delay for shutdown_timeout 2s: %s, want 400ms", d)
	}
	// Set values are kept.
	kept := Config{Listen: ":9", Server: ServerConfig{ReadTimeout: time.Second, MaxBodyBytes: 10}}.WithDefaults()
	if kept.Listen != ":9" || kept.Server.ReadTimeout != time.Second || kept.Server.MaxBodyBytes != 10 {
		t.Errorf("WithDefaults overwrote set values: %+v", kept)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		give func(*Config)
		want []string // substrings of the error; none means valid
	}{
		{"defaults", func(*Config) {}, nil},
		{"listen without port", func(c *Config) { c.Listen = "8080" }, []string{"listen"}},
		{"admin on the public address", func(c *Config) { c.AdminListen = c.Listen }, []string{"admin_listen", "is also listen"}},
		{"negative timeout", func(c *Config) { c.Server.IdleTimeout = -time.Second }, []string{"server.idle_timeout"}},
		{"shutdown delay as long as the timeout", func(c *Config) { d := c.Server.ShutdownTimeout; c.Server.ShutdownDelay = &d }, []string{"server.shutdown_delay"}},
		{"negative shutdown delay", func(c *Config) { d := -time.Second; c.Server.ShutdownDelay = &d }, []string{"server.shutdown_delay"}},
		{"no shutdown delay", func(c *Config) { d := time.Duration(0); c.Server.ShutdownDelay = &d }, nil},
		{"head smaller than a line", func(c *Config) { c.Server.MaxHeaderBytes = 4096 }, []string{"server.max_header_bytes", "below"}},
		{"negative limits", func(c *Config) {
			c.Server.MaxBodyBytes, c.Server.MaxConnsPerIP, c.Server.Concurrency = -1, -1, -1
		}, []string{"max_body_bytes", "max_conns_per_ip", "concurrency"}},
		{"short admin token", func(c *Config) { c.AdminToken = "short-secret" }, []string{"admin_token: too short (12 characters)"}},
		{"negative shadow settings", func(c *Config) {
			c.Shadow.Workers, c.Shadow.LegacyTimeout, c.Shadow.BudgetInterval = -1, -time.Second, -time.Second
			c.Shadow.DiffLog.Queue, c.Shadow.Noise.Every, c.Shadow.Store.Groups = -1, -1, -1
		}, []string{"shadow: workers -1", "shadow.legacy_timeout", "shadow.budget_interval", "shadow.diff_log", "shadow.noise", "shadow.store"}},
		{"negative settled noise sample", func(c *Config) { c.Shadow.Noise.SettledEvery = -1 }, []string{"shadow.noise"}},
		{"negative wake interval", func(c *Config) { c.Shadow.WakeInterval = -time.Millisecond }, []string{"shadow.wake_interval: -1ms is outside 0s..1s"}},
		{"wake interval over a second", func(c *Config) { c.Shadow.WakeInterval = 2 * time.Second }, []string{"shadow.wake_interval: 2s is outside"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{}.WithDefaults()
			tt.give(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
