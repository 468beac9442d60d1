package proxy

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/routes"
)

// hygieneHarness is a front door with /api/v1/ping ported (answers "go")
// and a legacy side that answers "legacy" and counts what reaches it.
func hygieneHarness(t *testing.T) (*harness, *atomic.Int32) {
	t.Helper()
	var legacyCalls atomic.Int32
	legacy := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		legacyCalls.Add(1)
		if bs := ctx.RequestBodyStream(); bs != nil {
			if _, err := io.Copy(io.Discard, bs); err != nil {
				return err
			}
		}
		ctx.SetBodyString("legacy")
		return nil
	})
	goPing := routes.HandlerFunc(func(ctx *fasthttp.RequestCtx) error {
		ctx.SetBodyString("go")
		return nil
	})
	h := newHarness(t, harnessOptions{
		// A head fasthttp waits on would only be answered (408) after this,
		// past the test client's 10 s deadline.
		cfg:    Config{Server: ServerConfig{ReadTimeout: time.Hour}},
		legacy: legacy,
		routes: []routes.RouteConfig{{Name: "ping", Path: "/api/v1/ping", Methods: []string{"GET"}, Mode: routes.ModePorted, Handler: "ping"}},
		reg:    routes.Registry{"ping": goPing},
	})
	return h, &legacyCalls
}

