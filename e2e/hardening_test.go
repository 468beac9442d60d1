package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/internal/monolith"
	"github.com/strangler-proxy/strangler/internal/monolith/monolithtest"
	"github.com/strangler-proxy/strangler/internal/wsframe"
)

// Hardening (issue 6): hostile input against the real binary in front of the
// real Nginx + PHP-FPM, checked in what PHP received (the monolith's
// /headers echo) and in the bytes that reached Nginx (wireTap).

// wireTap sits between strangler and Nginx and keeps every byte strangler
// sent, per connection, to count and list the requests Nginx received.
type wireTap struct {
	addr string
	mu   sync.Mutex
	sent []*bytes.Buffer
}

func startWireTap(t *testing.T, upstream string) *wireTap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &wireTap{addr: "http://" + ln.Addr().String()}
	var wg sync.WaitGroup
	var conns sync.Map
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.DialTimeout("tcp", strings.TrimPrefix(upstream, "http://"), 5*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			buf := &bytes.Buffer{}
			w.mu.Lock()
			w.sent = append(w.sent, buf)
			w.mu.Unlock()
			conns.Store(c, u)
			wg.Add(2)
			go func() { // strangler → Nginx, recorded
				defer wg.Done()
				b := make([]byte, 32<<10)
				for {
					n, err := c.Read(b)
					if n > 0 {
						w.mu.Lock()
						buf.Write(b[:n])
						w.mu.Unlock()
						if _, werr := u.Write(b[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				if tc, ok := u.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
			}()
			go func() { // Nginx → strangler
				defer wg.Done()
				_, _ = io.Copy(c, u)
				c.Close()
				u.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, v any) bool { k.(net.Conn).Close(); v.(net.Conn).Close(); return true })
		wg.Wait()
	})
	return w
}

// requests parses what Nginx received with net/http's strict parser and
// returns "METHOD target" for each request, in order per connection, with
// " (cut off)" after one whose body never completed (Nginx reads a body
// whole before PHP runs, so PHP never saw it).
func (w *wireTap) requests(t *testing.T) []string {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, b := range w.sent {
		br := bufio.NewReader(bytes.NewReader(b.Bytes()))
		for {
			if _, err := br.Peek(1); err != nil {
				break
			}
			req, err := http.ReadRequest(br)
			if err != nil {
				t.Errorf("Nginx received bytes that are not a request: %v in %q", err, b.Bytes())
				break
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				out = append(out, req.Method+" "+req.RequestURI+" (cut off)")
				break // cut short by strangler: nothing follows on that connection
			}
			out = append(out, req.Method+" "+req.RequestURI)
		}
	}
	return out
}

// exchange sends raw on a fresh connection and returns every response the
// client got until the connection closed (or went quiet for a second).
func exchangeAll(t *testing.T, addr, raw string) []*http.Response {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(addr, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	go func() { _, _ = io.WriteString(c, raw) }()
	br := bufio.NewReader(c)
	var out []*http.Response
	for {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := br.Peek(1); err != nil {
			return out
		}
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", len(out)+1, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		out = append(out, resp)
	}
}

func bodyOf(r *http.Response) string {
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	return string(b)
}

// smuggled is the request hidden behind each hostile one: a distinctive
// target that must never reach Nginx on its own.
const smuggled = "GET /status/418 HTTP/1.1\r\nHost: shop.example\r\n\r\n"

// TestHardeningFraming: ambiguous framing and header syntax are refused
// (400, 501 or 505, connection closed); the request hidden behind them never
// reaches Nginx; Nginx receives exactly the requests strangler accepted.
func TestHardeningFraming(t *testing.T) {
	m := startMonolith(t)
	tap := startWireTap(t, m.URL)
	p := start(t, config{Upstream: tap.addr, Routes: pingRoutes("ported")})
	const host = "Host: shop.example\r\n"
	tests := []struct {
		name    string
		request string
		status  int
		// forwarded is the request Nginx must receive for it, if any.
		forwarded string
	}{
		{"CL and TE", "POST /headers HTTP/1.1\r\n" + host + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400, ""},
		{"TE and CL", "POST /headers HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 52\r\n\r\n" + smuggled + "0\r\n\r\n", 400, ""},
		{"TE chunked, identity", "POST /headers HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled, 400, ""},
		{"TE identity", "POST /headers HTTP/1.1\r\n" + host + "Transfer-Encoding: identity\r\n\r\n" + smuggled, 400, ""},
		{"TE with a leading space in the name line", "POST /headers HTTP/1.1\r\n" + host + " Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400, ""},
		{"TE xchunked", "POST /headers HTTP/1.1\r\n" + host + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + smuggled, 400, ""},
		{"TE gzip, chunked", "POST /headers HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400, ""},
		{"TE name with a space before the colon", "POST /headers HTTP/1.1\r\n" + host + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + smuggled, 400, ""},
		{"CL list", "POST /headers HTTP/1.1\r\n" + host + "Content-Length: 1, 2\r\n\r\nab" + smuggled, 400, ""},
		{"CL sign", "POST /headers HTTP/1.1\r\n" + host + "Content-Length: +5\r\n\r\nhello" + smuggled, 400, ""},
		{"CL hex", "POST /headers HTTP/1.1\r\n" + host + "Content-Length: 0x10\r\n\r\n" + smuggled, 400, ""},
		{"two CL differing", "POST /headers HTTP/1.1\r\n" + host + "Content-Length: 0\r\nContent-Length: 48\r\n\r\n" + smuggled, 400, ""},
		{"TE on HTTP/1.0", "POST /headers HTTP/1.0\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400, ""},
		{"obs-fold", "GET /headers HTTP/1.1\r\n" + host + "X-A: one\r\n Transfer-Encoding: chunked\r\n\r\n" + smuggled, 400, ""},
		{"bare LF field line", "GET /headers HTTP/1.1\r\nHost: shop.example\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400, ""},
		{"control character in a value", "GET /headers HTTP/1.1\r\n" + host + "X-A: a\x01b\r\n\r\n" + smuggled, 400, ""},
		{"control character in a name", "GET /headers HTTP/1.1\r\n" + host + "X\x00A: b\r\n\r\n" + smuggled, 400, ""},
		{"space inside a name", "GET /headers HTTP/1.1\r\n" + host + "X Forwarded For: 6.6.6.6\r\n\r\n" + smuggled, 400, ""},
		{"HTTP/2.0 request line", "GET /headers HTTP/2.0\r\n" + host + "\r\n" + smuggled, 505, ""},
		{"bare LF in a chunk size", "POST /headers HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n" + smuggled, 400, ""},
		// Issue 12: fasthttp accepted or waited on these.
		{"bare LF after chunk data", "POST /headers HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n2\r\nxx\n0\r\n\r\n" + smuggled, 400, ""},
		{"chunk size not hex", "POST /headers HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n2\r\nxx\r\nzz\r\n0\r\n\r\n" + smuggled, 400, ""},
		{"trailer section not ended", "POST /headers HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n2\r\nxx\r\n0\r\nfoo\r\n\r\n" + smuggled, 400, ""},
		{"undeclared trailer", "POST /headers HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n2\r\nxx\r\n0\r\nX-T: 1\r\n\r\n" + smuggled, 400, ""},
		{"trailer name not a token", "POST /headers HTTP/1.1\r\n" + host + "Trailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxx\r\n0\r\nX T: 1\r\n\r\n" + smuggled, 400, ""},
		{"head ended by LF LF", "GET /headers HTTP/1.1\nHost: shop.example\n\n" + smuggled, 400, ""},
		// With no CRLF CRLF behind it, fasthttp alone waited for one until
		// read_timeout (30 s, past exchangeAll's patience) and answered 408.
		{"head ended by LF LF, alone", "GET /headers HTTP/1.1\nHost: shop.example\n\n", 400, ""},
		{"head ended by CRLF LF, alone", "GET /headers HTTP/1.1\r\nHost: shop.example\r\n\n", 400, ""},
		{"Expect other than 100-continue", "POST /headers HTTP/1.1\r\n" + host + "Expect: foo\r\nContent-Length: 2\r\n\r\nxx" + smuggled, 417, ""},
		{"Transfer_Encoding", "POST /headers HTTP/1.1\r\n" + host + "Transfer_Encoding: chunked\r\nContent-Length: 48\r\n\r\n" + smuggled, 400, ""},
		{"Content_Length", "POST /headers HTTP/1.1\r\n" + host + "Content_Length: 0\r\nContent-Length: 48\r\n\r\n" + smuggled, 400, ""},
		// Sound framing: forwarded once; a request-shaped body is a body.
		{"chunked body that looks like a request",
			"POST /headers HTTP/1.1\r\n" + host + "Transfer-Encoding: Chunked\r\n\r\n30\r\n" + smuggled + "\r\n0\r\n\r\n", 200, "POST /headers"},
		{"CL body that looks like a request",
			"POST /headers HTTP/1.1\r\n" + host + "Content-Length: 48\r\n\r\n" + smuggled, 200, "POST /headers"},
		{"declared trailer (dropped)",
			"POST /headers HTTP/1.1\r\n" + host + "Trailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n30\r\n" + smuggled + "\r\n0\r\nx-t: 1\r\n\r\n", 200, "POST /headers"},
	}
	var want []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(tap.requests(t))
			resps := exchangeAll(t, p.URL, tt.request)
			if len(resps) == 0 {
				t.Fatal("no response")
			}
			if resps[0].StatusCode != tt.status {
				t.Fatalf("status %d %q, want %d", resps[0].StatusCode, bodyOf(resps[0]), tt.status)
			}
			for _, r := range resps {
				if r.StatusCode == 418 {
					t.Fatal("the smuggled request was answered")
				}
			}
			if tt.status != 200 {
				if len(resps) != 1 || !resps[0].Close {
					t.Errorf("%d responses, close=%v: a refusal must close the connection", len(resps), resps[0].Close)
				}
			} else {
				var e echo
				if err := json.Unmarshal([]byte(bodyOf(resps[0])), &e); err != nil {
					t.Fatal(err)
				}
				if e.BodyLength != len(smuggled) {
					t.Errorf("PHP got a %d-byte body, want the %d bytes sent", e.BodyLength, len(smuggled))
				}
				want = append(want, tt.forwarded)
			}
			// A refusal found in a chunked body comes after its head went
			// out: Nginx may hold that head (this one's, or an earlier
			// one's the tap recorded late), never a complete request.
			for _, r := range tap.requests(t)[before:] {
				if tt.forwarded == "" && !strings.HasSuffix(r, " (cut off)") {
					t.Errorf("Nginx received %q for a refused request", r)
				}
			}
		})
	}
	// Across the table: Nginx never saw the smuggled target, and saw the
	// accepted requests once each, complete.
	var seen []string
	for _, r := range tap.requests(t) {
		if strings.Contains(r, "/status/418") {
			t.Errorf("Nginx received the smuggled request %q", r)
		}
		seen = append(seen, r)
	}
	if n := countOf(seen, "POST /headers"); n != len(want) {
		t.Errorf("Nginx received %q; want the %d accepted requests complete", seen, len(want))
	}
}

func countOf(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}

// TestHardeningForwardedHeaders: from an untrusted peer PHP sees exactly
// one X-Forwarded-For, the real peer, whatever the client sent (twice, with
// underscores, named in Connection), and none of the other spoofable
// fields; from a trusted proxy the chain is kept, joined in one field.
func TestHardeningForwardedHeaders(t *testing.T) {
	m := startMonolith(t)
	spoof := "GET /headers HTTP/1.1\r\nHost: shop.example\r\n" +
		"X-Forwarded-For: 203.0.113.1\r\n" +
		"Connection: X-Forwarded-For, X-Forwarded-Proto, x-forwarded-host\r\n" +
		"X-Forwarded-Proto: https\r\n" +
		"X-Forwarded-Host: evil.example\r\n" +
		"X-Real-IP: 203.0.113.2\r\n" +
		"Forwarded: for=203.0.113.3\r\n" +
		"Client-IP: 203.0.113.4\r\n" +
		"True-Client-IP: 203.0.113.5\r\n" +
		"X-Original-URL: /admin\r\n" +
		"X-Forwarded-Ssl: on\r\n" +
		"X_Forwarded_For: 203.0.113.6\r\n" +
		"x-forwarded-for: 203.0.113.7\r\n\r\n"
	spoofed := []string{"HTTP_X_REAL_IP", "HTTP_FORWARDED", "HTTP_CLIENT_IP", "HTTP_TRUE_CLIENT_IP", "HTTP_X_ORIGINAL_URL", "HTTP_X_FORWARDED_SSL"}

	t.Run("untrusted peer", func(t *testing.T) {
		p := start(t, config{Upstream: m.URL})
		status, e := rawEcho(t, p.URL, spoof)
		if status != 200 {
			t.Fatalf("status %d", status)
		}
		want := map[string]string{"HTTP_X_FORWARDED_FOR": "127.0.0.1", "HTTP_X_FORWARDED_PROTO": "http", "HTTP_X_FORWARDED_HOST": "shop.example"}
		for k, v := range want {
			if got, _ := e.header(k); got != v {
				t.Errorf("PHP's %s = %q, want %q", k, got, v)
			}
		}
		for _, k := range spoofed {
			if v, ok := e.header(k); ok {
				t.Errorf("PHP got the client's %s = %q", k, v)
			}
		}
	})
	t.Run("trusted proxy", func(t *testing.T) {
		p := start(t, config{Upstream: m.URL, LegacyExtra: "  trusted_proxies: [\"127.0.0.0/8\"]\n"})
		// Without the Connection line: fields it names are hop-by-hop and
		// dropped whoever sends them.
		status, e := rawEcho(t, p.URL, strings.Replace(spoof, "Connection: X-Forwarded-For, X-Forwarded-Proto, x-forwarded-host\r\n", "", 1))
		if status != 200 {
			t.Fatalf("status %d", status)
		}
		if got, _ := e.header("HTTP_X_FORWARDED_FOR"); got != "203.0.113.1, 203.0.113.7, 127.0.0.1" {
			t.Errorf("PHP's X-Forwarded-For = %q, want the whole chain then the peer", got)
		}
		if got, _ := e.header("HTTP_X_REAL_IP"); got != "203.0.113.2" {
			t.Errorf("PHP's X-Real-IP from a trusted proxy = %q", got)
		}
	})
}

// TestHardeningHost: Host problems are 400; for an absolute target the
// authority is what routing used and what PHP sees as HTTP_HOST.
func TestHardeningHost(t *testing.T) {
	m := startMonolith(t)
	p := start(t, config{Upstream: m.URL,
		Routes: "  - {name: ping, methods: [GET], path: /api/v1/ping, host: go.example, mode: ported, handler: ping}\n"})
	refused := []struct{ name, request string }{
		{"userinfo in Host", "GET /headers HTTP/1.1\r\nHost: user:pw@shop.example\r\n\r\n"},
		{"userinfo in the target", "GET http://user:pw@shop.example/headers HTTP/1.1\r\nHost: shop.example\r\n\r\n"},
		{"two Hosts", "GET /headers HTTP/1.1\r\nHost: shop.example\r\nHost: go.example\r\n\r\n"},
		{"no Host on HTTP/1.1", "GET /headers HTTP/1.1\r\n\r\n"},
		{"port out of range", "GET /headers HTTP/1.1\r\nHost: shop.example:70000\r\n\r\n"},
		{"empty port", "GET /headers HTTP/1.1\r\nHost: shop.example:\r\n\r\n"},
		{"bad character", "GET /headers HTTP/1.1\r\nHost: shop.example;x\r\n\r\n"},
		{"percent-encoded", "GET /headers HTTP/1.1\r\nHost: go%2Eexample\r\n\r\n"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			if status, _ := rawEcho(t, p.URL, tt.request); status != 400 {
				t.Fatalf("status %d, want 400", status)
			}
		})
	}
	t.Run("absolute target: its authority wins for routing and for PHP", func(t *testing.T) {
		status, e := rawEcho(t, p.URL, "GET http://shop.example/headers?q=1 HTTP/1.1\r\nHost: go.example\r\n\r\n")
		if status != 200 || e.HTTPHost != "shop.example" || e.RequestURI != "/headers?q=1" {
			t.Fatalf("status %d, PHP saw Host %q and target %q; want shop.example and /headers?q=1", status, e.HTTPHost, e.RequestURI)
		}
		if v, _ := e.header("HTTP_X_FORWARDED_HOST"); v != "shop.example" {
			t.Errorf("X-Forwarded-Host %q", v)
		}
		resps := exchangeAll(t, p.URL, "GET http://go.example/api/v1/ping HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n")
		if len(resps) != 1 || implementation(t, []byte(bodyOf(resps[0]))) != "go" {
			t.Fatalf("GET http://go.example/api/v1/ping with Host shop.example: not answered by the go.example route")
		}
		resps = exchangeAll(t, p.URL, "GET http://shop.example/api/v1/ping HTTP/1.1\r\nHost: go.example\r\nConnection: close\r\n\r\n")
		if len(resps) != 1 || implementation(t, []byte(bodyOf(resps[0]))) != "php" {
			t.Fatalf("GET http://shop.example/api/v1/ping with Host go.example: not answered by PHP")
		}
	})
	t.Run("HTTP/1.0 without Host", func(t *testing.T) {
		status, e := rawEcho(t, p.URL, "GET /headers HTTP/1.0\r\n\r\n")
		if status != 200 || e.HTTPHost == "" {
			t.Fatalf("status %d, Host %q", status, e.HTTPHost)
		}
	})
}

// TestHardeningPaths: with GET /api/v1/ping ported, every path form is
// answered by the side both the route table and index.php's router pick
// (Go says "go", PHP "php"), or refused with 400. The raw query string
// reaches PHP unchanged.
func TestHardeningPaths(t *testing.T) {
	m := startMonolith(t)
	p := start(t, config{Upstream: m.URL, Routes: pingRoutes("ported")})
	tests := []struct{ target, want string }{
		{"/api/v1/ping", "go"},
		{"/api/v1/./ping", "400"},
		{"/api/v1/../v1/ping", "400"},
		{"/api/v1/%2e%2e/v1/ping", "400"},
		{"/api/v1/%2E/ping", "400"},
		{"/api/v1/ping/.", "400"},
		{"/static/../api/v1/ping", "400"},
		{"/api//v1/ping", "400"},
		{"//api/v1/ping", "400"},
		{"/api%2F%2Fv1/ping", "400"},
		{"/api/v1/%70ing", "go"},
		{"/api%2Fv1/ping", "go"},
		{"/api/v1/ping;x", "404"},
		{"/api/v1/ping%00", "400"},
		{"/api/v1/ping%0A", "400"},
		{"/api/v1/ping%0d%0a", "400"},
		{`/api\v1\ping`, "400"},
		{"/api%5Cv1%5Cping", "400"},
		{"/API/v1/ping", "404"},
		{"/api/v1/ping/", "404"},
		{"/api/v1/ping#frag", "400"},
		{"/api/v1/ping?x=%2F..%00&y=a;b", "go"},
		{"http://shop.example/api/v1/ping", "go"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			resps := exchangeAll(t, p.URL, "GET "+tt.target+" HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n")
			if len(resps) != 1 {
				t.Fatalf("%d responses", len(resps))
			}
			r := resps[0]
			got := fmt.Sprint(r.StatusCode)
			if r.StatusCode == 200 {
				got = implementation(t, []byte(bodyOf(r)))
			} else if r.StatusCode == 404 && !strings.Contains(bodyOf(r), `"not_found"`) {
				t.Fatalf("404 not from PHP: %q", bodyOf(r))
			}
			if got != tt.want {
				t.Fatalf("answered %s (%q), want %s", got, bodyOf(r), tt.want)
			}
		})
	}
	t.Run("query string untouched", func(t *testing.T) {
		const q = "a=%2F..%2f&b=+x;y&&c=%zz&d=%00&e=%E2%82%AC&f=/../&g=?&=&h"
		status, e := rawEcho(t, p.URL, "GET /headers?"+q+" HTTP/1.1\r\nHost: shop.example\r\n\r\n")
		if status != 200 || e.QueryString != q || e.RequestURI != "/headers?"+q {
			t.Fatalf("status %d, PHP saw QUERY_STRING %q, REQUEST_URI %q", status, e.QueryString, e.RequestURI)
		}
	})
}

// TestHardeningSlowClients: about 300 slow connections (slowloris heads,
// trickled bodies, clients that never read a big download) are each cut off
// by server.read_timeout / write_timeout (2s here) while a normal client
// keeps getting answers. The bounds are generous: this is about being cut
// off at all and traffic flowing, not about timing.
func TestHardeningSlowClients(t *testing.T) {
	const (
		slowHeads    = 150
		slowBodies   = 140
		nonReaders   = 10
		timeout      = 2 * time.Second
		cutBound     = 20 * time.Second // from the first byte to the close
		latencyBound = 10 * time.Second
	)
	m := monolithtest.Start(t, monolith.Options{Workers: nonReaders + 6})
	p := start(t, config{Upstream: m.URL, Extra: fmt.Sprintf("server:\n  read_timeout: %s\n  write_timeout: %s\n", timeout, timeout)})
	addr := strings.TrimPrefix(p.URL, "http://")

	type slow struct {
		kind     string
		c        net.Conn
		start    time.Time
		closedIn time.Duration
		got      int64
	}
	var (
		mu    sync.Mutex
		slows []*slow
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	open := func(kind, head string) {
		defer wg.Done()
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Errorf("%s: dial: %v", kind, err)
			return
		}
		s := &slow{kind: kind, c: c, start: time.Now()}
		mu.Lock()
		slows = append(slows, s)
		mu.Unlock()
		if _, err := io.WriteString(c, head); err != nil {
			t.Errorf("%s: %v", kind, err)
			return
		}
		if kind == "non-reader" {
			// Never read while the test holds the others; then drain what the
			// kernel kept, to see whether the proxy ended the download.
			<-stop
			_ = c.SetReadDeadline(time.Now().Add(cutBound))
			n, _ := io.Copy(io.Discard, c)
			s.got = n
			s.closedIn = time.Since(s.start)
			return
		}
		// Trickle one byte every 300ms until the proxy closes.
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			_ = c.SetReadDeadline(time.Now().Add(cutBound))
			_, _ = io.Copy(io.Discard, c)
			s.closedIn = time.Since(s.start)
		}()
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-closed:
				return
			case <-tick.C:
				if _, err := c.Write([]byte("x")); err != nil {
					<-closed
					return
				}
			}
		}
	}
	for i := 0; i < slowHeads; i++ {
		wg.Add(1)
		go open("slow head", "GET /headers HTTP/1.1\r\nHost: shop.example\r\nX-Slow: ")
	}
	for i := 0; i < slowBodies; i++ {
		wg.Add(1)
		go open("slow body", "POST /headers HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 100000\r\n\r\n")
	}
	for i := 0; i < nonReaders; i++ {
		wg.Add(1)
		go open("non-reader", "GET /download/512 HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range slows {
			s.c.Close()
		}
	})

	// The normal client, while the slow ones are held.
	cl := &http.Client{Timeout: 30 * time.Second}
	defer cl.CloseIdleConnections()
	var worst time.Duration
	ok := 0
	deadline := time.Now().Add(3 * timeout)
	for time.Now().Before(deadline) {
		start := time.Now()
		resp, err := cl.Get(p.URL + "/api/v1/ping")
		if err != nil {
			t.Fatalf("normal request failed under slow clients: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || implementation(t, b) != "php" {
			t.Fatalf("normal request: %d %q", resp.StatusCode, b)
		}
		worst = max(worst, time.Since(start))
		ok++
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("%d normal requests, worst latency %s, %d slow connections", ok, worst, len(slows))
	if worst > latencyBound {
		t.Errorf("normal request took %s under slow clients, bound %s", worst, latencyBound)
	}
	if len(slows) != slowHeads+slowBodies+nonReaders {
		t.Fatalf("%d slow connections opened", len(slows))
	}
	for _, s := range slows {
		switch {
		case s.closedIn == 0 || s.closedIn >= cutBound:
			t.Errorf("%s connection not closed by the proxy within %s (closed after %s, %d bytes read)", s.kind, cutBound, s.closedIn, s.got)
		case s.kind == "non-reader" && s.got >= 512<<20:
			t.Errorf("non-reader got the whole download: not cut off")
		}
	}
}

// TestHardeningClientGoneCancelsUpstream: a client that leaves mid-download
// frees the PHP worker streaming it. With one worker, the next request is
// answered at once; had strangler kept the upstream request, PHP would be
// stuck writing 2 GiB nobody reads.
func TestHardeningClientGoneCancelsUpstream(t *testing.T) {
	m := monolithtest.Start(t, monolith.Options{Workers: 1})
	p := start(t, config{Upstream: m.URL})
	c := dialRaw(t, p.URL, "GET /download/2048 HTTP/1.1\r\nHost: shop.example\r\n\r\n", 30*time.Second)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("download: %v %v", resp, err)
	}
	if _, err := io.CopyN(io.Discard, resp.Body, 1<<20); err != nil {
		t.Fatal(err)
	}
	c.Close()

	cl := &http.Client{Timeout: 15 * time.Second}
	defer cl.CloseIdleConnections()
	r, err := cl.Get(p.URL + "/api/v1/ping")
	if err != nil {
		t.Fatalf("the only PHP worker is still busy with the abandoned download: %v", err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if implementation(t, b) != "php" {
		t.Fatalf("ping: %q", b)
	}
}

// startWSEcho is a Go websocket echo server standing in for a legacy
// websocket endpoint (PHP-FPM cannot hold one open). It answers plain HTTP
// requests 200 "plain". ended gets how each websocket connection ended.
func startWSEcho(t *testing.T) (addr string, ended <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan error, 8)
	var wg sync.WaitGroup
	var conns sync.Map
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, struct{}{})
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(time.Minute))
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				if !strings.EqualFold(req.Header.Get("Upgrade"), "websocket") {
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nplain")
					return
				}
				fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
					wsframe.Accept(req.Header.Get("Sec-WebSocket-Key")))
				_, _ = c.Write(wsframe.Encode(0x1, []byte("welcome "+req.Header.Get("X-Forwarded-For")), false))
				for {
					op, p, err := wsframe.Decode(br)
					if err != nil {
						ch <- err
						return
					}
					if _, err := c.Write(wsframe.Encode(op, p, false)); err != nil {
						ch <- err
						return
					}
					if op == 0x8 {
						ch <- nil
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	return "http://" + ln.Addr().String(), ch
}

const wsHandshake = "GET /socket HTTP/1.1\r\nHost: shop.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
	"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"

// wsOpen sends wsHandshake to addr and reads the answer's head; frames
// follow on br. The connection is closed when the test ends.
func wsOpen(t *testing.T, addr string) (net.Conn, *bufio.Reader, *http.Response, error) {
	t.Helper()
	c := dialRaw(t, addr, wsHandshake, 20*time.Second)
	t.Cleanup(func() { c.Close() })
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	return c, br, resp, err
}

// TestHardeningWebSocket: a legacy websocket passes through the real binary
// (101, frames both ways, close both ways); an upgrade to a ported route is
// an ordinary request answered by Go; against the real monolith, which
// cannot switch, PHP's ordinary answer comes back.
func TestHardeningWebSocket(t *testing.T) {
	up, ended := startWSEcho(t)
	p := start(t, config{Upstream: up})

	for _, clientCloses := range []bool{false, true} {
		t.Run(fmt.Sprintf("client closes TCP first %v", clientCloses), func(t *testing.T) {
			c, br, resp, err := wsOpen(t, p.URL)
			if err != nil || resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
				t.Fatalf("handshake: %v %v", resp, err)
			}
			if op, msg, err := wsframe.Decode(br); err != nil || op != 1 || string(msg) != "welcome 127.0.0.1" {
				t.Fatalf("greeting %q %v: want the proxy's X-Forwarded-For, not the client's", msg, err)
			}
			for _, msg := range [][]byte{[]byte("hi"), bytes.Repeat([]byte{0xa5}, 200<<10)} {
				if _, err := c.Write(wsframe.Encode(0x2, msg, true)); err != nil {
					t.Fatal(err)
				}
				if op, got, err := wsframe.Decode(br); err != nil || op != 2 || !bytes.Equal(got, msg) {
					t.Fatalf("echo of %d bytes: %d bytes, %v", len(msg), len(got), err)
				}
			}
			upstreamEnd := func() error {
				select {
				case err := <-ended:
					return err
				case <-time.After(20 * time.Second):
					t.Fatal("the upstream connection stayed open")
					return nil
				}
			}
			if clientCloses {
				c.Close()
				if err := upstreamEnd(); !errors.Is(err, io.EOF) {
					t.Fatalf("upstream ended with %v, want EOF", err)
				}
				return
			}
			if _, err := c.Write(wsframe.Encode(0x8, []byte{3, 232}, true)); err != nil {
				t.Fatal(err)
			}
			if op, _, err := wsframe.Decode(br); err != nil || op != 8 {
				t.Fatalf("close frame %x %v", op, err)
			}
			if err := upstreamEnd(); err != nil {
				t.Fatalf("upstream: %v", err)
			}
			if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
				t.Fatalf("after the close: %v, want EOF", err)
			}
		})
	}

	// A shadowed legacy route still tunnels: the sampled copy is dropped
	// (reason "upgrade"), the client's handshake and frames are untouched.
	t.Run("shadowed legacy route still tunnels", func(t *testing.T) {
		p := start(t, config{Upstream: up,
			Routes: "  - {name: socket, methods: [GET], path: /socket, mode: shadow, handler: ping}\n"})
		c, br, resp, err := wsOpen(t, p.URL)
		if err != nil || resp.StatusCode != 101 {
			t.Fatalf("handshake: %v %v", resp, err)
		}
		if _, _, err := wsframe.Decode(br); err != nil {
			t.Fatalf("greeting: %v", err)
		}
		if _, err := c.Write(wsframe.Encode(0x1, []byte("through the shadow"), true)); err != nil {
			t.Fatal(err)
		}
		if op, got, err := wsframe.Decode(br); err != nil || op != 1 || string(got) != "through the shadow" {
			t.Fatalf("echo %q %v", got, err)
		}
		if _, err := c.Write(wsframe.Encode(0x8, []byte{3, 232}, true)); err != nil {
			t.Fatal(err)
		}
		if err := <-ended; err != nil {
			t.Fatalf("upstream: %v", err)
		}
		r := routeReport(t, p, "socket", 1)
		if k := r.Stats.Counts; k.Skipped != 1 || k.Compared != 0 || r.Stats.SkipReasons["upgrade"] != 1 {
			t.Fatalf("shadow outcomes %+v %v, want one skipped for upgrade", k, r.Stats.SkipReasons)
		}
	})

	t.Run("ported route is not upgraded", func(t *testing.T) {
		m := startMonolith(t)
		p := start(t, config{Upstream: m.URL, Routes: pingRoutes("ported")})
		resps := exchangeAll(t, p.URL, strings.Replace(wsHandshake, "/socket", "/api/v1/ping", 1))
		if len(resps) != 1 || resps[0].StatusCode != 200 || implementation(t, []byte(bodyOf(resps[0]))) != "go" {
			t.Fatalf("upgrade to a ported route: want Go's ordinary 200")
		}
		status, e := rawEcho(t, p.URL, strings.Replace(wsHandshake, "/socket", "/headers", 1))
		if status != 200 {
			t.Fatalf("PHP: %d", status)
		}
		if v, _ := e.header("HTTP_UPGRADE"); v != "websocket" {
			t.Errorf("PHP saw Upgrade %q: the handshake was not forwarded", v)
		}
	})
}

