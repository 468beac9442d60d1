package edge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap/zaptest"

	"github.com/strangler-proxy/strangler/internal/testcert"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		tls  TLSConfig
		pp   ProxyProtocolConfig
		want []string
	}{
		{name: "off"},
		{name: "pairs", tls: TLSConfig{Certificates: []CertFiles{{"a.crt", "a.key"}}, RedirectListen: ":80", RedirectPort: 443}},
		{name: "half a pair", tls: TLSConfig{Certificates: []CertFiles{{CertFile: "a.crt"}}}, want: []string{"tls.certificates[0]: cert_file and key_file"}},
		{name: "version", tls: TLSConfig{MinVersion: "1.1"}, want: []string{`tls.min_version: "1.1"`}},
		{name: "redirect without certificates", tls: TLSConfig{RedirectListen: ":80"}, want: []string{"tls.certificates is empty"}},
		{name: "fast reload", tls: TLSConfig{ReloadInterval: time.Millisecond}, want: []string{"tls.reload_interval: 1ms is below 1s"}},
		{name: "trusted", pp: ProxyProtocolConfig{Trusted: []string{"10.0.0.0/8", "192.0.2.1", "nope"}},
			want: []string{`server.proxy_protocol.trusted[2]: "nope"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := errors.Join(tt.tls.WithDefaults().Validate(), tt.pp.WithDefaults().Validate())
			if len(tt.want) == 0 && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v, want %q", err, w)
				}
			}
		})
	}
}

// TestCertificateBySNI: exact names (any case, trailing dot), wildcards one
// label deep, and the first pair for the rest.
func TestCertificateBySNI(t *testing.T) {
	ca := testcert.NewCA(t, "ca")
	dir := t.TempDir()
	a1, a2 := ca.Server(t, "shop.example").Write(t, dir, "shop")
	b1, b2 := ca.Server(t, "*.api.example", "api.example").Write(t, dir, "api")
	s, err := newCertStore([]CertFiles{{a1, a2}, {b1, b2}}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for sni, want := range map[string]string{
		"shop.example": "shop.example", "SHOP.example.": "shop.example", "api.example": "*.api.example",
		"v1.api.example": "*.api.example", "a.b.api.example": "shop.example", "": "shop.example", "x.example": "shop.example",
	} {
		c, err := s.get(&tls.ClientHelloInfo{ServerName: sni})
		if err != nil || c.Leaf.DNSNames[0] != want {
			t.Errorf("SNI %q: %v %v, want %s", sni, c.Leaf.DNSNames, err, want)
		}
	}
}

// TestCertificateByKeyType: of an ECDSA and an RSA pair for one name, a
// client that can verify ECDSA gets the first, one that takes only RSA the
// RSA pair.
func TestCertificateByKeyType(t *testing.T) {
	ca := testcert.NewCA(t, "ca")
	dir := t.TempDir()
	e1, e2 := ca.Server(t, "shop.example").Write(t, dir, "ecdsa")
	r1, r2 := ca.ServerRSA(t, "shop.example").Write(t, dir, "rsa")
	s, err := newCertStore([]CertFiles{{e1, e2}, {r1, r2}}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	hello := func(suites []uint16, schemes ...tls.SignatureScheme) *tls.ClientHelloInfo {
		return &tls.ClientHelloInfo{ServerName: "shop.example", SupportedVersions: []uint16{tls.VersionTLS12},
			CipherSuites: suites, SignatureSchemes: schemes, SupportedCurves: []tls.CurveID{tls.X25519, tls.CurveP256}, SupportedPoints: []uint8{0}}
	}
	for name, tt := range map[string]struct {
		hello *tls.ClientHelloInfo
		want  string
	}{
		"both": {hello([]uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
			tls.ECDSAWithP256AndSHA256, tls.PSSWithSHA256, tls.PKCS1WithSHA256), "*ecdsa.PublicKey"},
		"RSA only": {hello([]uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}, tls.PSSWithSHA256, tls.PKCS1WithSHA256), "*rsa.PublicKey"},
	} {
		c, err := s.get(tt.hello)
		if got := fmt.Sprintf("%T", c.Leaf.PublicKey); err != nil || got != tt.want {
			t.Errorf("%s: %s %v, want %s", name, got, err, tt.want)
		}
	}
}

// TestReload: an unchanged file is not read again; a renewal is picked up
// whole; a key that does not match its certificate keeps the old pair and
// is retried.
func TestReload(t *testing.T) {
	ca := testcert.NewCA(t, "ca")
	dir := t.TempDir()
	first := ca.Server(t, "shop.example")
	cert, key := first.Write(t, dir, "shop")
	reg := prometheus.NewRegistry()
	e, err := New(TLSConfig{Certificates: []CertFiles{{cert, key}}}.WithDefaults(), ProxyProtocolConfig{}, zaptest.NewLogger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	serial := func() string {
		c, _ := e.certs.get(&tls.ClientHelloInfo{ServerName: "shop.example"})
		return c.Leaf.SerialNumber.String()
	}
	if err := e.certs.reload(); !errors.Is(err, errUnchanged) {
		t.Fatalf("reload of unchanged files = %v", err)
	}
	next := ca.Server(t, "shop.example")
	testcert.WriteFile(t, cert, next.CertPEM)
	if err := e.certs.reload(); err == nil {
		t.Fatal("a certificate beside the old key loaded")
	}
	if serial() != first.Cert.SerialNumber.String() {
		t.Fatal("the failed reload replaced the certificate")
	}
	testcert.WriteFile(t, key, next.KeyPEM)
	e.Reload()
	if serial() != next.Cert.SerialNumber.String() {
		t.Fatal("the renewal was not picked up")
	}
	if got := testValue(t, e.m.reloadOK); got != 1 {
		t.Errorf("reloads ok = %v, want 1", got)
	}
}

// TestMetricsOnlyForLayersInUse: a plain listener exports no TLS series,
// one without trusted load balancers no PROXY protocol series.
func TestMetricsOnlyForLayersInUse(t *testing.T) {
	ca := testcert.NewCA(t, "ca")
	cert, key := ca.Server(t, "shop.example").Write(t, t.TempDir(), "shop")
	withTLS := TLSConfig{Certificates: []CertFiles{{cert, key}}}.WithDefaults()
	withPP := ProxyProtocolConfig{Trusted: []string{"10.0.0.0/8"}}.WithDefaults()
	tests := []struct {
		name string
		tls  TLSConfig
		pp   ProxyProtocolConfig
		want []string
	}{
		{"plain", TLSConfig{}.WithDefaults(), ProxyProtocolConfig{}.WithDefaults(), nil},
		{"tls", withTLS, ProxyProtocolConfig{}.WithDefaults(), []string{
			"strangler_tls_certificate_expiry_timestamp_seconds", "strangler_tls_certificate_reloads_total", "strangler_tls_handshake_errors_total"}},
		{"proxy protocol", TLSConfig{}.WithDefaults(), withPP, []string{"strangler_proxy_protocol_rejected_total"}},
	}
	for _, tt := range tests {
		reg := prometheus.NewRegistry()
		e, err := New(tt.tls, tt.pp, zaptest.NewLogger(t), reg)
		if err != nil {
			t.Fatal(err)
		}
		// Touch every series, so a registered vector shows.
		e.m.reloadOK.Add(0)
		e.m.ppUntrusted.Add(0)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, mf := range mfs {
			got = append(got, mf.GetName())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: exports %v, want %v", tt.name, got, tt.want)
		}
	}
}

func testValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestListener: PROXY headers from a trusted peer set the peer address; a
// header from an untrusted one, or a broken one, closes the connection
// unanswered; TLS over it all, with a failed handshake counted.
func TestListener(t *testing.T) {
	ca := testcert.NewCA(t, "ca")
	dir := t.TempDir()
	cert, key := ca.Server(t, "shop.example").Write(t, dir, "shop")
	tests := []struct {
		name    string
		trusted []string
		tls     bool
		send    func(c net.Conn) net.Conn // what the client writes first
		want    string                    // the answer body ("" = closed unanswered)
	}{
		{"trusted v1", []string{"127.0.0.1"}, false, header(1, "203.0.113.9"), "203.0.113.9"},
		{"trusted v2", []string{"127.0.0.0/8"}, false, header(2, "2001:db8::9"), "2001:db8::9"},
		{"trusted, no header", []string{"127.0.0.1"}, false, nothing, "127.0.0.1"},
		{"untrusted header", []string{"10.0.0.0/8"}, false, header(1, "203.0.113.9"), ""},
		{"untrusted, no header", []string{"10.0.0.0/8"}, false, nothing, "127.0.0.1"},
		{"broken header", []string{"127.0.0.1"}, false, raw("PROXY TCP4 garbage\r\n"), ""},
		{"v2 then TLS", []string{"127.0.0.1"}, true, header(2, "198.51.100.2"), "198.51.100.2 tls"},
		{"plain HTTP to TLS", nil, true, nothing, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := TLSConfig{}
			if tt.tls {
				tc.Certificates = []CertFiles{{cert, key}}
			}
			e, err := New(tc.WithDefaults(), ProxyProtocolConfig{Trusted: tt.trusted}.WithDefaults(), zaptest.NewLogger(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			addr := serveEcho(t, e)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			c = tt.send(c)
			if tt.tls && tt.want != "" {
				c = tls.Client(c, &tls.Config{RootCAs: ca.Pool(), ServerName: "shop.example"})
			}
			_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
			b, _ := io.ReadAll(c)
			_, body, _ := strings.Cut(string(b), "\r\n\r\n")
			if body != tt.want || (tt.want == "" && len(b) != 0) {
				t.Errorf("got %q, want body %q", b, tt.want)
			}
		})
	}
}

func header(v byte, src string) func(net.Conn) net.Conn {
	return func(c net.Conn) net.Conn {
		ip := net.ParseIP(src)
		tp := proxyproto.TCPv4
		if ip.To4() == nil {
			tp = proxyproto.TCPv6
		}
		h := &proxyproto.Header{Version: v, Command: proxyproto.PROXY, TransportProtocol: tp,
			SourceAddr: &net.TCPAddr{IP: ip, Port: 1234}, DestinationAddr: &net.TCPAddr{IP: ip, Port: 80}}
		_, _ = h.WriteTo(c)
		return c
	}
}

func nothing(c net.Conn) net.Conn { return c }

func raw(s string) func(net.Conn) net.Conn {
	return func(c net.Conn) net.Conn { _, _ = io.WriteString(c, s); return c }
}

// serveEcho serves, on e's layers, a handler answering the peer address
// (and "tls" over TLS).
func serveEcho(t *testing.T, e *Edge) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			s := ctx.RemoteIP().String()
			if ctx.IsTLS() {
				s += " tls"
			}
			ctx.SetBodyString(s)
		},
		NoDefaultDate: true, NoDefaultContentType: true, NoDefaultServerHeader: true,
		MaxIdleWorkerDuration: 100 * time.Millisecond, CloseOnShutdown: true,
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			t.Errorf("the server saw a bad request: %v", err)
		},
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(e.Wrap(ln)) }()
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return ln.Addr().String()
}

func TestRedirect(t *testing.T) {
	tests := []struct {
		port              int
		method, host, uri string
		status            int
		location          string
	}{
		{443, "GET", "shop.example", "/a?b=%2F", 301, "https://shop.example/a?b=%2F"},
		{8443, "HEAD", "shop.example:80", "/", 301, "https://shop.example:8443/"},
		{443, "POST", "shop.example", "/login", 308, "https://shop.example/login"},
		{443, "GET", "[2001:db8::1]:80", "/x", 301, "https://[2001:db8::1]/x"},
		{443, "GET", "", "/", 400, ""},
		{443, "GET", "evil.example/@x", "/", 400, ""},
	}
	for _, tt := range tests {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(tt.method)
		ctx.Request.Header.SetHost(tt.host)
		ctx.Request.SetRequestURI(tt.uri)
		ctx.Request.Header.Set("X-Request-Id", "rid-7")
		Redirect(tt.port)(&ctx)
		if got := ctx.Response.StatusCode(); got != tt.status || string(ctx.Response.Header.Peek("Location")) != tt.location {
			t.Errorf("%s %s %s: %d %q, want %d %q", tt.method, tt.host, tt.uri, got, ctx.Response.Header.Peek("Location"), tt.status, tt.location)
		}
		if tt.status == 400 && !strings.Contains(string(ctx.Response.Body()), "(request id rid-7)") {
			t.Errorf("%s %q: body %q, want the request id", tt.method, tt.host, ctx.Response.Body())
		}
	}
}
