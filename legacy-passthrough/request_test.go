package legacy

import (
	"io"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

const okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// lines joins header lines with CRLF and ends the head.
func lines(l ...string) string { return strings.Join(l, "\r\n") + "\r\n\r\n" }

// clientHead is a request head a browser behind some proxy might send, with
// every kind of field the forwarder must keep, drop or rewrite.
var clientHead = []string{
	"hOsT: shop.example",
	"x-CuStOm: one",
	"Cookie: a=1;b=2",
	"X-Dup: first",
	"Connection: keep-alive, X-Secret, x-other",
	"X-Secret: s",
	"X-OTHER: o",
	"Keep-Alive: timeout=5",
	"TE: trailers",
	"Upgrade: websocket",
	"Proxy-Authorization: Basic Zm9vOmJhcg==",
	"Proxy-Connection: keep-alive",
	"Trailer: X-T",
	"X-Dup: second",
	"cookie: c=3",
	"X-Forwarded-For: 203.0.113.1",
	"x-forwarded-for: 198.51.100.2, 198.51.100.3",
	"X-Forwarded-Proto: https",
	"X-Forwarded-Host: evil.example",
	"X_Forwarded_For: 6.6.6.6",
	"x_real_ip: 6.6.6.7",
	"X-Real-IP: 192.0.2.9",
	"Forwarded: for=192.0.2.10",
	"X-Forwarded-Port: 8443",
	"User-agent: test/1.0",
}

func TestRequestHeadFidelity(t *testing.T) {
	tests := []struct {
		name    string
		trusted []string
		uri     string
		extra   []string // appended to clientHead
		edit    func(*fasthttp.RequestCtx)
		want    []string // the upstream head, request line included
	}{
		{
			name: "untrusted peer",
			uri:  "/a//b/../c?x=%2F&y=1&y=2&&z=%zz",
			want: []string{
				"GET /a//b/../c?x=%2F&y=1&y=2&&z=%zz HTTP/1.1",
				"Host: shop.example",
				"x-CuStOm: one",
				"Cookie: a=1;b=2",
				"X-Dup: first",
				"X-Dup: second",
				"cookie: c=3",
				"User-agent: test/1.0",
				"X-Forwarded-For: 127.0.0.1",
				"X-Forwarded-Proto: http",
				"X-Forwarded-Host: shop.example",
			},
		},
		{
			name:    "trusted peer keeps the chain",
			trusted: []string{"10.0.0.0/8", "127.0.0.1"},
			uri:     "/p?",
			want: []string{
				"GET /p? HTTP/1.1",
				"Host: shop.example",
				"x-CuStOm: one",
				"Cookie: a=1;b=2",
				"X-Dup: first",
				"X-Dup: second",
				"cookie: c=3",
				"X-Forwarded-Proto: https",
				"X-Forwarded-Host: evil.example",
				"X-Real-IP: 192.0.2.9",
				"Forwarded: for=192.0.2.10",
				"X-Forwarded-Port: 8443",
				"User-agent: test/1.0",
				"X-Forwarded-For: 203.0.113.1, 198.51.100.2, 198.51.100.3, 127.0.0.1",
			},
		},
		{
			// An absolute target goes upstream in origin form, and its
			// authority, which routing used, is the Host PHP sees.
			name:  "Connection cannot remove our fields or Host",
			uri:   "HTTP://Route.Example:8080/abs?q",
			extra: []string{"connection: X-Forwarded-For, x-forwarded-proto, HOST, X-Forwarded-Host, x-custom"},
			want: []string{
				"GET /abs?q HTTP/1.1",
				"Host: Route.Example:8080",
				"Cookie: a=1;b=2",
				"X-Dup: first",
				"X-Dup: second",
				"cookie: c=3",
				"User-agent: test/1.0",
				"X-Forwarded-For: 127.0.0.1",
				"X-Forwarded-Proto: http",
				"X-Forwarded-Host: Route.Example:8080",
			},
		},
		{
			name:  "front door edits win",
			uri:   "/id",
			extra: []string{"x-request-id: bad id", "X-Keep: 1"},
			edit: func(ctx *fasthttp.RequestCtx) {
				// What the front door does with an id it rejects.
				ctx.Request.Header.Del("x-request-id")
				ctx.Request.Header.Set("X-Request-Id", "fresh")
				ctx.Request.Header.Set("x-CuStOm", "changed")
			},
			want: []string{
				"GET /id HTTP/1.1",
				"Host: shop.example",
				"x-CuStOm: changed",
				"Cookie: a=1;b=2",
				"X-Dup: first",
				"X-Dup: second",
				"cookie: c=3",
				"User-agent: test/1.0",
				"X-Keep: 1",
				"X-Request-Id: fresh",
				"X-Forwarded-For: 127.0.0.1",
				"X-Forwarded-Proto: http",
				"X-Forwarded-Host: shop.example",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up, got := captureServer(t, okResponse)
			cfg := testConfig(up)
			cfg.TrustedProxies = tt.trusted
			fwd, _ := newTestForwarder(t, cfg)
			fr := startFront(t, fwd, tt.edit)

			req := "GET " + tt.uri + " HTTP/1.1\r\n" + lines(append(clientHead[:len(clientHead):len(clientHead)], tt.extra...)...)
			head, body := dial(t, fr.addr).do(t, req, false)
			if status(t, head) != 200 || string(body) != "ok" {
				t.Fatalf("client got %q %q (Serve: %v)", head, body, fr.lastErr(t))
			}
			c := receive(t, got)
			mustEqualHead(t, "upstream request head", string(c.head), lines(tt.want...))
		})
	}
}

func TestRequestBody(t *testing.T) {
	tests := []struct {
		name     string
		request  string
		wantHead string
		wantBody string
	}{
		{
			name:     "content-length",
			request:  "POST /up HTTP/1.1\r\nHost: h\r\ncontent-length: 11\r\nContent-Type: text/plain\r\n\r\nhello world",
			wantHead: lines("POST /up HTTP/1.1", "Host: h", "content-length: 11", "Content-Type: text/plain", "X-Forwarded-For: 127.0.0.1", "X-Forwarded-Proto: http", "X-Forwarded-Host: h"),
			wantBody: "hello world",
		},
		{
			name:     "chunked, with a Content-Length that loses (RFC 9112 §6.3)",
			request:  "PUT /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
			wantHead: lines("PUT /up HTTP/1.1", "Host: h", "X-Forwarded-For: 127.0.0.1", "X-Forwarded-Proto: http", "X-Forwarded-Host: h", "Transfer-Encoding: chunked"),
			wantBody: "hello world",
		},
		{
			name:     "empty POST gets a length",
			request:  "POST /empty HTTP/1.1\r\nHost: h\r\n\r\n",
			wantHead: lines("POST /empty HTTP/1.1", "Host: h", "X-Forwarded-For: 127.0.0.1", "X-Forwarded-Proto: http", "X-Forwarded-Host: h", "Content-Length: 0"),
		},
		{
			// fasthttp's server gives a bodiless DELETE a length of 0.
			name:     "HTTP/1.0 without Host",
			request:  "DELETE /old HTTP/1.0\r\n\r\n",
			wantHead: lines("DELETE /old HTTP/1.1", "Content-Length: 0", "X-Forwarded-For: 127.0.0.1", "X-Forwarded-Proto: http", "Host: %UPSTREAM%"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up, got := captureServer(t, okResponse)
			fwd, _ := newTestForwarder(t, testConfig(up))
			fr := startFront(t, fwd, nil)

			head, _ := dial(t, fr.addr).do(t, tt.request, false)
			if status(t, head) != 200 {
				t.Fatalf("client got %q (Serve: %v)", head, fr.lastErr(t))
			}
			c := receive(t, got)
			mustEqualHead(t, "upstream request head", string(c.head), strings.ReplaceAll(tt.wantHead, "%UPSTREAM%", up))
			if string(c.body) != tt.wantBody {
				t.Errorf("upstream body %q, want %q", c.body, tt.wantBody)
			}
		})
	}
}

// TestExpectContinue: the front door answers the client's 100-continue
// itself; the expectation still goes upstream, and fasthttp's client skips
// the upstream's interim 100 (Nginx may or may not send one).
func TestExpectContinue(t *testing.T) {
	up, got := captureServer(t, "HTTP/1.1 100 Continue\r\n\r\n"+okResponse)
	fwd, _ := newTestForwarder(t, testConfig(up))
	fr := startFront(t, fwd, nil)
	cl := dial(t, fr.addr)

	if _, err := io.WriteString(cl.c, "POST /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if head, err := readHead(cl.br); err != nil || status(t, string(head)) != 100 {
		t.Fatalf("interim: %q, %v", head, err)
	}
	head, body := cl.do(t, "hello", false)
	if status(t, head) != 200 || string(body) != "ok" {
		t.Fatalf("final: %q %q (Serve: %v)", head, body, fr.lastErr(t))
	}
	c := receive(t, got)
	if v, ok := headField(c.head, "Expect"); !ok || v != "100-continue" || string(c.body) != "hello" {
		t.Errorf("upstream got %q %q", c.head, c.body)
	}
}