// TestNoAdminPathOnPublicListener: nothing of the admin listener answers on
// the public one: every admin path goes to the monolith like any other.
func TestNoAdminPathOnPublicListener(t *testing.T) {
	m := startMonolith(t)
	p := start(t, config{Upstream: m.URL, Routes: pingRoutes("ported")})
	adminHost := strings.TrimPrefix(p.Admin, "http://")
	for _, req := range []string{
		"GET /metrics", "GET /healthz", "GET /readyz", "GET /routes", "GET /shadow", "GET /shadow.json",
		"POST /admin/routes/ping/reenable", "POST /admin/hotcache/refresh", "GET /debug/pprof/",
	} {
		for _, host := range []string{"shop.example", adminHost, "localhost"} {
			t.Run(req+" Host "+host, func(t *testing.T) {
				method, path, _ := strings.Cut(req, " ")
				resps := exchangeAll(t, p.URL, method+" "+path+" HTTP/1.1\r\nHost: "+host+"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				if len(resps) != 1 {
					t.Fatalf("%d responses", len(resps))
				}
				body := bodyOf(resps[0])
				if resps[0].StatusCode != 404 || !strings.Contains(body, `"not_found"`) {
					t.Fatalf("%d %q: want PHP's 404", resps[0].StatusCode, body)
				}
			})
		}
	}
	// The admin listener itself does answer them.
	if resp, body := get(t, p.Admin+"/routes"); resp.StatusCode != 200 || !strings.Contains(string(body), `"ping"`) {
		t.Fatalf("admin /routes: %d %q", resp.StatusCode, body)
	}
}

