package legacy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/internal/testcert"
)

// tlsUpstream serves h over TLS with cert, asking for a client certificate
// signed by clientCA when it is set. net/http's server: fasthttp's starts
// its date ticker (which never stops) when it refuses a handshake.
func tlsUpstream(t *testing.T, cert tls.Certificate, clientCA *testcert.CA, h http.HandlerFunc) string {
	t.Helper()
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	if clientCA != nil {
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, clientCA.Pool()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: ioTimeout,
		ErrorLog: log.New(io.Discard, "", 0)} // the refused handshakes are the point
	done := make(chan error, 1)
	go func() { done <- srv.Serve(tls.NewListener(ln, cfg)) }()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// TestHTTPSBackend: an https:// backend is verified against ca_file and
// server_name, gets the client certificate, and sees a TLS connection; a
// wrong name or a missing client certificate is a 502, and the health
// check does the handshake too.
func TestHTTPSBackend(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA := testcert.NewCA(t, "backend CA"), testcert.NewCA(t, "proxy CA")
	caFile := filepath.Join(dir, "ca.pem")
	testcert.WriteFile(t, caFile, serverCA.PEM)
	certFile, keyFile := clientCA.Client(t, "strangler").Write(t, dir, "client")
	up := tlsUpstream(t, serverCA.Server(t, "monolith.internal").TLS, clientCA, func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || r.TLS.NegotiatedProtocol != "http/1.1" {
			w.WriteHeader(400)
			return
		}
		_, _ = io.WriteString(w, "client "+r.TLS.PeerCertificates[0].Subject.CommonName)
	})

	tests := []struct {
		name   string
		tls    UpstreamTLS
		status int
	}{
		{"verified, with a client certificate", UpstreamTLS{CAFile: caFile, ServerName: "monolith.internal", CertFile: certFile, KeyFile: keyFile}, 200},
		{"name not in the certificate", UpstreamTLS{CAFile: caFile, ServerName: "other.internal", CertFile: certFile, KeyFile: keyFile}, 502},
		{"unknown CA", UpstreamTLS{ServerName: "monolith.internal", CertFile: certFile, KeyFile: keyFile}, 502},
		{"no client certificate", UpstreamTLS{CAFile: caFile, ServerName: "monolith.internal"}, 502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(up)
			cfg.Upstream = "https://" + up
			cfg.TLS = tt.tls
			fwd, _ := newTestForwarder(t, cfg)
			fr := startFront(t, fwd, nil)
			head, body := dial(t, fr.addr).do(t, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", false)
			if got := status(t, head); got != tt.status {
				t.Fatalf("got %q %q, want %d", head, body, tt.status)
			}
			if tt.status == 200 && string(body) != "client strangler" {
				t.Errorf("body %q, want the client certificate's name", body)
			}
			if tt.status != 200 && !errors.Is(fr.lastErr(t), ErrUpstreamUnreachable) && !errors.Is(fr.lastErr(t), ErrBadUpstreamResponse) {
				t.Errorf("Serve = %v, want a 502 error", fr.lastErr(t))
			}
			// The health check's handshake agrees with the request's.
			err := fwd.pool.check(context.Background(), fwd.pool.backends[0])
			if (err == nil) != (tt.status == 200) && tt.name != "no client certificate" {
				t.Errorf("health check: %v", err)
			}
		})
	}
}

// TestHTTPSBackendHandshakeTimeout: a backend that accepts and never
// answers the handshake is a dial timeout (504), within dial_timeout.
func TestHTTPSBackendHandshakeTimeout(t *testing.T) {
	up := rawServer(t, func(c net.Conn) { _, _ = c.Read(make([]byte, 1)); time.Sleep(2 * time.Second) })
	cfg := testConfig(up)
	cfg.Upstream, cfg.DialTimeout = "https://"+up, 200*time.Millisecond
	cfg.TLS.InsecureSkipVerify = true
	fwd, _ := newTestForwarder(t, cfg)
	fr := startFront(t, fwd, nil)
	head, _ := dial(t, fr.addr).do(t, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", false)
	if err := fr.lastErr(t); status(t, head) != 504 || !errors.Is(err, ErrUpstreamTimeout) {
		t.Fatalf("got %q, Serve %v; want 504", head, err)
	}
	if counter(t, fwd, "dial") != 1 {
		t.Errorf("dial errors = %v, want 1", counter(t, fwd, "dial"))
	}
}

// TestHTTPSBackendClientCertificateRenewal: a renewed client certificate
// reaches the next new connection to the backend without a restart, by a
// full handshake (a resumed session would present the old one); a renewal
// caught half-written (the new certificate beside the old key) leaves the
// old pair in use until the key is written too.
func TestHTTPSBackendClientCertificateRenewal(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA := testcert.NewCA(t, "backend CA"), testcert.NewCA(t, "proxy CA")
	caFile := filepath.Join(dir, "ca.pem")
	testcert.WriteFile(t, caFile, serverCA.PEM)
	certFile, keyFile := clientCA.Client(t, "strangler-1").Write(t, dir, "client")
	up := tlsUpstream(t, serverCA.Server(t, "monolith.internal").TLS, clientCA, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	})
	cfg := testConfig(up)
	cfg.Upstream = "https://" + up
	cfg.TLS = UpstreamTLS{CAFile: caFile, ServerName: "monolith.internal", CertFile: certFile, KeyFile: keyFile}
	fwd, _ := newTestForwarder(t, cfg)
	fr := startFront(t, fwd, nil)
	cl := dial(t, fr.addr)
	// who asks on a new connection to the backend which certificate it got.
	who := func() string {
		t.Helper()
		fwd.clients[0].CloseIdleConnections()
		head, body := cl.do(t, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", false)
		if status(t, head) != 200 {
			t.Fatalf("got %q %q", head, body)
		}
		return string(body)
	}
	if got := who(); got != "strangler-1" {
		t.Fatalf("backend saw %q, want strangler-1", got)
	}
	renewed := clientCA.Client(t, "strangler-2")
	testcert.WriteFile(t, certFile, renewed.CertPEM)
	if got := who(); got != "strangler-1" {
		t.Errorf("half-written renewal: backend saw %q, want the old pair still", got)
	}
	testcert.WriteFile(t, keyFile, renewed.KeyPEM)
	for range 2 { // the second resumes the session the first made
		if got := who(); got != "strangler-2" {
			t.Errorf("after the renewal: backend saw %q, want strangler-2", got)
		}
	}
}
