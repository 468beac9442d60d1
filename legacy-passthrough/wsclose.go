package legacy

import (
	"crypto/rand"
	"encoding/binary"
	"net"
	"time"
)

// Going away (RFC 6455 §7.4.1, code 1001). On shutdown the forwarder ends
// each open tunnel the way a WebSocket server going down should: both
// directions stop, then each peer gets a close frame with status 1001 —
// the client unmasked, as from a server, the upstream masked, as from a
// client (§5.3) — and the connections close. Caddy's reverse proxy does
// the same. The tunnel copies bytes, not frames, so a close frame could
// land inside a frame still on its way: each direction follows where its
// frames begin and end (frameCursor), and a peer is sent the close frame
// only if its stream stopped between two frames. Otherwise it just sees
// the connection close, as before.

// goingAwayTimeout bounds writing one close frame at shutdown.
const goingAwayTimeout = time.Second

// closeGoingAway is the status code of the close frames.
const closeGoingAway = 1001

// frameCursor follows the frame boundaries of one direction of a
// WebSocket stream (RFC 6455 §5.2) from the bytes that went through it:
// it reads each frame's header and skips its payload, so its cost is per
// frame, not per byte. Only the goroutine copying that direction uses it
// (and run, once that goroutine is done).
type frameCursor struct {
	payload uint64   // bytes of the current frame's payload still to come
	head    [14]byte // the header being read, longest form
	n       int      // bytes of head read so far
}

// advance moves the cursor past p, bytes that reached the peer.
func (c *frameCursor) advance(p []byte) {
	for len(p) > 0 {
		if c.payload > 0 {
			k := uint64(len(p))
			if k > c.payload {
				k = c.payload
			}
			c.payload -= k
			p = p[k:]
			continue
		}
		c.head[c.n] = p[0]
		c.n++
		p = p[1:]
		if need := headerLen(c.head[:c.n]); c.n == need {
			c.payload = payloadLen(c.head[:need])
			c.n = 0
		}
	}
}

// between reports whether the stream stopped between two frames.
func (c *frameCursor) between() bool { return c.payload == 0 && c.n == 0 }

// headerLen is the length of the header that h begins, as far as h tells
// (2 until the second byte is known).
func headerLen(h []byte) int {
	if len(h) < 2 {
		return 2
	}
	n := 2
	switch h[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if h[1]&0x80 != 0 {
		n += 4 // the masking key
	}
	return n
}

// payloadLen reads the payload length of the complete header h.
func payloadLen(h []byte) uint64 {
	switch n := h[1] & 0x7f; n {
	case 126:
		return uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		return binary.BigEndian.Uint64(h[2:10])
	default:
		return uint64(n)
	}
}

// closeFrame is a final close frame with status 1001 and no reason,
// masked (for the upstream) or not (for the client).
func closeFrame(masked bool) []byte {
	status := binary.BigEndian.AppendUint16(nil, closeGoingAway)
	if !masked {
		return append([]byte{0x88, byte(len(status))}, status...)
	}
	var key [4]byte
	_, _ = rand.Read(key[:])
	b := append([]byte{0x88, 0x80 | byte(len(status))}, key[:]...)
	for i, c := range status {
		b = append(b, c^key[i%4])
	}
	return b
}

// goAway stops both directions of a running tunnel for the shutdown: run
// then sends the close frames and closes. Caller holds ts.mu.
func (t *tunnel) goAway() {
	t.goingAway.Store(true)
	t.stopped.Store(true) // before the deadlines: see pipe
	past := time.Unix(1, 0)
	_ = t.up.SetDeadline(past)
	_ = t.client.SetDeadline(past)
}

// sayGoingAway sends each peer whose stream stopped between frames the
// close frame, best effort: run calls it once both directions are done.
func (t *tunnel) sayGoingAway(client net.Conn) {
	for _, peer := range []struct {
		conn   net.Conn
		cursor *frameCursor
		masked bool
	}{{client, &t.toClient, false}, {t.up, &t.toUp, true}} {
		if !peer.cursor.between() {
			continue
		}
		_ = peer.conn.SetWriteDeadline(time.Now().Add(goingAwayTimeout))
		_, _ = peer.conn.Write(closeFrame(peer.masked))
	}
}