// TestAdminListenerExposure: off loopback the admin listener needs a token:
// without one strangler refuses to start; with one, actions need it.
func TestAdminListenerExposure(t *testing.T) {
	t.Run("refused at start without a token", func(t *testing.T) {
		dir := t.TempDir()
		c := config{Listen: freeAddr(t), Admin: "0.0.0.0:" + strings.Split(freeAddr(t), ":")[1],
			Upstream: "http://127.0.0.1:1", SpoolDir: filepath.Join(dir, "spool")}
		cfg := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(cfg, []byte(c.render()), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range []string{"check", "run"} {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			out, err := exec.CommandContext(ctx, binary, cmd, "-config", cfg).CombinedOutput()
			cancel()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("strangler %s with admin_listen 0.0.0.0 and no token: %v\n%s", cmd, err, out)
			}
			if !strings.Contains(string(out), "admin_token") {
				t.Errorf("strangler %s: the refusal does not name admin_token:\n%s", cmd, out)
			}
		}
	})
	t.Run("actions need the token", func(t *testing.T) {
		const token = "hardening-token-0123456789"
		m := startMonolith(t)
		p := start(t, config{Upstream: m.URL, Admin: "0.0.0.0:" + strings.Split(freeAddr(t), ":")[1],
			Extra: fmt.Sprintf("admin_token: %q\n", token)})
		admin := "http://127.0.0.1:" + strings.Split(p.Admin, ":")[2]
		cl := &http.Client{Timeout: 30 * time.Second}
		defer cl.CloseIdleConnections()
		for _, tt := range []struct {
			method, path, auth string
			want               int
		}{
			{"POST", "/admin/hotcache/refresh", "", 401},
			{"POST", "/admin/hotcache/refresh", "Bearer wrong-token-0123456789", 401},
			{"POST", "/admin/hotcache/refresh", "Bearer " + token, 200},
			{"POST", "/admin/routes/nope/reenable", "", 401},
			{"GET", "/metrics", "", 200},
			{"GET", "/routes", "", 200},
		} {
			req, _ := http.NewRequest(tt.method, admin+tt.path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%s %s (%q): %d %q, want %d", tt.method, tt.path, tt.auth, resp.StatusCode, b, tt.want)
			}
		}
	})
}

