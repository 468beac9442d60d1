package legacy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// upstreamConn is one connection to the monolith. fasthttp gives every
// exchange one deadline (the Do deadline) and keeps it on the connection
// while a streamed response body is read, so a download would be cut at
// Config.Timeout. upstreamConn splits an exchange into the phases Config
// documents:
//
//   - sending the request, body included: the exchange deadline, and
//     WriteTimeout between two writes;
//   - waiting for the response head: the exchange deadline;
//   - streaming the response body (after streamBody): ReadTimeout between
//     two reads, and no exchange deadline.
//
// It also remembers what happened on the wire during the current exchange,
// so a failure can be told apart from one that never reached Nginx.
//
// fasthttp uses a connection from one goroutine at a time (the pool hands it
// over under a lock), so the fields need no lock of their own. Deadlines use
// the wall clock, not an injected one: the kernel's timers do.
type upstreamConn struct {
	net.Conn
	readIdle, writeIdle   time.Duration
	readRearm, writeRearm time.Duration // see rearmAfter
	local                 connAddr

	phase      phase
	writeLimit time.Time // the exchange deadline fasthttp set for writing
	armedAt    time.Time // when the idle deadline was last pushed out
	exchanges  int       // exchanges begun on this connection
	readBytes  int64     // bytes read in the current exchange

	// The response heads of the current exchange as read, for
	// checkResponseHeads: captured from the first read until the final
	// head's end, at most headLimit bytes.
	head      []byte
	headLimit int
	headFrom  int  // where the head being looked for starts in head
	capturing bool // still looking for the final head's end
	// poisoned: the connection went back to fasthttp's pool before its
	// answer turned out to be badly framed; it is closed, and an exchange
	// that picks it up fails before sending anything.
	poisoned bool
}

type phase uint8

const (
	phaseIdle phase = iota
	phaseWrite
	phaseHead
	phaseBody
)

// rearmAfter is how stale an idle deadline may get before a read or write
// pushes it out again: a quarter of the idle limit, at most a second.
// Pushing on every call of a 1 GiB transfer would cost a timer update per few
// KiB for no gain in precision.
func rearmAfter(idle time.Duration) time.Duration {
	return min(time.Second, idle/4)
}

// connAddr is upstreamConn's LocalAddr. fasthttp hands a response the
// connection's addresses (Response.LocalAddr), and nothing else: this is how
// the transport finds the connection an exchange ran on.
type connAddr struct {
	net.Addr
	conn *upstreamConn
}

func newUpstreamConn(c net.Conn, readIdle, writeIdle time.Duration, headLimit int) *upstreamConn {
	uc := &upstreamConn{
		Conn:     c,
		readIdle: readIdle, writeIdle: writeIdle,
		readRearm: rearmAfter(readIdle), writeRearm: rearmAfter(writeIdle),
		headLimit: headLimit,
	}
	uc.local = connAddr{Addr: c.LocalAddr(), conn: uc}
	return uc
}

func (c *upstreamConn) LocalAddr() net.Addr { return &c.local }

// SetWriteDeadline records the exchange deadline fasthttp sets before it
// writes a request, and applies the tighter of it and the idle limit.
func (c *upstreamConn) SetWriteDeadline(t time.Time) error {
	c.writeLimit = t
	now := time.Now()
	c.armedAt = now
	return c.Conn.SetWriteDeadline(earliest(t, now.Add(c.writeIdle)))
}

func (c *upstreamConn) Write(p []byte) (int, error) {
	if c.phase != phaseWrite {
		// A write after a read (or the first one) begins an exchange.
		c.phase = phaseWrite
		c.exchanges++
		c.readBytes = 0
		c.head, c.headFrom, c.capturing = c.head[:0], 0, true
	}
	if now := time.Now(); now.Sub(c.armedAt) >= c.writeRearm {
		c.armedAt = now
		if err := c.Conn.SetWriteDeadline(earliest(c.writeLimit, now.Add(c.writeIdle))); err != nil {
			return 0, err
		}
	}
	return c.Conn.Write(p)
}

func (c *upstreamConn) Read(p []byte) (int, error) {
	switch c.phase {
	case phaseWrite, phaseIdle:
		c.phase = phaseHead
	case phaseBody:
		if now := time.Now(); now.Sub(c.armedAt) >= c.readRearm {
			c.armedAt = now
			if err := c.Conn.SetReadDeadline(now.Add(c.readIdle)); err != nil {
				return 0, err
			}
		}
	}
	n, err := c.Conn.Read(p)
	c.readBytes += int64(n)
	if c.capturing && c.phase == phaseHead {
		c.capture(p[:n])
	}
	return n, err
}

