package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"

	"github.com/strangler-proxy/strangler/internal/testcert"
	"github.com/strangler-proxy/strangler/proxy/canary"
)

// tlsEcho is what /headers reports about the scheme PHP saw.
type tlsEcho struct {
	echo
	HTTPS         *string `json:"https"`
	RequestScheme string  `json:"request_scheme"`
}

// tlsSite is a proxy terminating TLS with two certificate pairs (SNI
// shop.example and api.example), in front of one monolith.
type tlsSite struct {
	p         *proc
	addr      string // host:port of the HTTPS listener
	redirect  string // host:port of the HTTP→HTTPS redirect listener
	ca        *testcert.CA
	dir       string
	shopFiles [2]string // cert, key
}

func startTLSSite(t *testing.T, extra string) *tlsSite {
	t.Helper()
	m := startMonolith(t)
	s := &tlsSite{ca: testcert.NewCA(t, "test CA"), dir: t.TempDir(), addr: freeAddr(t), redirect: freeAddr(t)}
	s.shopFiles[0], s.shopFiles[1] = s.ca.Server(t, "shop.example", "www.shop.example").Write(t, s.dir, "shop")
	apiCert, apiKey := s.ca.Server(t, "*.api.example").Write(t, s.dir, "api")
	s.p = start(t, config{
		Listen: s.addr, Upstream: m.URL,
		Extra: fmt.Sprintf("tls:\n  certificates:\n    - {cert_file: %q, key_file: %q}\n    - {cert_file: %q, key_file: %q}\n"+
			"  reload_interval: 1s\n  redirect_listen: %q\n%s",
			s.shopFiles[0], s.shopFiles[1], apiCert, apiKey, s.redirect, extra),
	})
	return s
}

// httpsClient trusts the test CA and dials the site for any name.
func (s *tlsSite) httpsClient(keepAlive bool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: s.ca.Pool(), NextProtos: []string{"h2", "http/1.1"}},
		ForceAttemptHTTP2: true, // offer h2: the proxy must not take it
		DisableKeepAlives: !keepAlive,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, s.addr)
		},
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func decodeTLSEcho(t *testing.T, b []byte) tlsEcho {
	t.Helper()
	var e tlsEcho
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("decode /headers %q: %v", b, err)
	}
	return e
}

