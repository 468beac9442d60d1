package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.uber.org/zap/zapcore"

	"github.com/strangler-proxy/strangler/internal/linelog"
	"github.com/strangler-proxy/strangler/legacy-passthrough"
	"github.com/strangler-proxy/strangler/ported/events"
	"github.com/strangler-proxy/strangler/ported/hotcache"
	"github.com/strangler-proxy/strangler/ported/kafka"
	"github.com/strangler-proxy/strangler/ported/session"
	"github.com/strangler-proxy/strangler/ported/spool"
	"github.com/strangler-proxy/strangler/proxy"
	"github.com/strangler-proxy/strangler/routes"
)

// fileConfig is config.yaml as a whole. Each section's struct lives in the
// package it configures; this aggregate exists so one decode with
// ErrorUnused reports every unknown key, wherever it is.
type fileConfig struct {
	// Proxy holds the top-level listen and admin_listen keys and server:.
	Proxy  proxy.Config  `mapstructure:",squash"`
	Log    logConfig     `mapstructure:"log"`
	Legacy legacy.Config `mapstructure:"legacy"`

	// all_legacy and routes belong to routes.Decode, which the watcher also
	// runs on every edit; they are named here only so ErrorUnused knows them.
	AllLegacy any `mapstructure:"all_legacy"`
	Routes    any `mapstructure:"routes"`

	// The event intake and its delivery: events.delivery picks the sink,
	// the spool is always opened (it may hold events of an earlier run),
	// and no kafka.brokers means events stay in the spool.
	Events events.Config `mapstructure:"events"`
	Spool  spool.Config  `mapstructure:"spool"`
	Kafka  kafka.Config  `mapstructure:"kafka"`
	// HotCache is the campaign data of the events intake and the campaign
	// routes. Its source is required, as legacy.upstream(s) is.
	HotCache hotcache.Config `mapstructure:"hotcache"`
	// Session is where the monolith keeps its PHP sessions, for ported
	// handlers that need the user (ported/session).
	Session session.Config `mapstructure:"session"`
}

// logConfig is the `log:` section.
type logConfig struct {
	// Level is debug, info, warn or error. Default "info". Access lines
	// are Info, so "warn" and above silence the access log too.
	Level string `mapstructure:"level"`
	// FlushInterval is the longest an access line waits in memory before
	// it is written. Default 200ms; 1ms to 10s.
	FlushInterval time.Duration `mapstructure:"flush_interval"`
	// BufferBytes bounds the access lines held in memory while the output
	// is slower than the requests (a stalled pipe, a full disk): past it
	// lines are dropped and counted (strangler_log_lines_dropped_total, and
	// a warning), never waited for. Default 1 MiB; at least 64 KiB.
	BufferBytes int `mapstructure:"buffer_bytes"`
}

func (c logConfig) WithDefaults() logConfig {
	if c.Level == "" {
		c.Level = "info"
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = linelog.DefaultFlushInterval
	}
	if c.BufferBytes == 0 {
		c.BufferBytes = linelog.DefaultBufferBytes
	}
	return c
}

func (c logConfig) Validate() error {
	var errs []error
	if _, err := zapcore.ParseLevel(c.Level); err != nil {
		errs = append(errs, fmt.Errorf("level %q: want debug, info, warn or error", c.Level))
	}
	// 0 became the default; below 1ms every line would be its own write.
	if c.FlushInterval < time.Millisecond || c.FlushInterval > 10*time.Second {
		errs = append(errs, fmt.Errorf("flush_interval %s: want between 1ms and 10s", c.FlushInterval))
	}
	if c.BufferBytes < 64<<10 {
		errs = append(errs, fmt.Errorf("buffer_bytes %d: want at least 65536", c.BufferBytes))
	}
	return errors.Join(errs...)
}

// settled is what every section that serve uses must offer: defaults, then
// a pure validation.
type settled[T any] interface {
	WithDefaults() T
	Validate() error
}

// settle applies c's defaults and validates it, naming the section.
func settle[T settled[T]](section string, c *T) error {
	*c = (*c).WithDefaults()
	if err := (*c).Validate(); err != nil {
		if section == "" {
			return err
		}
		return fmt.Errorf("%s: %w", section, err)
	}
	return nil
}

// loadConfig reads path and parses it (parseConfig).
func loadConfig(path string) (fileConfig, *viper.Viper, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return fileConfig{}, nil, fmt.Errorf("read config: %w", err)
	}
	return parseConfig(path, data)
}