// TestScreen: every request head the front door refuses, and a few it must
// not, through the real server (fasthttp's own parser first).
func TestScreen(t *testing.T) {
	const host = "Host: shop.example\r\n"
	tests := []struct {
		name    string
		request string
		status  int
		body    string // for accepted requests: "go" or "legacy"
	}{
		// Framing (RFC 9112 §6).
		{"CL and TE", "POST /p HTTP/1.1\r\n" + host + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400, ""},
		{"TE and CL", "POST /p HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400, ""},
		{"TE identity", "POST /p HTTP/1.1\r\n" + host + "Transfer-Encoding: identity\r\n\r\n", 400, ""},
		{"TE identity with CL", "POST /p HTTP/1.1\r\n" + host + "Transfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc", 400, ""},
		{"TE chunked, identity", "POST /p HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400, ""},
		{"TE xchunked", "POST /p HTTP/1.1\r\n" + host + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400, ""},
		{"TE gzip, chunked", "POST /p HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400, ""},
		{"two TE", "POST /p HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, ""},
		{"TE on HTTP/1.0", "POST /p HTTP/1.0\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, ""},
		{"CL list", "POST /p HTTP/1.1\r\n" + host + "Content-Length: 1, 2\r\n\r\nab", 400, ""},
		{"CL sign", "POST /p HTTP/1.1\r\n" + host + "Content-Length: +5\r\n\r\nabcde", 400, ""},
		{"CL hex", "POST /p HTTP/1.1\r\n" + host + "Content-Length: 0x10\r\n\r\n", 400, ""},
		{"two CL differing", "POST /p HTTP/1.1\r\n" + host + "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, ""},
		{"two CL equal", "POST /p HTTP/1.1\r\n" + host + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400, ""},
		// Found while the body streams, after the handler started: the
		// handler's read fails, so nothing past the bad line is forwarded.
		{"bare LF in a chunk size", "POST /p HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 400, "body"},
		{"bare LF after chunk data", "POST /p HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n2\r\nxx\n0\r\n\r\n", 400, "body"},
		{"chunk size not hex", "POST /p HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n", 400, "body"},
		{"chunk size too large", "POST /p HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nxx\r\n0\r\n\r\n", 400, "body"},
		{"chunk shorter than its size", "POST /p HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nxx\r\n0\r\n\r\n", 400, "body"},
		{"control character in a chunk extension", "POST /p HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n2;a\x01\r\nxx\r\n0\r\n\r\n", 400, "body"},
		{"trailer line without a colon", "POST /p HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n2\r\nxx\r\n0\r\nfoo\r\n\r\n", 400, "body"},
		{"undeclared trailer", "POST /p HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n2\r\nxx\r\n0\r\nX-T: 1\r\n\r\n", 400, "body"},
		{"trailer name not a token", "POST /p HTTP/1.1\r\n" + host + "Trailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxx\r\n0\r\nX T: 1\r\n\r\n", 400, "body"},
		{"declared trailer", "POST /p HTTP/1.1\r\n" + host + "Trailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxx\r\n0\r\nx-t: 1\r\n\r\n", 200, "legacy"},
		{"Transfer_Encoding", "POST /p HTTP/1.1\r\n" + host + "Transfer_Encoding: chunked\r\nContent-Length: 2\r\n\r\nxx", 400, ""},
		{"content_length", "POST /p HTTP/1.1\r\n" + host + "content_length: 2\r\nContent-Length: 2\r\n\r\nxx", 400, ""},
		{"chunked in any case", "POST /p HTTP/1.1\r\n" + host + "Transfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 200, "legacy"},
		{"chunked with OWS", "POST /p HTTP/1.1\r\n" + host + "Transfer-Encoding: \t chunked \r\n\r\n3\r\nabc\r\n0\r\n\r\n", 200, "legacy"},
		// Field syntax (RFC 9112 §5).
		{"obs-fold", "GET /p HTTP/1.1\r\n" + host + "X-A: one\r\n two\r\n\r\n", 400, ""},
		{"obs-fold with tab", "GET /p HTTP/1.1\r\n" + host + "X-A: one\r\n\ttwo\r\n\r\n", 400, ""},
		{"bare LF field line", "GET /p HTTP/1.1\r\n" + "Host: shop.example\nX-A: one\r\n\r\n", 400, ""},
		// fasthttp waits for CRLF CRLF: without wirecheck these heads got
		// 408 after server.read_timeout (an hour here), not 400 at once.
		{"head ended by LF LF", "GET /p HTTP/1.1\nHost: shop.example\n\n", 400, ""},
		{"head ended by CRLF LF", "GET /p HTTP/1.1\r\n" + host + "\n", 400, ""},
		{"bare CR in a field line", "GET /p HTTP/1.1\r\n" + host + "X-A: a\rb\r\n\r\n", 400, ""},
		// Expectations (RFC 9110 §10.1.1).
		{"Expect other than 100-continue", "POST /p HTTP/1.1\r\n" + host + "Expect: foo\r\nContent-Length: 2\r\n\r\nxx", 417, ""},
		{"Expect list with an unknown member", "GET /p HTTP/1.1\r\n" + host + "Expect: 100-continue, foo\r\n\r\n", 417, ""},
		{"Expect on HTTP/1.0", "GET /p HTTP/1.0\r\n" + host + "expect: bar\r\n\r\n", 417, ""},
		{"space in a name", "GET /p HTTP/1.1\r\n" + host + "X Forwarded For: 1.2.3.4\r\n\r\n", 400, ""},
		{"space before colon", "GET /p HTTP/1.1\r\n" + host + "X-A : one\r\n\r\n", 400, ""},
		{"control in a value", "GET /p HTTP/1.1\r\n" + host + "X-A: o\x01ne\r\n\r\n", 400, ""},
		{"NUL in a value", "GET /p HTTP/1.1\r\n" + host + "X-A: o\x00ne\r\n\r\n", 400, ""},
		{"DEL in a value", "GET /p HTTP/1.1\r\n" + host + "X-A: o\x7fne\r\n\r\n", 400, ""},
		{"control in a name", "GET /p HTTP/1.1\r\n" + host + "X\x01A: one\r\n\r\n", 400, ""},
		{"obs-text in a value", "GET /p HTTP/1.1\r\n" + host + "X-A: caf\xc3\xa9\r\n\r\n", 200, "legacy"},
		{"HTTP/2.0 on the wire", "GET /p HTTP/2.0\r\n" + host + "\r\n", 505, ""},
		{"HTTP/1.2", "GET /p HTTP/1.2\r\n" + host + "\r\n", 505, ""},
		{"method not a token", "G{T /p HTTP/1.1\r\n" + host + "\r\n", 400, ""},
		// Host (RFC 9112 §3.2).
		{"no Host", "GET /p HTTP/1.1\r\n\r\n", 400, ""},
		{"empty Host", "GET /p HTTP/1.1\r\nHost: \r\n\r\n", 400, ""},
		{"two Hosts", "GET /p HTTP/1.1\r\n" + host + "host: other.example\r\n\r\n", 400, ""},
		{"userinfo in Host", "GET /p HTTP/1.1\r\nHost: user:pw@shop.example\r\n\r\n", 400, ""},
		{"userinfo in the target", "GET http://user:pw@shop.example/p HTTP/1.1\r\n" + host + "\r\n", 400, ""},
		{"port out of range", "GET /p HTTP/1.1\r\nHost: shop.example:99999\r\n\r\n", 400, ""},
		{"port zero", "GET /p HTTP/1.1\r\nHost: shop.example:0\r\n\r\n", 400, ""},
		{"empty port", "GET /p HTTP/1.1\r\nHost: shop.example:\r\n\r\n", 400, ""},
		{"port not a number", "GET /p HTTP/1.1\r\nHost: shop.example:8o\r\n\r\n", 400, ""},
		{"two ports", "GET /p HTTP/1.1\r\nHost: shop.example:80:81\r\n\r\n", 400, ""},
		{"slash in Host", "GET /p HTTP/1.1\r\nHost: shop.example/x\r\n\r\n", 400, ""},
		{"percent in Host", "GET /p HTTP/1.1\r\nHost: shop%2eexample\r\n\r\n", 400, ""},
		{"space in Host", "GET /p HTTP/1.1\r\nHost: shop example\r\n\r\n", 400, ""},
		{"IPv6 zone", "GET /p HTTP/1.1\r\nHost: [fe80::1%25eth0]:80\r\n\r\n", 400, ""},
		{"IPv6 unclosed", "GET /p HTTP/1.1\r\nHost: [::1\r\n\r\n", 400, ""},
		{"bad scheme", "GET ftp://shop.example/p HTTP/1.1\r\n" + host + "\r\n", 400, ""},
		{"Host with port", "GET /p HTTP/1.1\r\nHost: Shop.Example:8080\r\n\r\n", 200, "legacy"},
		{"IPv6 Host", "GET /p HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 200, "legacy"},
		{"HTTP/1.0 without Host", "GET /p HTTP/1.0\r\n\r\n", 200, "legacy"},
		{"absolute target", "GET http://shop.example/api/v1/ping HTTP/1.1\r\nHost: other.example\r\n\r\n", 200, "go"},
		// Paths: the table in TestPathPolicy; one of each kind here.
		{"dot segment", "GET /api/v1/./ping HTTP/1.1\r\n" + host + "\r\n", 400, ""},
		{"encoded newline", "GET /api/v1/ping%0A HTTP/1.1\r\n" + host + "\r\n", 400, ""},
		{"fragment", "GET /api/v1/ping#x HTTP/1.1\r\n" + host + "\r\n", 400, ""},
		{"encoded slash", "GET /api%2Fv1/ping HTTP/1.1\r\n" + host + "\r\n", 200, "go"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, legacyCalls := hygieneHarness(t)
			r := h.roundTrip(t, tt.request)
			if r.status != tt.status {
				t.Fatalf("status %d (%q), want %d", r.status, r.body, tt.status)
			}
			if tt.status != 200 {
				if legacyCalls.Load() != 0 && tt.body != "body" {
					t.Errorf("a refused request reached legacy")
				}
				if c, _ := r.header("Connection"); c != "close" {
					t.Errorf("refused without closing the connection (Connection: %q)", c)
				}
				if !strings.Contains(r.body, "request id") {
					t.Errorf("refusal body %q names no request id", r.body)
				}
				return
			}
			if r.body != tt.body {
				t.Errorf("answered by %q, want %q", r.body, tt.body)
			}
		})
	}
}

// TestExpectContinueRefusedHead: a refused head with Expect: 100-continue
// gets its 400 without a 100 Continue first, and no body byte is read.
func TestExpectContinueRefusedHead(t *testing.T) {
	h, legacyCalls := hygieneHarness(t)
	c, br := h.dial(t)
	if _, err := c.Write([]byte("POST /p HTTP/1.1\r\nHost: shop.example\r\nExpect: 100-continue\r\n" +
		"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	r, err := readResponse(br)
	if err != nil {
		t.Fatal(err)
	}
	if r.status != 400 || legacyCalls.Load() != 0 {
		t.Fatalf("got %d (legacy calls %d), want 400 first and nothing forwarded", r.status, legacyCalls.Load())
	}
}

// TestPathPolicy: each path form against a table where Go owns
// GET /api/v1/ping. Accepted forms are answered by the side both the table
// and PHP's router would pick; the rest are 400. The query never matters.
func TestPathPolicy(t *testing.T) {
	tests := []struct {
		target string
		want   string // "go", "legacy" or "400"
	}{
		{"/api/v1/ping", "go"},
		{"/api/v1/ping?x=%2F..%00&y=a;b#", "400"}, // '#' anywhere
		{"/api/v1/ping?x=%2F..%00&y=a;b", "go"},
		{"/api/v1/./ping", "400"},
		{"/api/v1/../v1/ping", "400"},
		{"/api/v1/%2e/ping", "400"},
		{"/api/v1/%2E%2E/v1/ping", "400"},
		{"/api/v1/.%2e/v1/ping", "400"},
		{"/api/v1/ping/.", "400"},
		{"/api/v1/ping/..", "400"},
		{"/api//v1/ping", "400"},
		{"//api/v1/ping", "400"},
		{"/api/v1/ping//", "400"},
		{"/api%2F%2Fv1/ping", "400"},
		{"/api/%2Fv1/ping", "400"},
		{"/api/v1/%70ing", "go"},
		{"/%61pi/v1/ping", "go"},
		{"/api%2Fv1/ping", "go"},
		{"/api%2fv1%2fping", "go"},
		{"/api/v1/ping;x", "legacy"},
		{"/api/v1/ping;", "legacy"},
		{"/api;/v1/ping", "legacy"},
		{"/api/v1/ping%00", "400"},
		{"/api/v1/ping%0A", "400"},
		{"/api/v1/ping%0d", "400"},
		{"/api/v1/ping%7F", "400"},
		{"/api/v1/ping%09", "400"},
		{`/api\v1\ping`, "400"},
		{`/api/v1\ping`, "400"},
		{"/api%5Cv1%5cping", "400"},
		{"/API/v1/ping", "legacy"},
		{"/api/v1/PING", "legacy"},
		{"/api/v1/ping/", "legacy"},
		{"/api/v1/ping%20", "legacy"},
		{"/api/v1/ping%", "legacy"},
		{"/api/v1/ping%zz", "legacy"},
		{"/api/v1/pin%67%", "legacy"}, // "/api/v1/ping%"
		{"/api/v1/...", "legacy"},
		{"/api/v1/.well-known", "legacy"},
		{"/api/v1/pi%2567", "legacy"}, // decoded once: "pi%67"
		{"http://shop.example/api/v1/ping", "go"},
		{"http://shop.example/api/v1/./ping", "400"},
		{"http://shop.example", "legacy"},
		{"http://shop.example?q=1", "legacy"},
		{"/caf\xc3\xa9", "legacy"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			h, legacyCalls := hygieneHarness(t)
			r := h.roundTrip(t, "GET "+tt.target+" HTTP/1.1\r\nHost: shop.example\r\n\r\n")
			got := r.body
			if r.status == http.StatusBadRequest {
				got = "400"
			} else if r.status != 200 {
				t.Fatalf("status %d %q", r.status, r.body)
			}
			if got != tt.want {
				t.Fatalf("answered %q, want %q", got, tt.want)
			}
			if got == "400" && legacyCalls.Load() != 0 {
				t.Errorf("a refused request reached legacy")
			}
		})
	}
}

func TestCheckPath(t *testing.T) {
	tests := []struct {
		target, routed string
		ok             bool
	}{
		{"/", "/", true},
		{"/a/b/", "/a/b/", true},
		{"/a%2Fb", "/a/b", true},
		{"/a%25b", "/a%b", true},
		{"/a?b#c", "/a", false},
		{"/a", "/b", false},
		{"/a", "/a/", false},
		{"/a/", "/a", false},
		{"http://h", "/", true},
		{"http://h/x?y", "/x", true},
		{"/...", "/...", true},
		{"/a/.b", "/a/.b", true},
	}
	for _, tt := range tests {
		err := checkPath([]byte(tt.target), []byte(tt.routed))
		if (err == nil) != tt.ok {
			t.Errorf("checkPath(%q, %q) = %v, want ok=%v", tt.target, tt.routed, err, tt.ok)
		}
		var se *StatusError
		if err != nil && (!errors.As(err, &se) || se.Code != 400 || !errors.Is(err, errHygiene)) {
			t.Errorf("checkPath(%q): %v is not a 400 refusal", tt.target, err)
		}
	}
}

func TestCheckFraming(t *testing.T) {
	tests := []struct {
		coding string
		http10 bool
		want   int // 0: accepted
	}{
		{"chunked", false, 0},
		{"CHUNKED", false, 0},
		{" chunked ,", false, 0},
		{",chunked", false, 0},
		{"identity", false, 400},
		{"", false, 400},
		{"chunked, identity", false, 400},
		{"chunked, chunked", false, 400},
		{"xchunked", false, 400},
		{"gzip, chunked", false, 501},
		{"chunked", true, 400},
	}
	for _, tt := range tests {
		err := checkFraming(fieldSummary{codings: 1, coding: []byte(tt.coding)}, tt.http10)
		got := 0
		var se *StatusError
		if errors.As(err, &se) {
			got = se.Code
		}
		if got != tt.want {
			t.Errorf("Transfer-Encoding %q (HTTP/1.0 %v): %d, want %d", tt.coding, tt.http10, got, tt.want)
		}
	}
}

func TestValidHostPort(t *testing.T) {
	for _, tt := range []struct {
		give string
		ok   bool
	}{
		{"shop.example", true},
		{"SHOP.example.", true},
		{"my_host-1", true},
		{"127.0.0.1:8080", true},
		{"[::1]", true},
		{"[2001:db8::1]:443", true},
		{"h:65535", true},
		{"", false},
		{":80", false},
		{"h:65536", false},
		{"h:0", false},
		{"h:", false},
		{"h:123456", false},
		{"u@h", false},
		{"h h", false},
		{"h!", false},
		{"[127.0.0.1]", false},
		{"[::1]x", false},
		{"[::1]:", false},
		{"[fe80::1%eth0]", false},
		{strings.Repeat("a", 256), false},
	} {
		if got := validHostPort([]byte(tt.give)); got != tt.ok {
			t.Errorf("validHostPort(%q) = %v, want %v", tt.give, got, tt.ok)
		}
	}
}