// TestTLSFrontDoor: the proxy terminates TLS. The certificate follows SNI,
// ALPN settles on HTTP/1.1 even for a client offering h2, TLS 1.1 is
// refused, PHP sees HTTPS=on and X-Forwarded-Proto: https (Go's client and
// curl agree), and the redirect listener sends plain HTTP to HTTPS.
func TestTLSFrontDoor(t *testing.T) {
	s := startTLSSite(t, "")

	resp, err := s.httpsClient(false).Get("https://shop.example/headers?x=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Proto != "HTTP/1.1" || resp.TLS.NegotiatedProtocol != "http/1.1" {
		t.Fatalf("GET: %s %s, ALPN %q: want 200 over HTTP/1.1", resp.Status, resp.Proto, resp.TLS.NegotiatedProtocol)
	}
	if resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("TLS version %x", resp.TLS.Version)
	}
	e := decodeTLSEcho(t, body)
	if proto, _ := e.header("HTTP_X_FORWARDED_PROTO"); proto != "https" || e.HTTPS == nil || *e.HTTPS != "on" || e.RequestScheme != "https" {
		t.Errorf("PHP saw X-Forwarded-Proto %q, HTTPS %v, REQUEST_SCHEME %q; want https, on, https", proto, e.HTTPS, e.RequestScheme)
	}

	// SNI picks the pair; no SNI, or an unknown name, gets the first.
	for _, tt := range []struct{ sni, want string }{
		{"shop.example", "shop.example"},
		{"WWW.Shop.Example", "shop.example"},
		{"v2.api.example", "*.api.example"},
		{"", "shop.example"},
		{"other.example", "shop.example"},
	} {
		c, err := tls.Dial("tcp", s.addr, &tls.Config{ServerName: tt.sni, InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}}) //nolint:gosec // only the certificate's name is checked
		if err != nil {
			t.Fatalf("SNI %q: %v", tt.sni, err)
		}
		st := c.ConnectionState()
		c.Close()
		if got := st.PeerCertificates[0].DNSNames[0]; got != tt.want {
			t.Errorf("SNI %q: certificate for %q, want %q", tt.sni, got, tt.want)
		}
		if st.NegotiatedProtocol == "h2" {
			t.Errorf("SNI %q: h2 negotiated", tt.sni)
		}
	}
	if c, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: s.ca.Pool(), ServerName: "shop.example", MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}

	// curl, with its own TLS stack, asking for HTTP/2.
	caFile := filepath.Join(s.dir, "ca.pem")
	testcert.WriteFile(t, caFile, s.ca.PEM)
	_, port, _ := net.SplitHostPort(s.addr)
	out, err := exec.Command("curl", "-sS", "--http2", "--cacert", caFile, "--max-time", "20",
		"--resolve", "shop.example:"+port+":127.0.0.1", "-w", "\n%{http_version} %{http_code}",
		"https://shop.example:"+port+"/headers").Output()
	if err != nil {
		t.Fatalf("curl (Debian package curl): %v %s", err, out)
	}
	cbody, tail, _ := strings.Cut(string(out), "\n")
	if tail != "1.1 200" {
		t.Errorf("curl: %q, want HTTP/1.1 200", tail)
	}
	if e := decodeTLSEcho(t, []byte(cbody)); e.HTTPS == nil || *e.HTTPS != "on" {
		t.Errorf("curl: PHP saw HTTPS %v, want on", e.HTTPS)
	}

	// The redirect listener: 301 for GET, 308 for POST, nothing forwarded;
	// the request id echoed, and named in a 400's body.
	for _, tt := range []struct{ req, status, location string }{
		{"GET /account?next=%2F HTTP/1.1\r\nHost: shop.example\r\n\r\n", "301", "https://shop.example:" + port + "/account?next=%2F"},
		{"POST /login HTTP/1.1\r\nHost: shop.example:80\r\nContent-Length: 3\r\n\r\na=1", "308", "https://shop.example:" + port + "/login"},
		{"GET / HTTP/1.1\r\nHost: \r\nX-Request-Id: rid-42\r\n\r\n", "400", ""},
		{"GET / HTTP/1.1\r\nHost: evil_example\r\nX-Request-Id: rid-42\r\n\r\n", "400", ""},
	} {
		got := rawExchange(t, s.redirect, tt.req)
		if !strings.HasPrefix(got, "HTTP/1.1 "+tt.status) || (tt.location != "" && !strings.Contains(got, "\r\nLocation: "+tt.location+"\r\n")) {
			t.Errorf("redirect of %q: %q, want %s to %s", tt.req, got, tt.status, tt.location)
		}
		// A head that does not parse (no Host) gets a fresh id.
		if !strings.Contains(got, "\r\nX-Request-Id: ") || tt.status == "400" && !strings.Contains(got, "(request id ") ||
			strings.Contains(tt.req, "evil") && !strings.Contains(got, "(request id rid-42)") {
			t.Errorf("redirect of %q: %q, want the request id echoed (and in a 400's body)", tt.req, got)
		}
	}

	// A client speaking plain HTTP to the TLS port is closed, and counted.
	if got := rawExchange(t, s.addr, "GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n"); got != "" {
		t.Errorf("plain HTTP to the TLS port got %q, want the connection closed", got)
	}
	_, metrics := get(t, s.p.Admin+"/metrics")
	for _, want := range []string{"strangler_tls_handshake_errors_total ", `strangler_tls_certificate_expiry_timestamp_seconds{cert_file="` + s.shopFiles[0] + `"}`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestTLSCertificateRotation: certificate files replaced while clients
// open a new connection per request (and one keeps its connection):
// nothing fails, new handshakes get the new certificate, the kept
// connection carries on, and a half-written renewal keeps the old pair.
func TestTLSCertificateRotation(t *testing.T) {
	s := startTLSSite(t, "")
	serial := func() string {
		c, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: s.ca.Pool(), ServerName: "shop.example"})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	old := serial()

	kept := s.httpsClient(true)
	if resp, err := kept.Get("https://shop.example/api/v1/ping"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("kept connection, first request: %v", err)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		n        atomic.Int64
		mu       sync.Mutex
		failures []string
	)
	fresh := s.httpsClient(false)
	for range 3 {
		wg.Go(func() {
			for !stop.Load() {
				resp, err := fresh.Get("https://shop.example/api/v1/ping")
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %s", resp.Status)
					}
				}
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
				}
				n.Add(1)
			}
		})
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitFor("load", func() bool { return n.Load() > 20 })

	// A renewal written half-way: the new certificate beside the old key.
	next := s.ca.Server(t, "shop.example", "www.shop.example")
	testcert.WriteFile(t, s.shopFiles[0], next.CertPEM)
	waitFor("the failed reload", func() bool {
		_, m := get(t, s.p.Admin+"/metrics")
		return strings.Contains(string(m), `strangler_tls_certificate_reloads_total{result="error"}`)
	})
	if got := serial(); got != old {
		t.Fatalf("half-written renewal: serving serial %s, want the old %s", got, old)
	}
	// The key follows: the new pair is served.
	testcert.WriteFile(t, s.shopFiles[1], next.KeyPEM)
	want := next.Cert.SerialNumber.String()
	waitFor("the new certificate", func() bool { return serial() == want })
	before := n.Load()
	waitFor("more load after the rotation", func() bool { return n.Load() > before+20 })

	resp, err := kept.Get("https://shop.example/api/v1/ping")
	if err != nil {
		t.Fatalf("kept connection after the rotation: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := resp.TLS.PeerCertificates[0].SerialNumber.String(); got != old {
		t.Errorf("the kept connection was re-established (serial %s, want the old %s)", got, old)
	}
	stop.Store(true)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed during the rotation, first: %s", len(failures), n.Load(), failures[0])
	}
	if !strings.Contains(s.p.logs.String(), "certificates reloaded") {
		t.Error("no log line for the reload")
	}
}

