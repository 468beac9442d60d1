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
		Health:                   HealthConfig{Interval: 5 * time.Second, Timeout: 2 * time.Second, HealthyAfter: 2, UnhealthyAfter: 3},
		Ejection:                 EjectionConfig{ConsecutiveFailures: 5, BaseTime: 30 * time.Second, MaxTime: 5 * time.Minute, MaxPercent: 50},
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
		{name: "https", give: func(c *Config) { c.Upstream = "https://nginx" }},
		{name: "other scheme", give: func(c *Config) { c.Upstream = "ftp://nginx" },
			want: []string{"upstream:", "no http:// or https:// scheme"}},
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
		{name: "several backends", give: func(c *Config) {
			c.Upstream = ""
			c.Upstreams = []Backend{{URL: "http://10.0.0.1", Weight: 1}, {URL: "https://10.0.0.2", Weight: 3}}
		}},
		{name: "both forms", give: func(c *Config) { c.Upstreams = []Backend{{URL: "http://10.0.0.1", Weight: 1}} },
			want: []string{"upstream and upstreams are both set"}},
		{name: "bad backends", give: func(c *Config) {
			c.Upstream = ""
			c.Upstreams = []Backend{{URL: "http://10.0.0.1:80", Weight: 1}, {URL: "10.0.0.2", Weight: 1},
				{URL: "http://10.0.0.1", Weight: 1}, {URL: "http://10.0.0.3", Weight: 1001}}
		}, want: []string{"upstreams[1]: \"10.0.0.2\" has no http:// scheme", "upstreams[2]: 10.0.0.1:80 is upstreams[0] again",
			"upstreams[3]: weight 1001 is outside 1..1000"}},
		{name: "health", give: func(c *Config) {
			c.Health.Path, c.Health.Host = "healthz", "a b"
			c.Health.Timeout, c.Health.Interval = 2*time.Second, time.Second
			c.Health.HealthyAfter, c.Health.UnhealthyAfter = 0, 101
		}, want: []string{`health.path: "healthz"`, `health.host: "a b"`, "health.timeout: 2s is longer than health.interval 1s",
			"health.healthy_after: 0 is outside 1..100", "health.unhealthy_after: 101"}},
		{name: "ejection", give: func(c *Config) {
			c.Ejection = EjectionConfig{ConsecutiveFailures: -1, BaseTime: time.Minute, MaxTime: time.Second, MaxPercent: 101}
		}, want: []string{"ejection.consecutive_failures: -1", "ejection.max_time: 1s is below ejection.base_time 1m0s",
			"ejection.max_percent: 101 is outside 1..100"}},
		{name: "sticky cookie", give: func(c *Config) { c.StickyCookie = "SRV;ID" },
			want: []string{`sticky_cookie: "SRV;ID" is not a cookie name`}},
		{name: "client cert without key", give: func(c *Config) { c.TLS.CertFile = "/etc/c.pem" },
			want: []string{"tls: cert_file and key_file go together"}},
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

// TestBackends: the one-backend form and the list parse to the same
// targets; ports default by scheme; weights default to 1.
func TestBackends(t *testing.T) {
	one, err := Config{Upstream: "https://monolith.internal"}.WithDefaults().backends()
	if err != nil {
		t.Fatal(err)
	}
	want := []target{{url: "https://monolith.internal", addr: "monolith.internal:443", host: "monolith.internal", tls: true, weight: 1}}
	if !reflect.DeepEqual(one, want) {
		t.Errorf("upstream: %+v, want %+v", one, want)
	}
	many, err := Config{Upstreams: []Backend{{URL: "http://[::1]"}, {URL: "http://10.0.0.2:8081", Weight: 4}}}.WithDefaults().backends()
	if err != nil {
		t.Fatal(err)
	}
	want = []target{
		{url: "http://[::1]", addr: "[::1]:80", host: "::1", weight: 1},
		{url: "http://10.0.0.2:8081", addr: "10.0.0.2:8081", host: "10.0.0.2", weight: 4},
	}
	if !reflect.DeepEqual(many, want) {
		t.Errorf("upstreams: %+v, want %+v", many, want)
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
		"upstreams":                  []any{"http://10.0.0.1:80", map[string]any{"url": "https://10.0.0.2", "weight": 2}},
		"health":                     map[string]any{"path": "/healthz-php", "interval": "1s", "unhealthy_after": 2},
		"ejection":                   map[string]any{"base_time": "10s", "max_percent": 34},
		"sticky_cookie":              "SRVID",
		"tls":                        map[string]any{"ca_file": "/etc/ca.pem", "server_name": "monolith.internal"},
	}
	var c Config
	d, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(BackendFromString,
			mapstructure.StringToTimeDurationHookFunc(), mapstructure.StringToSliceHookFunc(",")),
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
		Upstreams:    []Backend{{URL: "http://10.0.0.1:80"}, {URL: "https://10.0.0.2", Weight: 2}},
		Health:       HealthConfig{Path: "/healthz-php", Interval: time.Second, UnhealthyAfter: 2},
		Ejection:     EjectionConfig{BaseTime: 10 * time.Second, MaxPercent: 34},
		StickyCookie: "SRVID",
		TLS:          UpstreamTLS{CAFile: "/etc/ca.pem", ServerName: "monolith.internal"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("decoded\n %+v\nwant %+v", c, want)
	}
	c.Upstream = "" // one form or the other
	if err := c.WithDefaults().Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}
