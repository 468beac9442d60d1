package legacy

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-viper/mapstructure/v2"
)

func TestWithDefaults(t *testing.T) {
	got := Config{Upstream: "http://nginx:8081", Timeout: 5 * time.Second}.WithDefaults()
	want := Config{
		Upstream:                 "http://nginx:8081",
		Timeout:                  5 * time.Second,
		DialTimeout:              2 * time.Second,
		ReadTimeout:              60 * time.Second,
		WriteTimeout:             60 * time.Second,
		IdleConnTimeout:          60 * time.Second,
		UpstreamKeepaliveTimeout: 75 * time.Second,
		MaxConns:                 1024,
		MaxResponseHeaderBytes:   16384,
		TunnelIdleTimeout:        60 * time.Second,
		MaxTunnels:               1024,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("WithDefaults:\n got %+v\nwant %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		give func(*Config)
		want []string // substrings of the error; none means valid
	}{
		{name: "defaults", give: func(*Config) {}},
		{name: "no port means 80", give: func(c *Config) { c.Upstream = "http://nginx" }},
		{name: "trailing slash", give: func(c *Config) { c.Upstream = "http://127.0.0.1:8081/" }},
		{name: "ipv6 upstream", give: func(c *Config) { c.Upstream = "http://[::1]:8081" }},
		{name: "missing upstream", give: func(c *Config) { c.Upstream = "" },
			want: []string{"upstream: missing", "http://127.0.0.1:8081"}},
		{name: "no scheme", give: func(c *Config) { c.Upstream = "127.0.0.1:8081" },
			want: []string{"upstream:", "no http:// scheme"}},
		{name: "https", give: func(c *Config) { c.Upstream = "https://nginx" },
			want: []string{"upstream:", "https to the monolith is not supported"}},
		{name: "path", give: func(c *Config) { c.Upstream = "http://nginx/app" },
			want: []string{"upstream:", "remove it"}},
		{name: "bad port", give: func(c *Config) { c.Upstream = "http://nginx:99999" },
			want: []string{"upstream:", "port"}},
		{name: "negative timeout", give: func(c *Config) { c.Timeout = -time.Second },
			want: []string{"timeout: -1s is not positive"}},
		{name: "idle at Nginx's keepalive", give: func(c *Config) { c.IdleConnTimeout = 75 * time.Second },
			want: []string{"idle_conn_timeout: 1m15s is not below upstream_keepalive_timeout 1m15s", "lower it"}},
		{name: "idle below a raised keepalive", give: func(c *Config) {
			c.IdleConnTimeout = 240 * time.Second
			c.UpstreamKeepaliveTimeout = 300 * time.Second
		}},
		{name: "max conns", give: func(c *Config) { c.MaxConns = -1 },
			want: []string{"max_conns: -1 is not positive"}},
		{name: "max tunnels", give: func(c *Config) { c.MaxTunnels = -1 },
			want: []string{"max_tunnels: -1 is not positive"}},
		{name: "tunnel idle", give: func(c *Config) { c.TunnelIdleTimeout = -time.Second },
			want: []string{"tunnel_idle_timeout: -1s is not positive"}},
		{name: "trusted proxies", give: func(c *Config) {
			c.TrustedProxies = []string{"10.0.0.0/8", " 192.0.2.7 ", "::ffff:10.1.0.0/112", "fd00::/8"}
		}},
		{name: "bad trusted proxies", give: func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/33", "ten", "fe80::1%eth0"} },
			want: []string{`trusted_proxies[0]: "10.0.0.0/33" is not a CIDR`, `trusted_proxies[1]: "ten"`, `trusted_proxies[2]`}},
		{name: "head limit", give: func(c *Config) { c.MaxResponseHeaderBytes = 100 },
			want: []string{"max_response_header_bytes: 100 is outside"}},
		{name: "every problem at once", give: func(c *Config) {
			c.Upstream = ""
			c.MaxConns = -5
			c.ReadTimeout = -1
		}, want: []string{"upstream:", "max_conns:", "read_timeout:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Upstream: "http://127.0.0.1:8081"}.WithDefaults()
			tt.give(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate passed; want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseTrusted(t *testing.T) {
	got, err := parseTrusted([]string{"10.1.2.3/8", "192.0.2.7", "::ffff:172.16.0.0/108", "2001:db8::1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("2001:db8::1/128"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestDecode: the section decodes with the hooks cmd/strangler uses.
func TestDecode(t *testing.T) {
	in := map[string]any{
		"upstream":                   "http://127.0.0.1:8081",
		"timeout":                    "10s",
		"dial_timeout":               "500ms",
		"read_timeout":               "2m",
		"write_timeout":              "90s",
		"idle_conn_timeout":          "30s",
		"upstream_keepalive_timeout": "65s",
		"max_conns":                  64,
		"trusted_proxies":            []any{"10.0.0.0/8", "192.0.2.7"},
		"max_response_header_bytes":  8192,
		"tunnel_idle_timeout":        "5m",
		"max_tunnels":                10,
	}
	var c Config
	d, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:  mapstructure.ComposeDecodeHookFunc(mapstructure.StringToTimeDurationHookFunc(), mapstructure.StringToSliceHookFunc(",")),
		ErrorUnused: true,
		Result:      &c,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Decode(in); err != nil {
		t.Fatalf("decode: %v", err)
	}
	want := Config{
		Upstream: "http://127.0.0.1:8081", Timeout: 10 * time.Second, DialTimeout: 500 * time.Millisecond,
		ReadTimeout: 2 * time.Minute, WriteTimeout: 90 * time.Second, IdleConnTimeout: 30 * time.Second,
		UpstreamKeepaliveTimeout: 65 * time.Second, MaxConns: 64,
		TrustedProxies: []string{"10.0.0.0/8", "192.0.2.7"}, MaxResponseHeaderBytes: 8192,
		TunnelIdleTimeout: 5 * time.Minute, MaxTunnels: 10,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("decoded\n %+v\nwant %+v", c, want)
	}
	if err := c.WithDefaults().Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}