// TestProxyProtocol: from a trusted load balancer, a v1 or v2 header's
// client address reaches PHP as X-Forwarded-For and decides the canary's
// ip key, also ahead of a TLS handshake; a header from an untrusted peer
// closes the connection unanswered, while its plain requests pass.
func TestProxyProtocol(t *testing.T) {
	m := startMonolith(t)
	canaryPing := "  - {name: ping, methods: [GET], path: /api/v1/ping, mode: canary, handler: ping, canary: {percent: 50, sticky: ip}}\n"
	trusted := start(t, config{Upstream: m.URL, Routes: canaryPing,
		Extra: "server:\n  proxy_protocol:\n    trusted: [127.0.0.0/8]\n"})
	untrusted := start(t, config{Upstream: m.URL,
		Extra: "server:\n  proxy_protocol:\n    trusted: [10.0.0.0/8]\n"})

	send := func(addr string, h *proxyproto.Header, request string) string {
		t.Helper()
		b, err := h.Format()
		if err != nil {
			t.Fatal(err)
		}
		return rawExchange(t, addr, string(b)+request)
	}
	header := func(version byte, src string) *proxyproto.Header {
		ip := net.ParseIP(src)
		tp := proxyproto.TCPv4
		if ip.To4() == nil {
			tp = proxyproto.TCPv6
		}
		return &proxyproto.Header{Version: version, Command: proxyproto.PROXY, TransportProtocol: tp,
			SourceAddr:      &net.TCPAddr{IP: ip, Port: 40000},
			DestinationAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8080}}
	}
	// decoded is the body of the one answer in raw.
	decoded := func(raw string) []byte {
		t.Helper()
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), nil)
		if err != nil {
			t.Fatalf("answer %q: %v", raw, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("answer %q: %v", raw, err)
		}
		return b
	}
	xff := func(raw string) string {
		t.Helper()
		var e echo
		if err := json.Unmarshal(decoded(raw), &e); err != nil {
			t.Fatalf("decode %q: %v", raw, err)
		}
		v, _ := e.header("HTTP_X_FORWARDED_FOR")
		return v
	}
	const headersReq = "GET /headers HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n"
	if got := xff(send(trusted.URL, header(1, "203.0.113.7"), headersReq)); got != "203.0.113.7" {
		t.Errorf("v1: X-Forwarded-For %q, want 203.0.113.7", got)
	}
	if got := xff(send(trusted.URL, header(2, "2001:db8::7"), headersReq)); got != "2001:db8::7" {
		t.Errorf("v2: X-Forwarded-For %q, want 2001:db8::7", got)
	}
	if got := xff(rawExchange(t, trusted.URL, headersReq)); got != "127.0.0.1" {
		t.Errorf("trusted peer without a header: X-Forwarded-For %q, want its own 127.0.0.1", got)
	}

	// The canary splits by the header's address: find one client of each
	// side by the splitter's own hash, and see each land there.
	sides := map[string]string{}
	for i := 1; len(sides) < 2 && i < 250; i++ {
		ip := fmt.Sprintf("198.51.100.%d", i)
		side := "php"
		if canary.Decide(canary.Bucket("ping", net.ParseIP(ip).To4()), 500) {
			side = "go"
		}
		if _, ok := sides[side]; !ok {
			sides[side] = ip
		}
	}
	if len(sides) != 2 {
		t.Fatalf("no client of each side among 250 addresses: %v", sides)
	}
	for want, ip := range sides {
		raw := send(trusted.URL, header(2, ip), "GET /api/v1/ping HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
		if got := implementation(t, decoded(raw)); got != want {
			t.Errorf("canary for client %s: answered by %q, want %q", ip, got, want)
		}
	}

	// Untrusted: a header closes the connection without a byte; without
	// one the request passes.
	if got := send(untrusted.URL, header(1, "203.0.113.7"), headersReq); got != "" {
		t.Errorf("untrusted peer's header: got %q, want the connection closed", got)
	}
	if got := send(untrusted.URL, header(2, "203.0.113.7"), headersReq); got != "" {
		t.Errorf("untrusted peer's v2 header: got %q, want the connection closed", got)
	}
	if got := xff(rawExchange(t, untrusted.URL, headersReq)); got != "127.0.0.1" {
		t.Errorf("untrusted peer without a header: X-Forwarded-For %q", got)
	}
	_, metrics := getString(t, untrusted.Admin+"/metrics")
	if !strings.Contains(metrics, `strangler_proxy_protocol_rejected_total{reason="untrusted"} 2`) {
		t.Errorf("metrics: %s", grepLines(metrics, "proxy_protocol"))
	}
}