// parseConfig reads data, the contents of the file at path, into a fresh
// viper and decodes, defaults and validates every static section. It
// returns the viper too, for routes.Decode. The error lists every problem,
// one per line.
func parseConfig(path string, data []byte) (fileConfig, *viper.Viper, error) {
	var c fileConfig
	v := viper.New()
	v.SetConfigType(configType(path))
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return c, nil, fmt.Errorf("parse %s: %w", path, err)
	}
	// Validation goes on after a decode error, so one run reports every
	// problem; a field that failed to decode is left zero, i.e. default.
	errs := []error{
		decode(v, &c),
		settle("", &c.Proxy),
		settle("log", &c.Log),
		settle("legacy", &c.Legacy),
		// These packages name their section in their messages.
		settle("", &c.Events),
		settle("", &c.Spool),
		settle("", &c.Kafka),
		settle("", &c.HotCache),
		settle("", &c.Session),
		c.crossCheck(),
	}
	return c, v, errors.Join(errs...)
}

// crossCheck validates what spans sections, after their defaults.
func (c fileConfig) crossCheck() error {
	if c.Events.Delivery == events.DeliveryDirect && !c.Kafka.Enabled() {
		return fmt.Errorf("events.delivery: %q needs kafka.brokers; set them, or use %q to keep events in the local spool",
			events.DeliveryDirect, events.DeliverySpool)
	}
	if t := c.Proxy.Shadow.DiffTopic; t != "" && !c.Kafka.Enabled() {
		return fmt.Errorf("shadow.diff_topic: %q needs kafka.brokers (it uses the kafka section's producer settings); set them, or leave diff_topic empty", t)
	}
	return nil
}

// configType is the viper format for path's extension; YAML when unknown.
func configType(path string) string {
	ext := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	if slices.Contains(viper.SupportedExts, ext) {
		return ext
	}
	return "yaml"
}

func decode(v *viper.Viper, c *fileConfig) error {
	d, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			strictDuration,
			legacy.BackendFromString,
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		),
		ErrorUnused: true,
		Result:      c,
	})
	if err != nil {
		return fmt.Errorf("config decoder: %w", err)
	}
	if err := d.Decode(v.AllSettings()); err != nil {
		return decodeProblems(err)
	}
	return nil
}

// strictDuration refuses a bare number for a duration: mapstructure would
// read `read_timeout: 30` as 30ns.
func strictDuration(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[time.Duration]() || from.Kind() == reflect.String {
		return data, nil
	}
	return nil, fmt.Errorf("duration %v has no unit: write it like 30s, 500ms or 1m", data)
}

// Shapes of mapstructure's messages: unknown keys (one line per struct) and
// a value that failed to decode.
var (
	invalidKeys  = regexp.MustCompile(`^'([^']*)' has invalid keys: (.*)$`)
	invalidValue = regexp.MustCompile(`^'([^']*)' (.*)$`)
)

// decodeProblems rewrites mapstructure's error into one line per problem,
// naming unknown keys by their full dotted path.
func decodeProblems(err error) error {
	root := reflect.TypeFor[fileConfig]().String()
	var errs []error
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "decoding failed") {
			continue
		}
		m := invalidKeys.FindStringSubmatch(line)
		if m == nil {
			if m := invalidValue.FindStringSubmatch(line); m != nil {
				line = m[1] + ": " + m[2]
			}
			errs = append(errs, errors.New(strings.ReplaceAll(line, root, "config")))
			continue
		}
		for _, k := range strings.Split(m[2], ", ") {
			if m[1] != root {
				k = m[1] + "." + k
			}
			errs = append(errs, fmt.Errorf("unknown key %q", k))
		}
	}
	if len(errs) == 0 {
		return err
	}
	return errors.Join(errs...)
}

// loadRoutes decodes and compiles the route table from v with reg.
func loadRoutes(v *viper.Viper, reg routes.Registry) (*routes.Table, error) {
	rc, err := routes.Decode(v)
	if err != nil {
		return nil, err
	}
	return routes.Compile(rc, reg)
}

// problems splits a joined error into its messages, routes' included.
func problems(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, problems(e)...)
		}
		return out
	}
	var ve *routes.ValidationError
	if errors.As(err, &ve) {
		return ve.Problems
	}
	return strings.Split(err.Error(), "\n")
}
