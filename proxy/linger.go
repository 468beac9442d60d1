package proxy

import (
	"io"
	"net"
	"time"
)

// Lingering close, as Nginx's lingering_close does it. When the server
// closes a connection whose client is still sending (the rest of a head
// over the limit, the body of a 413), the kernel answers the unread bytes
// with a TCP reset, and a reset can make the client drop the error answer
// it was about to read ("connection reset by peer" instead of 431/413).
// So before closing a connection with input still queued, the server half-
// closes it (the client sees the answer, then EOF) and reads and discards
// what the client still sends, for a bounded time and amount.
const (
	lingerTimeout  = 2 * time.Second
	lingerMaxBytes = 4 << 20
)

// lingerListener hands out TCP connections that linger on Close when needed.
type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok && err == nil {
		return &lingerConn{TCPConn: tc}, nil
	}
	return c, err
}

type lingerConn struct{ *net.TCPConn }

// Close lingers only when the client has bytes queued that nobody read, so
// an ordinary close costs one non-blocking peek.
func (c *lingerConn) Close() error {
	if inputPending(c.TCPConn) {
		_ = c.CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(lingerTimeout))
		_, _ = io.CopyN(io.Discard, c.TCPConn, lingerMaxBytes)
	}
	return c.TCPConn.Close()
}
