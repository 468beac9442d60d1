package legacy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCheckResponseHeads(t *testing.T) {
	tests := []struct {
		name string
		give string
		ok   bool
	}{
		{"plain", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", true},
		{"no reason", "HTTP/1.1 418 \r\nX: y\r\n\r\n", true},
		{"no reason, no space", "HTTP/1.1 204\r\n\r\n", true},
		{"HTTP/1.0 with length", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", true},
		{"chunked any case", "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", true},
		{"OWS around values", "HTTP/1.1 200 OK\r\nContent-Length:\t 2 \r\nX-Empty:\r\n\r\n", true},
		{"obs-text in value", "HTTP/1.1 200 OK\r\nX-Name: caf\xc3\xa9\r\n\r\n", true},
		{"interim heads first", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
		{"101 is final", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00", true},
		{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"two equal CL", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\n", false},
		{"CL list", "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n", false},
		{"CL sign", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n", false},
		{"CL empty", "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", false},
		{"two TE", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"TE identity", "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n", false},
		{"TE list", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false},
		{"TE on HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n", false},
		{"bare LF", "HTTP/1.1 200 OK\r\nX-A: one\nContent-Length: 0\r\n\r\n", false},
		{"bare LF status line", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", false},
		{"bare CR", "HTTP/1.1 200 OK\r\nX-A: o\rne\r\n\r\n", false},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", false},
		{"space in name", "HTTP/1.1 200 OK\r\nX A: 1\r\n\r\n", false},
		{"empty name", "HTTP/1.1 200 OK\r\n: 1\r\n\r\n", false},
		{"no colon", "HTTP/1.1 200 OK\r\nX-A\r\n\r\n", false},
		{"NUL in value", "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n", false},
		{"DEL in value", "HTTP/1.1 200 OK\r\nX-A: a\x7fb\r\n\r\n", false},
		{"control in reason", "HTTP/1.1 200 O\x01K\r\n\r\n", false},
		{"HTTP/2", "HTTP/2.0 200 OK\r\n\r\n", false},
		{"two-digit status", "HTTP/1.1 20 OK\r\n\r\n", false},
		{"bad interim head", "HTTP/1.1 103 Early Hints\r\nLink: </a>\nX: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false},
		{"unterminated", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkResponseHeads([]byte(tt.give), true)
			if (err == nil) != tt.ok {
				t.Fatalf("checkResponseHeads(%q) = %v, want ok=%v", tt.give, err, tt.ok)
			}
			if err != nil && !errors.Is(err, errBadFraming) {
				t.Errorf("error %v does not wrap errBadFraming", err)
			}
		})
	}
}

// TestCaptureFindsTheFinalHead: the capture keeps interim heads and the
// final one, whatever the read boundaries, and stops there.
func TestCaptureFindsTheFinalHead(t *testing.T) {
	const wire = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
	const head = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
	for size := 1; size <= len(wire); size++ {
		c := &upstreamConn{headLimit: 1 << 10, capturing: true, phase: phaseHead}
		for b := []byte(wire); len(b) > 0 && c.capturing; {
			n := min(size, len(b))
			c.capture(b[:n])
			b = b[n:]
		}
		if string(c.head) != head || c.capturing {
			t.Fatalf("reads of %d: captured %q (capturing %v), want %q", size, c.head, c.capturing, head)
		}
		if err := c.checkHead(); err != nil {
			t.Fatalf("reads of %d: %v", size, err)
		}
	}
	c := &upstreamConn{headLimit: 16, capturing: true, phase: phaseHead}
	c.capture([]byte(wire))
	if err := c.checkHead(); err == nil || c.capturing || len(c.head) != 16 {
		t.Fatalf("over the limit: captured %q, check %v; want a bounded capture and an error", c.head, err)
	}
}

// TestBadResponseFraming: a response head that frames its body ambiguously
// is answered 502, and its connection is closed, never reused: the next
// request goes out on a new one. Sound heads keep their connection.
func TestBadResponseFraming(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		response string
		ok       bool // a sound answer: 200 and the connection is reused
	}{
		{name: "both Content-Length and Transfer-Encoding",
			response: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{name: "Content-Length twice", response: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"},
		{name: "Content-Length list", response: "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello"},
		{name: "Content-Length with a sign", response: "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello"},
		{name: "Transfer-Encoding identity", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nhello"},
		{name: "Transfer-Encoding chunked, identity",
			response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{name: "Transfer-Encoding on HTTP/1.0",
			response: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{name: "obs-fold", response: "HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 5\r\n\r\nhello"},
		{name: "bare LF line end", response: "HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 5\r\n\r\nhello"},
		{name: "space before colon", response: "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello"},
		{name: "space in a name", response: "HTTP/1.1 200 OK\r\nX A: 1\r\nContent-Length: 5\r\n\r\nhello"},
		{name: "control character", response: "HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 5\r\n\r\nhello"},
		{name: "bad head after 100 Continue",
			response: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{name: "bodiless 204 with both lengths",
			response: "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{name: "HEAD answer with obs-fold", method: "HEAD",
			response: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: one\r\n two\r\n\r\n"},
		{name: "sound: interim heads", ok: true,
			response: "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"},
		{name: "sound: chunked", ok: true, response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{name: "sound: 204", ok: true, response: "HTTP/1.1 204 No Content\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			var conns atomic.Int32
			var reused atomic.Bool
			firstDone := make(chan struct{})
			up := rawServer(t, func(c net.Conn) {
				br := bufio.NewReader(c)
				if conns.Add(1) > 1 {
					serveUntil(c, func([]byte) bool { return false })
					return
				}
				defer close(firstDone)
				if _, err := readHead(br); err != nil {
					return
				}
				if _, err := io.WriteString(c, tt.response); err != nil {
					return
				}
				for {
					// A sound answer leaves the connection usable: answer
					// what comes next on it. A broken one must be closed.
					if _, err := readHead(br); err != nil {
						return
					}
					reused.Store(true)
					if _, err := io.WriteString(c, okResponse); err != nil {
						return
					}
				}
			})
			cfg := testConfig(up)
			cfg.IdleConnTimeout = 10 * time.Second
			fwd, _ := newTestForwarder(t, cfg)
			fr := startFront(t, fwd, nil)
			cl := dial(t, fr.addr)

			head, _ := cl.do(t, method+" /first HTTP/1.1\r\nHost: h\r\n\r\n", method == "HEAD" || tt.ok && strings.Contains(tt.response, " 204 "))
			err := fr.lastErr(t)
			if tt.ok {
				if err != nil || status(t, head) >= 300 {
					t.Fatalf("sound answer: %q, Serve %v", head, err)
				}
			} else {
				if !errors.Is(err, ErrBadUpstreamResponse) || status(t, head) != 502 {
					t.Fatalf("got %q, Serve %v; want 502 and ErrBadUpstreamResponse", head, err)
				}
				if n := counter(t, fwd, "bad_response"); n != 1 {
					t.Errorf("bad_response = %v, want 1", n)
				}
				select {
				case <-firstDone:
				case <-time.After(ioTimeout):
					t.Fatal("the connection of the broken answer stayed open")
				}
			}
			if head, _ := cl.do(t, "GET /second HTTP/1.1\r\nHost: h\r\n\r\n", false); status(t, head) != 200 {
				t.Fatalf("next request: %q (Serve %v)", head, fr.lastErr(t))
			}
			if tt.ok != reused.Load() {
				t.Errorf("connection reused = %v, want %v (%d connections)", reused.Load(), tt.ok, conns.Load())
			}
		})
	}
}

// TestBrokenChunkMidBody: a bare LF in a chunk-size line (RFC 9112 §7.1)
// once the head is out can only cut the client off; the upstream connection
// is closed with it.
func TestBrokenChunkMidBody(t *testing.T) {
	upClosed := make(chan struct{})
	up := rawServer(t, func(c net.Conn) {
		defer close(upClosed)
		br := bufio.NewReader(c)
		if _, err := readHead(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\nworld!\r\n0\r\n\r\n")
		_, _ = io.Copy(io.Discard, br)
	})
	fwd, _ := newTestForwarder(t, testConfig(up))
	fr := startFront(t, fwd, nil)
	cl := dial(t, fr.addr)
	if _, err := io.WriteString(cl.c, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	head, err := readHead(cl.br)
	if err != nil || status(t, string(head)) != 200 {
		t.Fatalf("head %q, %v", head, err)
	}
	body, err := readBody(cl.br, head, true)
	if err == nil || strings.Contains(string(body), "world") {
		t.Fatalf("client got %q, %v; want the body cut before the broken chunk", body, err)
	}
	select {
	case <-upClosed:
	case <-time.After(ioTimeout):
		t.Fatal("the upstream connection stayed open")
	}
	waitFor(t, "the body error to be counted", func() bool { return counter(t, fwd, "body") == 1 })
}