// TestProxyProtocolBeforeTLS: a TCP load balancer (AWS NLB) in front of
// the TLS terminator sends the header, then the client's ClientHello.
func TestProxyProtocolBeforeTLS(t *testing.T) {
	m := startMonolith(t)
	ca := testcert.NewCA(t, "nlb CA")
	dir := t.TempDir()
	cert, key := ca.Server(t, "shop.example").Write(t, dir, "shop")
	p := start(t, config{Upstream: m.URL, Extra: fmt.Sprintf(
		"tls:\n  certificates:\n    - {cert_file: %q, key_file: %q}\nserver:\n  proxy_protocol:\n    trusted: [127.0.0.1]\n", cert, key)})
	raw, err := net.DialTimeout("tcp", strings.TrimPrefix(p.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(20 * time.Second))
	h := &proxyproto.Header{Version: 2, Command: proxyproto.PROXY, TransportProtocol: proxyproto.TCPv4,
		SourceAddr: &net.TCPAddr{IP: net.ParseIP("192.0.2.44"), Port: 50000}, DestinationAddr: &net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 443}}
	if _, err := h.WriteTo(raw); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	c := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "shop.example"})
	if _, err := io.WriteString(c, "GET /headers HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	e := decodeTLSEcho(t, body)
	if v, _ := e.header("HTTP_X_FORWARDED_FOR"); v != "192.0.2.44" || e.HTTPS == nil || *e.HTTPS != "on" {
		t.Errorf("PHP saw X-Forwarded-For %q, HTTPS %v; want 192.0.2.44 over https", v, e.HTTPS)
	}
}

func getString(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, b := get(t, url)
	return resp.StatusCode, string(b)
}
