package kafka

import (
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	base := Config{Brokers: []string{"127.0.0.1:9092"}}
	tests := []struct {
		name    string
		give    func(c *Config)
		wantErr string // "" ⇒ valid
	}{
		{name: "defaults", give: func(*Config) {}},
		{name: "no brokers is valid (kafka disabled)", give: func(c *Config) { c.Brokers = nil }},
		{name: "broker without port", give: func(c *Config) { c.Brokers = []string{"kafka"} }, wantErr: "no port"},
		{name: "plain needs credentials", give: func(c *Config) { c.SASL.Mechanism = "plain" }, wantErr: "username and password"},
		{name: "scram-512 ok", give: func(c *Config) {
			c.SASL = SASLConfig{Mechanism: "SCRAM-SHA-512", Username: "u", Password: "p"}
		}},
		{name: "iam needs region", give: func(c *Config) { c.SASL.Mechanism = "AWS_MSK_IAM" }, wantErr: "region"},
		{name: "iam ok", give: func(c *Config) { c.SASL = SASLConfig{Mechanism: "AWS_MSK_IAM", Region: "eu-west-1"} }},
		{name: "unknown mechanism", give: func(c *Config) { c.SASL.Mechanism = "GSSAPI" }, wantErr: "mechanism"},
		{name: "bad compression", give: func(c *Config) { c.Compression = "brotli" }, wantErr: "compression"},
		{name: "zstd ok", give: func(c *Config) { c.Compression = "zstd" }},
		{name: "bad version", give: func(c *Config) { c.Version = "banana" }, wantErr: "version"},
		{name: "tls options without tls", give: func(c *Config) { c.TLS.CAFile = "/ca.pem" }, wantErr: "enabled is false"},
		{name: "negative timeout", give: func(c *Config) { c.DialTimeout = -1 }, wantErr: "dial_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.give(&c)
			err := c.WithDefaults().Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.Topic != "events.v1" || c.Compression != "lz4" || c.DialTimeout.Seconds() != 10 ||
		c.ReadTimeout.Seconds() != 10 || c.WriteTimeout.Seconds() != 10 || c.TLS.InsecureSkipVerify {
		t.Fatalf("defaults = %+v", c)
	}
	if c.Enabled() {
		t.Fatal("Enabled() with no brokers = true")
	}
}
