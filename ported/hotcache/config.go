package hotcache

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Defaults applied by Config.WithDefaults to zero values.
const (
	DefaultRefresh  = time.Hour
	DefaultJitter   = 0.1
	DefaultTimeout  = 30 * time.Second
	DefaultMaxBytes = 256 << 20
	// DefaultRegion is used for s3:// sources when neither the config nor the
	// AWS default chain names one (S3-compatible stores ignore it).
	DefaultRegion = "us-east-1"
)

// Config is the `hotcache:` section of config.yaml. It is static: a change
// needs a restart.
type Config struct {
	// Source is "file://PATH" (PATH relative to the working directory, or
	// absolute as in file:///srv/campaigns.json) or "s3://BUCKET/KEY".
	// Required.
	Source string `mapstructure:"source"`
	// Refresh is the interval between conditional fetches. Zero means 1h;
	// anything below 1s is refused (a bare `refresh: 1` decodes as 1ns).
	Refresh time.Duration `mapstructure:"refresh"`
	// Jitter spreads each interval uniformly over Refresh×(1±Jitter) so a
	// fleet of proxies does not hit S3 in the same second. A fraction in
	// [0, 0.5]; nil means 0.1, 0 disables it.
	Jitter *float64 `mapstructure:"jitter"`
	// RequireInitialLoad keeps readiness failing until a first document is
	// loaded. nil means true. With false the proxy may start with an empty
	// cache (every campaign lookup misses until the first load succeeds).
	RequireInitialLoad *bool `mapstructure:"require_initial_load"`
	// Timeout bounds one fetch, read and parse. Zero means 30s.
	Timeout time.Duration `mapstructure:"timeout"`
	// MaxBytes refuses documents larger than this. Zero means 256 MiB.
	MaxBytes int64 `mapstructure:"max_bytes"`
	// S3 configures the client for s3:// sources; ignored for file://.
	S3 S3Config `mapstructure:"s3"`
}

// S3Config configures the S3 client.
type S3Config struct {
	// Region of the bucket. Empty means the AWS default chain's region
	// (AWS_REGION, profile), then us-east-1.
	Region string `mapstructure:"region"`
	// Endpoint is the base URL of an S3-compatible store (MinIO, gofakes3).
	// Empty means AWS.
	Endpoint string `mapstructure:"endpoint"`
	// PathStyle addresses http://endpoint/bucket/key instead of
	// http://bucket.endpoint/key; most S3-compatible stores need it.
	PathStyle bool `mapstructure:"path_style"`
	// Static credentials. All empty means the AWS default chain (env,
	// shared config, web identity, ECS/EC2 roles).
	AccessKeyID     string `mapstructure:"access_key_id"`
	SecretAccessKey string `mapstructure:"secret_access_key"`
	SessionToken    string `mapstructure:"session_token"`
}

// WithDefaults returns c with zero values replaced by their defaults.
func (c Config) WithDefaults() Config {
	if c.Refresh == 0 {
		c.Refresh = DefaultRefresh
	}
	if c.Jitter == nil {
		j := DefaultJitter
		c.Jitter = &j
	}
	if c.RequireInitialLoad == nil {
		t := true
		c.RequireInitialLoad = &t
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	return c
}

// Validate checks c (after defaults) without any I/O.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	if _, err := parseSource(c.Source); err != nil {
		errs = append(errs, err)
	}
	if c.Refresh < time.Second {
		errs = append(errs, fmt.Errorf("hotcache.refresh %v: want at least 1s", c.Refresh))
	}
	if j := *c.Jitter; j < 0 || j > 0.5 {
		errs = append(errs, fmt.Errorf("hotcache.jitter %v: want a fraction in [0, 0.5]", j))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("hotcache.timeout %v: want a positive duration", c.Timeout))
	}
	if c.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("hotcache.max_bytes %d: want a positive size", c.MaxBytes))
	}
	s := c.S3
	if (s.AccessKeyID == "") != (s.SecretAccessKey == "") {
		errs = append(errs, errors.New("hotcache.s3: access_key_id and secret_access_key go together"))
	}
	if s.SessionToken != "" && s.AccessKeyID == "" {
		errs = append(errs, errors.New("hotcache.s3.session_token needs access_key_id and secret_access_key"))
	}
	if s.Endpoint != "" {
		u, err := url.Parse(s.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("hotcache.s3.endpoint %q: want http(s)://host[:port]", s.Endpoint))
		}
	}
	return errors.Join(errs...)
}

// location is a parsed Config.Source.
type location struct {
	path        string // file://
	bucket, key string // s3://
}

func parseSource(src string) (location, error) {
	switch {
	case strings.HasPrefix(src, "file://"):
		p := strings.TrimPrefix(src, "file://")
		if p == "" {
			return location{}, fmt.Errorf("hotcache.source %q: empty path", src)
		}
		return location{path: p}, nil
	case strings.HasPrefix(src, "s3://"):
		bucket, key, _ := strings.Cut(strings.TrimPrefix(src, "s3://"), "/")
		if bucket == "" || key == "" {
			return location{}, fmt.Errorf("hotcache.source %q: want s3://bucket/key", src)
		}
		return location{bucket: bucket, key: key}, nil
	case src == "":
		return location{}, errors.New("hotcache.source: required (file://path or s3://bucket/key)")
	default:
		return location{}, fmt.Errorf("hotcache.source %q: want file://path or s3://bucket/key", src)
	}
}
