package proxy

import (
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// server.concurrency is enforced here rather than by fasthttp, whose own
// refusal is a fixed 503 without Retry-After (every 503 the front door
// gives says when to come back). The count is of open connections,
// WebSocket tunnels included; fasthttp's limit is set above it so that it
// never refuses first.

// concurrencyRetryAfter is the Retry-After of a connection refused for
// server.concurrency: connections are short-lived, so a second is enough
// for one to free up.
const concurrencyRetryAfter = "1"

// rejectDrainWait is how long a refused connection's queued request bytes
// are read (and dropped) before the close, so that the close is a FIN after
// the 503 rather than a reset that could discard it. It is the accept
// loop's time, so it is short.
const rejectDrainWait = time.Millisecond

// limitListener refuses connections over max with a 503. It sits below
// TLS: with silent (the front door speaks TLS) a refused connection is
// closed unanswered, as fasthttp does, since an answer would need the
// client's handshake first, in the accept loop.
type limitListener struct {
	net.Listener
	s      *Server
	max    int64
	silent bool
	open   atomic.Int64
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &countedConn{Conn: c, open: &l.open}, nil
		}
		l.open.Add(-1)
		l.s.refuseConn(c, l.silent)
	}
}

// countedConn gives its place back on its first Close.
type countedConn struct {
	net.Conn
	open   *atomic.Int64
	closed atomic.Bool
}

func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.open.Add(-1)
	}
	return c.Conn.Close()
}

// refuseConn answers a connection over server.concurrency with the standard
// error body and Retry-After (unless silent), counts it, and closes it.
func (s *Server) refuseConn(c net.Conn, silent bool) {
	s.metrics.observe(routeUnmatched, modeNone, backendProxy, http.StatusServiceUnavailable, 0)
	if silent {
		closeAtOnce(c)
		return
	}
	id := s.ids.next(nil)
	text := http.StatusText(http.StatusServiceUnavailable)
	body := text + " (request id " + string(id) + ")\n"
	resp := "HTTP/1.1 503 " + text + "\r\n" +
		"Retry-After: " + concurrencyRetryAfter + "\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n" +
		HeaderRequestID + ": " + string(id) + "\r\n" +
		"Connection: close\r\n\r\n" + body
	_ = c.SetDeadline(time.Now().Add(rejectDrainWait))
	var drain [4096]byte
	for {
		if _, err := c.Read(drain[:]); err != nil {
			break
		}
	}
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write([]byte(resp))
	closeAtOnce(c)
}

// closeAtOnce closes c without lingering, which would hold up the accept
// loop.
func closeAtOnce(c net.Conn) {
	if lc, ok := c.(*lingerConn); ok {
		_ = lc.TCPConn.Close()
		return
	}
	_ = c.Close()
}
