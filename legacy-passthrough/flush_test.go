package legacy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"
)

// readRequest reads one request head from an upstream connection.
func readRequest(br *bufio.Reader) bool {
	req, err := http.ReadRequest(br)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, req.Body)
	return true
}

// TestChunkedHeadAloneGoesOutAtOnce: an upstream that sends a chunked
// head and then takes its time over the body (a stream produced as it
// goes) has its head reach the client before any body byte exists.
func TestChunkedHeadAloneGoesOutAtOnce(t *testing.T) {
	release := make(chan struct{})
	up := rawServer(t, func(c net.Conn) {
		if !readRequest(bufio.NewReader(c)) {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
		<-release // the client has the head before the body is written
		_, _ = io.WriteString(c, "5\r\nhello\r\n0\r\n\r\n")
	})
	fwd, _ := newTestForwarder(t, testConfig(up))
	fr := startFront(t, fwd, nil)
	cl := dial(t, fr.addr)
	if _, err := io.WriteString(cl.c, "GET /stream HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	head, err := readHead(cl.br)
	close(release)
	if err != nil || status(t, string(head)) != 200 {
		t.Fatalf("head before the body: %q %v", head, err)
	}
	if body, err := readBody(cl.br, head, true); err != nil || string(body) != "hello" {
		t.Errorf("body %q %v", body, err)
	}
}

// writeLog records each Write on the connections of a listener.
type writeLog struct {
	net.Listener
	mu     sync.Mutex
	writes [][]byte
}

func (l *writeLog) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &loggedConn{Conn: c, l: l}, nil
}

type loggedConn struct {
	net.Conn
	l *writeLog
}

func (c *loggedConn) Write(p []byte) (int, error) {
	c.l.mu.Lock()
	c.l.writes = append(c.l.writes, bytes.Clone(p))
	c.l.mu.Unlock()
	return c.Conn.Write(p)
}

// TestChunkedHeadWithItsBodyGoesOutInOneWrite: when the upstream's head
// arrives with the first chunk (PHP's usual answer through Nginx), the
// client gets both in one write, not the head alone first.
func TestChunkedHeadWithItsBodyGoesOutInOneWrite(t *testing.T) {
	up := rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for readRequest(br) {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"+
				"d\r\n{\"ok\":\"yes\"}\n\r\n0\r\n\r\n")
		}
	})
	fwd, _ := newTestForwarder(t, testConfig(up))
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &writeLog{Listener: inner}
	srv := frontServer(func(ctx *fasthttp.RequestCtx) {
		if err := fwd.Serve(ctx); err != nil {
			ctx.SetStatusCode(statusOf(err))
		}
	})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.ShutdownWithContext(context.Background())
		<-done
	})
	cl := dial(t, inner.Addr().String())
	head, body := cl.do(t, "GET /api HTTP/1.1\r\nHost: h\r\n\r\n", false)
	if status(t, head) != 200 || string(body) != "{\"ok\":\"yes\"}\n" {
		t.Fatalf("got %q %q", head, body)
	}
	ln.mu.Lock()
	defer ln.mu.Unlock()
	if len(ln.writes) == 0 || !strings.HasPrefix(string(ln.writes[0]), "HTTP/1.1 200") || !strings.Contains(string(ln.writes[0]), `{"ok":"yes"}`) {
		t.Errorf("first write to the client %q, want the head and the first chunk together (writes: %q)", ln.writes[0], ln.writes)
	}
}
