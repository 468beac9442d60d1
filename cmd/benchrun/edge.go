package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/strangler-proxy/strangler/internal/monolith"
	"github.com/strangler-proxy/strangler/internal/testcert"
)

// The edge groups (issue 15), opt-in with -groups backends,tls:
//
//   - backends: the static file through strangler in front of one monolith
//     backend, and of three (the same one plus two more Nginx + PHP-FPM on
//     the servers' CPU): what the backend pool costs per request;
//   - tls: the static file over HTTPS with a new connection per request
//     (Connection: close, so every request is a full handshake), through
//     Nginx terminating TLS (the baseline: what the monolith's Nginx did)
//     and through strangler terminating TLS, both with the same ECDSA P-256
//     certificate and the same upstream.
const (
	nameOneBackend    = "strangler, 1 backend"
	nameThreeBackends = "strangler, 3 backends"
	nameNginxTLS      = "nginx terminating TLS"
	nameStranglerTLS  = "strangler terminating TLS"
	tlsConns          = 16
)

// edge is what the edge groups started.
type edge struct {
	cs      []contender
	servers []*server
	extra   []*monolith.Monolith // the two more backends
}

func (e *edge) stop() {
	for _, s := range e.servers {
		s.stop()
	}
	for _, m := range e.extra {
		_ = m.Stop()
	}
}

// pids are the extra backends' processes, to pin with the upstream's.
func (e *edge) pids() []int {
	var out []int
	for _, m := range e.extra {
		out = append(out, m.NginxPID, m.FPMPID)
	}
	return out
}

func (l launcher) startEdge(ctx context.Context, o options, mono *monolith.Monolith, campaigns string, staticConns int) (*edge, error) {
	e := &edge{}
	ok := false
	defer func() {
		if !ok {
			e.stop()
		}
	}()
	if o.groups["backends"] {
		urls := []string{mono.URL}
		for range 2 {
			m, err := monolith.Start(ctx, monolith.Options{Workers: o.workers, NginxWorkers: 1})
			if err != nil {
				return nil, fmt.Errorf("start another backend: %w", err)
			}
			e.extra = append(e.extra, m)
			urls = append(urls, m.URL)
		}
		one, err := l.startEdgeStrangler(ctx, nameOneBackend, o.bin, campaigns, fmt.Sprintf("  upstream: %q\n", mono.URL), "")
		if one != nil {
			e.servers = append(e.servers, one)
		}
		if err != nil {
			return nil, err
		}
		three, err := l.startEdgeStrangler(ctx, nameThreeBackends, o.bin, campaigns,
			fmt.Sprintf("  upstreams: [%s]\n", strings.Join(urls, ", ")), "")
		if three != nil {
			e.servers = append(e.servers, three)
		}
		if err != nil {
			return nil, err
		}
		e.cs = append(e.cs,
			contender{Group: "backends", Name: nameOneBackend, Baseline: true, URL: one.url + staticPath, Proxy: one, Conns: staticConns},
			contender{Group: "backends", Name: nameThreeBackends, URL: three.url + staticPath, Proxy: three, Conns: staticConns})
	}
	if o.groups["tls"] {
		certPEM, keyPEM, err := testcert.SelfSigned("bench.example")
		if err != nil {
			return nil, err
		}
		cert, key := filepath.Join(l.tmp, "bench.crt"), filepath.Join(l.tmp, "bench.key")
		if err := os.WriteFile(cert, certPEM, 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
			return nil, err
		}
		upstream := strings.TrimPrefix(mono.URL, "http://")
		ngx, err := l.nginxProxy(ctx, nameNginxTLS, upstream, cert, key)
		if ngx != nil {
			e.servers = append(e.servers, ngx)
		}
		if err != nil {
			return nil, err
		}
		st, err := l.startEdgeStrangler(ctx, nameStranglerTLS, o.bin, campaigns, fmt.Sprintf("  upstream: %q\n", mono.URL),
			fmt.Sprintf("tls:\n  certificates:\n    - {cert_file: %q, key_file: %q}\n", cert, key))
		if st != nil {
			e.servers = append(e.servers, st)
		}
		if err != nil {
			return nil, err
		}
		closeHdr := map[string]string{"Connection": "close"}
		e.cs = append(e.cs,
			contender{Group: "tls", Name: nameNginxTLS, Baseline: true, URL: ngx.url + staticPath, Headers: closeHdr, Proxy: ngx, Conns: tlsConns},
			contender{Group: "tls", Name: nameStranglerTLS, URL: st.url + staticPath, Headers: closeHdr, Proxy: st, Conns: tlsConns})
	}
	ok = true
	return e, nil
}

// startEdgeStrangler runs strangler with the access log off (log level
// warn), the given legacy keys and more top-level YAML.
func (l launcher) startEdgeStrangler(ctx context.Context, name, bin, campaigns, legacy, more string) (*server, error) {
	return l.runStrangler(ctx, name, bin, false, func(listen, admin, dir string) string {
		return fmt.Sprintf("listen: %q\nadmin_listen: %q\nlog:\n  level: warn\nlegacy:\n%sspool:\n  dir: %q\nhotcache:\n  source: %q\n%s",
			listen, admin, legacy, dir+"/spool", "file://"+campaigns, more)
	})
}