// TestHardeningLimits: an oversized Content-Length behind
// "Expect: 100-continue" gets 413 without a 100 Continue first; a small one
// gets its 100 and reaches PHP; limits on the URI, the head and a chunked
// body hold.
func TestHardeningLimits(t *testing.T) {
	m := startMonolith(t)
	p := start(t, config{Upstream: m.URL, Extra: "server:\n  max_body_bytes: 1048576\n"})
	addr := strings.TrimPrefix(p.URL, "http://")
	dial := func(t *testing.T) (net.Conn, *bufio.Reader) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		return c, bufio.NewReader(c)
	}

	t.Run("oversized, with Expect", func(t *testing.T) {
		c, br := dial(t)
		if _, err := io.WriteString(c, "POST /headers HTTP/1.1\r\nHost: shop.example\r\nExpect: 100-continue\r\nContent-Length: 2097152\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 413 ") {
			t.Fatalf("first line %q (%v): want 413 and no 100 Continue before it", line, err)
		}
	})
	t.Run("within the limit, with Expect", func(t *testing.T) {
		c, br := dial(t)
		if _, err := io.WriteString(c, "POST /headers HTTP/1.1\r\nHost: shop.example\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
			t.Fatalf("first line %q (%v): want 100 Continue", line, err)
		}
		if line, _ := br.ReadString('\n'); line != "\r\n" {
			t.Fatalf("100 Continue with fields: %q", line)
		}
		if _, err := io.WriteString(c, "0123456789"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		var e echo
		if err := json.Unmarshal([]byte(bodyOf(resp)), &e); err != nil || e.BodyLength != 10 {
			t.Fatalf("PHP got %d bytes (%v), want 10", e.BodyLength, err)
		}
	})
	for _, tt := range []struct {
		name, request string
		want          int
	}{
		{"URI over the line limit", "GET /" + strings.Repeat("u", 9<<10) + " HTTP/1.1\r\nHost: shop.example\r\n\r\n", 414},
		{"header over the line limit", "GET / HTTP/1.1\r\nHost: shop.example\r\nX-Big: " + strings.Repeat("h", 9<<10) + "\r\n\r\n", 431},
		{"chunked body over the limit", "POST /headers HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n\r\n" +
			strings.Repeat(fmt.Sprintf("%x\r\n%s\r\n", 64<<10, strings.Repeat("b", 64<<10)), 17) + "0\r\n\r\n", 413},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resps := exchangeAll(t, p.URL, tt.request)
			if len(resps) == 0 || resps[0].StatusCode != tt.want {
				t.Fatalf("got %d responses (first %v), want %d", len(resps), resps, tt.want)
			}
		})
	}
}
