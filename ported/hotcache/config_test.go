package hotcache

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/viper"
)

func TestConfigValidate(t *testing.T) {
	neg, big := -0.1, 0.6
	tests := []struct {
		name    string
		give    Config
		wantErr string // substring; "" = valid
	}{
		{"file relative", Config{Source: "file://examples/monolith/data/campaigns.json"}, ""},
		{"file absolute", Config{Source: "file:///srv/c.json"}, ""},
		{"s3", Config{Source: "s3://bucket/dir/key.json"}, ""},
		{"s3 full", Config{Source: "s3://b/k", S3: S3Config{Endpoint: "http://127.0.0.1:9000", PathStyle: true, AccessKeyID: "a", SecretAccessKey: "b", SessionToken: "c"}}, ""},
		{"missing source", Config{}, "required"},
		{"bad scheme", Config{Source: "http://x/y"}, "want file://"},
		{"empty file path", Config{Source: "file://"}, "empty path"},
		{"s3 no key", Config{Source: "s3://bucket"}, "s3://bucket/key"},
		{"s3 no bucket", Config{Source: "s3:///key"}, "s3://bucket/key"},
		{"refresh too short", Config{Source: "file://x", Refresh: time.Nanosecond}, "at least 1s"},
		{"jitter negative", Config{Source: "file://x", Jitter: &neg}, "jitter"},
		{"jitter too big", Config{Source: "file://x", Jitter: &big}, "jitter"},
		{"negative timeout", Config{Source: "file://x", Timeout: -time.Second}, "timeout"},
		{"negative max", Config{Source: "file://x", MaxBytes: -1}, "max_bytes"},
		{"key without secret", Config{Source: "s3://b/k", S3: S3Config{AccessKeyID: "a"}}, "go together"},
		{"token alone", Config{Source: "s3://b/k", S3: S3Config{SessionToken: "t"}}, "session_token"},
		{"bad endpoint", Config{Source: "s3://b/k", S3: S3Config{Endpoint: "127.0.0.1:9000"}}, "endpoint"},
		{"two problems", Config{Source: "ftp://x", MaxBytes: -1}, "max_bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.give.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Source: "file://x"}.WithDefaults()
	if c.Refresh != time.Hour || *c.Jitter != 0.1 || !*c.RequireInitialLoad || c.Timeout != 30*time.Second || c.MaxBytes != 256<<20 {
		t.Fatalf("defaults %+v", c)
	}
	zero, no := 0.0, false
	c = Config{Source: "file://x", Jitter: &zero, RequireInitialLoad: &no, Refresh: time.Minute}.WithDefaults()
	if *c.Jitter != 0 || *c.RequireInitialLoad || c.Refresh != time.Minute {
		t.Fatalf("explicit values overridden: %+v", c)
	}
}

// The section decodes from YAML through viper as the lead's loader does,
// including the pointer fields and durations.
func TestConfigDecodesWithViper(t *testing.T) {
	v := viper.New()
	v.SetConfigType("yaml")
	err := v.ReadConfig(strings.NewReader(`
hotcache:
  source: s3://campaigns/campaigns.json
  refresh: 15m
  jitter: 0
  require_initial_load: false
  timeout: 5s
  max_bytes: 1048576
  s3: {region: eu-west-1, endpoint: "http://127.0.0.1:9000", path_style: true, access_key_id: a, secret_access_key: b}
`))
	if err != nil {
		t.Fatal(err)
	}
	var top struct {
		Hotcache Config `mapstructure:"hotcache"`
	}
	if err := v.Unmarshal(&top); err != nil {
		t.Fatal(err)
	}
	c := top.Hotcache
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Refresh != 15*time.Minute || c.Jitter == nil || *c.Jitter != 0 || c.RequireInitialLoad == nil || *c.RequireInitialLoad ||
		c.Timeout != 5*time.Second || c.MaxBytes != 1<<20 || c.S3.Region != "eu-west-1" || !c.S3.PathStyle || c.S3.SecretAccessKey != "b" {
		t.Fatalf("decoded %+v (jitter %v)", c, c.Jitter)
	}
}
