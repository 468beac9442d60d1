// Package edge builds the front door's public listener out of its layers:
// TCP, then the PROXY protocol (v1 or v2) from trusted load balancers, then
// TLS with certificates chosen by SNI and reloaded when their files change.
// It also has the handler of the optional HTTP→HTTPS redirect listener.
//
// fasthttp has no HTTP/2, so TLS offers ALPN "http/1.1" only: browsers
// negotiate HTTP/1.1, and h2 is never advertised.
package edge

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/strangler-proxy/strangler/internal/cidr"
)

// TLSConfig is the top-level `tls:` section. No certificates: the public
// listener speaks plain HTTP.
type TLSConfig struct {
	// Certificates are the certificate/key pairs served, each two PEM files
	// (the certificate file may hold the chain after the leaf). A client's
	// SNI name picks the pair whose certificate names it (exactly, or by a
	// wildcard *.example.com); a client without SNI, or naming none of
	// them, gets the first pair. Files are checked for changes every
	// ReloadInterval and reloaded without a restart.
	Certificates []CertFiles `mapstructure:"certificates"`
	// MinVersion is the oldest TLS version accepted: "1.2" or "1.3".
	// Default "1.2". Cipher suites are Go's defaults.
	MinVersion string `mapstructure:"min_version"`
	// ReloadInterval is how often the certificate files are checked (their
	// size, modification time and inode, through symlinks, which is how
	// certbot and Kubernetes secret volumes replace them). Default 1m.
	ReloadInterval time.Duration `mapstructure:"reload_interval"`
	// RedirectListen, when set, is a plain-HTTP listener answering every
	// request with a redirect to the same host and target over HTTPS (301
	// for GET and HEAD, 308 otherwise, so a POST is resent as a POST).
	// Default "": none.
	RedirectListen string `mapstructure:"redirect_listen"`
	// RedirectPort is the HTTPS port the redirects name. Default 0: the
	// port of `listen` (left out of the URL when it is 443). Set it when a
	// load balancer maps 443 to another port.
	RedirectPort int `mapstructure:"redirect_port"`
}

// CertFiles is one certificate/key pair.
type CertFiles struct {
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
}

// ProxyProtocolConfig is `server.proxy_protocol:`. No trusted peers: the
// PROXY protocol is off and a header is just bytes of a bad request.
type ProxyProtocolConfig struct {
	// Trusted lists the load balancers (CIDRs or addresses) whose PROXY
	// protocol header (v1 or v2) is believed: the client address it carries
	// becomes the connection's peer address, which X-Forwarded-For, the
	// access log and the canary's ip key use. A trusted peer may also send
	// no header (its own address is used). From any other peer a header
	// closes the connection without an answer.
	Trusted []string `mapstructure:"trusted"`
	// HeaderTimeout bounds the wait for a header's first bytes on a new
	// connection. Default 5s.
	HeaderTimeout time.Duration `mapstructure:"header_timeout"`
}

// Defaults; see the field comments.
const (
	DefaultReloadInterval = time.Minute
	DefaultHeaderTimeout  = 5 * time.Second
	minReloadInterval     = time.Second
)

// WithDefaults returns c with every zero field set to its default.
func (c TLSConfig) WithDefaults() TLSConfig {
	if c.MinVersion == "" {
		c.MinVersion = "1.2"
	}
	if c.ReloadInterval == 0 {
		c.ReloadInterval = DefaultReloadInterval
	}
	return c
}

// Enabled reports whether the public listener speaks TLS.
func (c TLSConfig) Enabled() bool { return len(c.Certificates) > 0 }

// Validate reports every problem in c, naming keys under "tls.". No I/O:
// the files are read when the listener is built.
func (c TLSConfig) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for i, cf := range c.Certificates {
		if cf.CertFile == "" || cf.KeyFile == "" {
			add("tls.certificates[%d]: cert_file and key_file are both required", i)
		}
	}
	if c.MinVersion != "1.2" && c.MinVersion != "1.3" {
		add("tls.min_version: %q: want \"1.2\" or \"1.3\"", c.MinVersion)
	}
	if c.ReloadInterval < minReloadInterval {
		add("tls.reload_interval: %s is below %s", c.ReloadInterval, minReloadInterval)
	}
	if c.RedirectListen != "" {
		if _, _, err := net.SplitHostPort(c.RedirectListen); err != nil {
			add("tls.redirect_listen: %q: %v", c.RedirectListen, err)
		}
		if !c.Enabled() {
			add("tls.redirect_listen: %q redirects to HTTPS, but tls.certificates is empty", c.RedirectListen)
		}
	}
	if c.RedirectPort < 0 || c.RedirectPort > 65535 {
		add("tls.redirect_port: %d is not 0..65535", c.RedirectPort)
	}
	return errors.Join(errs...)
}

// WithDefaults returns c with every zero field set to its default.
func (c ProxyProtocolConfig) WithDefaults() ProxyProtocolConfig {
	if c.HeaderTimeout == 0 {
		c.HeaderTimeout = DefaultHeaderTimeout
	}
	return c
}

// Enabled reports whether PROXY headers are read at all.
func (c ProxyProtocolConfig) Enabled() bool { return len(c.Trusted) > 0 }

// Validate reports every problem in c, naming keys under
// "server.proxy_protocol.".
func (c ProxyProtocolConfig) Validate() error {
	_, err := cidr.Parse("server.proxy_protocol.trusted", c.Trusted)
	if c.HeaderTimeout < 0 {
		err = errors.Join(err, fmt.Errorf("server.proxy_protocol.header_timeout: %s is negative", c.HeaderTimeout))
	}
	return err
}