// capture appends p to the captured heads and stops once the final head's
// end is in: interim 1xx heads (100 Continue, 103 Early Hints) come before
// it, a 101's head is final. Only head bytes are kept; the copy of the first
// body bytes read along with the head is bounded by headLimit.
func (c *upstreamConn) capture(p []byte) {
	if room := c.headLimit - len(c.head); len(p) > room {
		p = p[:room]
	}
	from := max(c.headFrom, len(c.head)-len(crlfcrlf)+1)
	c.head = append(c.head, p...)
	for {
		i := bytes.Index(c.head[from:], crlfcrlf)
		if i < 0 {
			break
		}
		end := from + i + len(crlfcrlf)
		if !interim(c.head[c.headFrom:]) {
			c.head = c.head[:end]
			c.capturing = false
			return
		}
		c.headFrom, from = end, end
	}
	if len(c.head) >= c.headLimit {
		c.capturing = false // checkResponseHeads reports it
	}
}

// interim reports whether head starts with a 1xx status line other than 101.
func interim(head []byte) bool {
	return len(head) >= 12 && head[9] == '1' && !(head[10] == '0' && head[11] == '1')
}

// bodyBuffered reports whether the reads of the current exchange brought
// bytes past the final response head: the start of the body is buffered,
// and a read of it will not wait for the upstream.
func (c *upstreamConn) bodyBuffered() bool {
	return !c.capturing && c.readBytes > int64(len(c.head))
}

// checkHead checks the heads captured in the exchange that just ended.
func (c *upstreamConn) checkHead() error {
	return checkResponseHeads(c.head, !c.capturing)
}

// poison closes a connection fasthttp has already put back in its pool.
func (c *upstreamConn) poison() {
	c.poisoned = true
	_ = c.Conn.Close()
}

// streamBody lifts the exchange deadline once the response head is in: from
// here on only silence longer than readIdle ends the body.
func (c *upstreamConn) streamBody() error {
	c.phase = phaseBody
	now := time.Now()
	c.armedAt = now
	return c.Conn.SetReadDeadline(now.Add(c.readIdle))
}

// earliest is the earlier of a and b; a zero a means no limit.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

func connOf(resp *fasthttp.Response) *upstreamConn {
	if a, ok := resp.LocalAddr().(*connAddr); ok {
		return a.conn
	}
	return nil
}

// transport wraps fasthttp's own round trip with what a faithful forwarder
// needs and HostClient has no option for.
type transport struct{}

// errNoAnswer marks a request that failed with nothing read back because
// the backend closed or reset the connection. reused: the connection had
// served before (or was found broken in the pool), the signature of a
// kept-alive connection the backend had already closed, where the request
// most likely never reached it. See Forwarder.exchange for what is retried.
type errNoAnswer struct {
	err    error
	reused bool
}

func (e *errNoAnswer) Error() string {
	if e.reused {
		return "stale keep-alive connection: " + e.err.Error()
	}
	return "closed before answering: " + e.err.Error()
}
func (e *errNoAnswer) Unwrap() error { return e.err }

func (transport) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	// HostClient.Do parses the request target into a URI and Request.Write
	// would then send that URI re-serialized: a fragment or an empty query
	// ("/a?") lost, an absolute-form target turned into origin-form. Clearing
	// the parsed URI makes Write send RequestURI as set, byte for byte (the
	// Host header is always present, see copyRequestHeader).
	req.SetURI(nil)

	retry, err := fasthttp.DefaultTransport.RoundTrip(hc, req, resp)
	c := connOf(resp)
	if err != nil {
		if retry && c != nil && (c.poisoned || c.readBytes == 0 && closedByPeer(err)) {
			err = &errNoAnswer{err: err, reused: c.poisoned || c.exchanges > 1}
		}
		return retry, err
	}
	if c == nil {
		return false, nil
	}
	if err := c.checkHead(); err != nil {
		if resp.BodyStream() != nil {
			// Closing the unread stream of a response marked close closes
			// the connection instead of pooling it.
			resp.SetConnectionClose()
			_ = resp.CloseBodyStream()
		} else {
			// A bodiless answer (HEAD, 1xx, 204, 304): fasthttp pooled the
			// connection already. Close it, and every idle one with it so
			// that no other exchange picks it up in the meantime (a rare
			// cost: the upstream just sent a broken answer).
			c.poison()
			hc.CloseIdleConnections()
		}
		return false, err
	}
	if resp.BodyStream() != nil {
		if err := c.streamBody(); err != nil {
			_ = resp.CloseBodyStream() // closes the connection: the body is unread
			return false, err
		}
	}
	return false, nil
}

// closedByPeer reports whether err is the upstream closing or resetting the
// connection (as opposed to a timeout or a malformed answer).
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) ||
		errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// idempotent: RFC 9110 §9.2.2.
func idempotent(method []byte) bool {
	switch string(method) {
	case fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodOptions,
		fasthttp.MethodTrace, fasthttp.MethodPut, fasthttp.MethodDelete:
		return true
	}
	return false
}
