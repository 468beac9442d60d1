package legacy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/internal/wsframe"
)

// A minimal RFC 6455 framing for the tests: single-frame messages only.

const wsKey = "dGhlIHNhbXBsZSBub25jZQ=="

// wsBackend is an upstream that completes the handshake, greets the client
// with a frame sent along with its 101, then echoes every frame, answers a
// close frame with one and closes. heads receives each handshake head;
// ended receives why each connection ended (nil: a close handshake).
type wsBackend struct {
	addr   string
	heads  chan []byte
	ended  chan error
	closes chan []byte // the payload of each close frame received
}

func startWSBackend(t *testing.T, push time.Duration) *wsBackend {
	t.Helper()
	b := &wsBackend{heads: make(chan []byte, 8), ended: make(chan error, 8), closes: make(chan []byte, 8)}
	b.addr = rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		head, err := readHead(br)
		if err != nil {
			return
		}
		b.heads <- head
		key, _ := headField(head, "Sec-WebSocket-Key")
		resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + wsframe.Accept(key) + "\r\nX-Backend: ws\r\n\r\n"
		if _, err := c.Write(append([]byte(resp), wsframe.Encode(wsframe.Text, []byte("hello from upstream"), false)...)); err != nil {
			b.ended <- err
			return
		}
		if push > 0 {
			// Server-only traffic for a while: the tunnel must stay open.
			for i := range 10 {
				time.Sleep(push)
				if _, err := c.Write(wsframe.Encode(wsframe.Text, fmt.Appendf(nil, "push %d", i), false)); err != nil {
					b.ended <- err
					return
				}
			}
		}
		for {
			op, p, err := wsframe.Decode(br)
			if err != nil {
				b.ended <- err
				return
			}
			if _, err := c.Write(wsframe.Encode(op, p, false)); err != nil {
				b.ended <- err
				return
			}
			if op == wsframe.Close {
				b.closes <- p
				b.ended <- nil
				return
			}
		}
	})
	return b
}

func (b *wsBackend) end(t *testing.T) error {
	t.Helper()
	select {
	case err := <-b.ended:
		return err
	case <-time.After(ioTimeout):
		t.Fatal("the upstream connection stayed open")
		return nil
	}
}

func upgradeRequest(path string, extra ...string) string {
	return "GET " + path + " HTTP/1.1\r\n" + lines(append([]string{
		"Host: shop.example",
		"Connection: keep-alive, Upgrade",
		"Upgrade: websocket",
		"Sec-WebSocket-Key: " + wsKey,
		"Sec-WebSocket-Version: 13",
	}, extra...)...)
}

// handshake sends an upgrade request (and, pipelined right behind it,
// early) and reads the 101.
func handshake(t *testing.T, cl *client, req string, early []byte) string {
	t.Helper()
	if _, err := cl.c.Write(append([]byte(req), early...)); err != nil {
		t.Fatal(err)
	}
	head, err := readHead(cl.br)
	if err != nil {
		t.Fatalf("handshake: %q, %v", head, err)
	}
	return string(head)
}

func gauge(t testing.TB, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

func TestWebSocketPassthrough(t *testing.T) {
	b := startWSBackend(t, 0)
	fwd, _ := newTestForwarder(t, testConfig(b.addr))
	fr := startFront(t, fwd, nil)
	cl := dial(t, fr.addr)

	head := handshake(t, cl, upgradeRequest("/ws?room=1", "X-Forwarded-For: 6.6.6.6", "Cookie: s=1"),
		wsframe.Encode(wsframe.Text, []byte("pipelined"), true))
	if status(t, head) != 101 {
		t.Fatalf("handshake answer %q (Serve %v)", head, fr.lastErr(t))
	}
	for _, want := range []string{"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: " + wsframe.Accept(wsKey), "X-Backend: ws"} {
		if !strings.Contains(head, want+"\r\n") {
			t.Errorf("101 lacks %q:\n%s", want, head)
		}
	}
	up := string(receiveHead(t, b.heads))
	mustEqualHead(t, "upstream handshake", up, lines(
		"GET /ws?room=1 HTTP/1.1",
		"Host: shop.example",
		"Sec-WebSocket-Key: "+wsKey,
		"Sec-WebSocket-Version: 13",
		"Cookie: s=1",
		"X-Forwarded-For: 127.0.0.1",
		"X-Forwarded-Proto: http",
		"X-Forwarded-Host: shop.example",
		"Connection: Upgrade",
		"Upgrade: websocket",
	))

	// Frames both ways: the greeting sent with the 101, the echo of the
	// frame pipelined behind the request, then a message bigger than the
	// copy buffers.
	for _, want := range []string{"hello from upstream", "pipelined"} {
		if op, p, err := wsframe.Decode(cl.br); err != nil || op != wsframe.Text || string(p) != want {
			t.Fatalf("frame: %x %q %v, want %q", op, p, err, want)
		}
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 20<<10) // 320 KiB
	if _, err := cl.c.Write(wsframe.Encode(wsframe.Binary, big, true)); err != nil {
		t.Fatal(err)
	}
	if op, p, err := wsframe.Decode(cl.br); err != nil || op != wsframe.Binary || !bytes.Equal(p, big) {
		t.Fatalf("big frame: op %x, %d bytes, %v", op, len(p), err)
	}
	if got := gauge(t, fwd.metrics.tunnelsOpen); got != 1 {
		t.Errorf("tunnels open = %v, want 1", got)
	}

	// The close handshake, then the upstream closes: so does the client's
	// connection.
	if _, err := cl.c.Write(wsframe.Encode(wsframe.Close, []byte{0x03, 0xe8}, true)); err != nil {
		t.Fatal(err)
	}
	if op, _, err := wsframe.Decode(cl.br); err != nil || op != wsframe.Close {
		t.Fatalf("close frame: %x %v", op, err)
	}
	if err := b.end(t); err != nil {
		t.Fatalf("upstream: %v, want a clean close", err)
	}
	if _, err := cl.br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("client read after close: %v, want EOF", err)
	}
	waitFor(t, "the tunnel to end", func() bool { return gauge(t, fwd.metrics.tunnelsOpen) == 0 })
}

func receiveHead(t *testing.T, ch <-chan []byte) []byte {
	t.Helper()
	select {
	case h := <-ch:
		return h
	case <-time.After(ioTimeout):
		t.Fatal("the upstream received no handshake")
		return nil
	}
}

// TestWebSocketClientLeaves: a client that drops the TCP connection ends
// the tunnel, and the upstream sees its connection close.
func TestWebSocketClientLeaves(t *testing.T) {
	b := startWSBackend(t, 0)
	fwd, _ := newTestForwarder(t, testConfig(b.addr))
	fr := startFront(t, fwd, nil)
	cl := dial(t, fr.addr)
	if head := handshake(t, cl, upgradeRequest("/ws"), nil); status(t, head) != 101 {
		t.Fatalf("handshake answer %q", head)
	}
	if _, _, err := wsframe.Decode(cl.br); err != nil {
		t.Fatal(err)
	}
	_ = cl.c.Close()
	if err := b.end(t); !errors.Is(err, io.EOF) {
		t.Fatalf("upstream ended with %v, want EOF", err)
	}
	waitFor(t, "the tunnel to end", func() bool { return gauge(t, fwd.metrics.tunnelsOpen) == 0 })
}

// TestWebSocketIdleTimeout: traffic one way keeps a tunnel open; silence
// both ways for tunnel_idle_timeout closes both connections.
func TestWebSocketIdleTimeout(t *testing.T) {
	const idle = 400 * time.Millisecond
	b := startWSBackend(t, idle/4) // pushes 10 frames, 100ms apart: 1s in all
	cfg := testConfig(b.addr)
	cfg.TunnelIdleTimeout = idle
	fwd, _ := newTestForwarder(t, cfg)
	fr := startFront(t, fwd, nil)
	cl := dial(t, fr.addr)
	if head := handshake(t, cl, upgradeRequest("/ws"), nil); status(t, head) != 101 {
		t.Fatalf("handshake answer %q", head)
	}
	// The client never sends; the upstream's pushes last longer than idle.
	for i := range 11 {
		if _, _, err := wsframe.Decode(cl.br); err != nil {
			t.Fatalf("frame %d: %v: a tunnel with traffic one way was closed", i, err)
		}
	}
	start := time.Now()
	if _, err := cl.br.ReadByte(); err == nil {
		t.Fatal("the idle tunnel sent more")
	}
	if d := time.Since(start); d > ioTimeout/2 {
		t.Errorf("idle tunnel closed after %s", d)
	}
	if err := b.end(t); err == nil {
		t.Fatal("upstream saw a close handshake; want its connection cut")
	}
	waitFor(t, "the tunnel to end", func() bool { return gauge(t, fwd.metrics.tunnelsOpen) == 0 })
}

// TestWebSocketCloseEndsTunnels: Forwarder.Close ends open tunnels, each
// peer told 1001 "going away" with a close frame (unmasked to the client,
// masked to the upstream, RFC 6455 §5.3, §7.4.1), waits for their
// goroutines (goleak in TestMain checks none is left), and refuses new
// upgrades.
func TestWebSocketCloseEndsTunnels(t *testing.T) {
	b := startWSBackend(t, 0)
	fwd, _ := newTestForwarder(t, testConfig(b.addr))
	fr := startFront(t, fwd, nil)
	cl := dial(t, fr.addr)
	if head := handshake(t, cl, upgradeRequest("/ws"), nil); status(t, head) != 101 {
		t.Fatalf("handshake answer %q", head)
	}
	if op, p, err := wsframe.Decode(cl.br); err != nil || string(p) != "hello from upstream" {
		t.Fatalf("greeting: %x %q %v", op, p, err)
	}
	fwd.Close()
	// The client: the close frame, then the end of the connection.
	if op, p, err := wsframe.Decode(cl.br); err != nil || op != wsframe.Close || !bytes.Equal(p, []byte{0x03, 0xe9}) {
		t.Fatalf("client got %x %x %v, want a close frame with status 1001", op, p, err)
	}
	if rest, err := io.ReadAll(cl.br); len(rest) > 0 || (err != nil && !isReset(err)) {
		t.Fatalf("client after the close frame: %q, %v", rest, err)
	}
	// The upstream got a close frame too (TestWebSocketCloseMidFrame
	// checks its mask bit) and ended there.
	if err := b.end(t); err != nil {
		t.Fatalf("upstream ended with %v, want a close frame", err)
	}
	if p := <-b.closes; !bytes.Equal(p, []byte{0x03, 0xe9}) {
		t.Errorf("upstream's close frame %x, want status 1001", p)
	}
	if got := gauge(t, fwd.metrics.tunnelsOpen); got != 0 {
		t.Errorf("tunnels open = %v after Close", got)
	}
	head, _ := dial(t, fr.addr).do(t, upgradeRequest("/ws"), false)
	if status(t, head) != 503 {
		t.Fatalf("upgrade after Close: %q, want 503", head)
	}
}

// TestWebSocketCloseMidFrame: a close frame is sent only between frames. A
// peer whose stream stopped inside a frame would read it as that frame's
// payload, so it only sees its connection close.
func TestWebSocketCloseMidFrame(t *testing.T) {
	upGot := make(chan []byte, 1)
	addr := rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		head, err := readHead(br)
		if err != nil {
			return
		}
		key, _ := headField(head, "Sec-WebSocket-Key")
		// The 101, then half a frame: a header promising 100 bytes, 10 of them.
		half := append([]byte{0x82, 100}, bytes.Repeat([]byte{'x'}, 10)...)
		if _, err := c.Write(append([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: "+wsframe.Accept(key)+"\r\n\r\n"), half...)); err != nil {
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
		b, _ := io.ReadAll(br)
		upGot <- b
	})
	fwd, _ := newTestForwarder(t, testConfig(addr))
	fr := startFront(t, fwd, nil)
	cl := dial(t, fr.addr)
	if head := handshake(t, cl, upgradeRequest("/ws"), nil); status(t, head) != 101 {
		t.Fatalf("handshake answer %q", head)
	}
	// A whole frame the client sends first: its direction is between frames.
	if _, err := cl.c.Write(wsframe.Encode(wsframe.Text, []byte("hi"), true)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 12)
	if _, err := io.ReadFull(cl.br, got); err != nil {
		t.Fatal(err)
	}
	// The client's frame must have reached the upstream before Close, so
	// wait for the tunnel to have moved it.
	waitFor(t, "the client's frame upstream", func() bool { _, _, toUp := tunnelBytes(fwd); return toUp > 0 })
	fwd.Close()
	if rest, err := io.ReadAll(cl.br); len(rest) > 0 || (err != nil && !isReset(err)) {
		t.Fatalf("client got %q (%v) after half a frame, want only the end of the connection", rest, err)
	}
	b := <-upGot
	closing := b[len(wsframe.Encode(wsframe.Text, []byte("hi"), true)):]
	op, p, err := wsframe.Decode(bytes.NewReader(closing))
	if err != nil || op != wsframe.Close || !bytes.Equal(p, []byte{0x03, 0xe9}) || closing[1]&0x80 == 0 {
		t.Errorf("upstream got %x after the client's frame (%x %x %v), want a masked close frame with status 1001", closing, op, p, err)
	}
}

// tunnelBytes reads the byte counts of fwd's one open tunnel.
func tunnelBytes(fwd *Forwarder) (open int, toClient, toUp int64) {
	fwd.tunnels.mu.Lock()
	defer fwd.tunnels.mu.Unlock()
	for t := range fwd.tunnels.all {
		open++
		toClient, toUp = t.up2client.Load(), t.client2up.Load()
	}
	return open, toClient, toUp
}

func TestFrameCursor(t *testing.T) {
	var stream []byte
	var ends []int // where frames end
	for _, f := range [][]byte{
		wsframe.Encode(wsframe.Text, nil, false),
		wsframe.Encode(wsframe.Text, []byte("short"), true),
		wsframe.Encode(wsframe.Binary, bytes.Repeat([]byte{1}, 300), false),  // 16-bit length
		wsframe.Encode(wsframe.Binary, bytes.Repeat([]byte{2}, 70000), true), // 64-bit length
		wsframe.Encode(wsframe.Close, []byte{0x03, 0xe8}, false),
	} {
		stream = append(stream, f...)
		ends = append(ends, len(stream))
	}
	for _, step := range []int{1, 3, 7, 4096, len(stream)} {
		var c frameCursor
		at := map[int]bool{0: true}
		for i := 0; i < len(stream); i += step {
			j := min(i+step, len(stream))
			c.advance(stream[i:j])
			at[j] = c.between()
		}
		for pos, between := range at {
			want := pos == 0 || slices.Contains(ends, pos)
			if between != want {
				t.Errorf("step %d: between at %d = %v, want %v", step, pos, between, want)
			}
		}
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne)
}

// TestWebSocketLimit: past max_tunnels an upgrade gets 503 + Retry-After.
func TestWebSocketLimit(t *testing.T) {
	b := startWSBackend(t, 0)
	cfg := testConfig(b.addr)
	cfg.MaxTunnels = 1
	fwd, _ := newTestForwarder(t, cfg)
	fr := startFront(t, fwd, nil)
	if head := handshake(t, dial(t, fr.addr), upgradeRequest("/ws"), nil); status(t, head) != 101 {
		t.Fatalf("first: %q", head)
	}
	head, _ := dial(t, fr.addr).do(t, upgradeRequest("/ws"), false)
	if status(t, head) != 503 || !strings.Contains(head, "Retry-After: 1\r\n") {
		t.Fatalf("second: %q, want 503 with Retry-After", head)
	}
	if v := value(t, fwd.metrics.tunnelsRefused); v != 1 {
		t.Errorf("refused = %v, want 1", v)
	}
}

// TestUpgradeRefusedOrNotWebSocket: an upstream that does not switch
// answers normally; requests that are not websocket handshakes are
// forwarded as ordinary requests, Upgrade stripped.
func TestUpgradeRefusedOrNotWebSocket(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		up, got := captureServer(t, "HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nnope!")
		fwd, _ := newTestForwarder(t, testConfig(up))
		fr := startFront(t, fwd, nil)
		cl := dial(t, fr.addr)
		head, body := cl.do(t, upgradeRequest("/ws"), false)
		if status(t, head) != 426 || string(body) != "nope!" {
			t.Fatalf("got %q %q (Serve %v), want the 426 as sent", head, body, fr.lastErr(t))
		}
		if c := receive(t, got); !strings.Contains(string(c.head), "Upgrade: websocket\r\n") {
			t.Errorf("upstream head lacks Upgrade: %q", c.head)
		}
		// The client connection is still good for HTTP.
		if head, _ := cl.do(t, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n", false); status(t, head) != 426 {
			t.Fatalf("next request: %q", head)
		}
	})
	t.Run("101 to another protocol", func(t *testing.T) {
		up, _ := captureServer(t, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
		fwd, _ := newTestForwarder(t, testConfig(up))
		fr := startFront(t, fwd, nil)
		head, _ := dial(t, fr.addr).do(t, upgradeRequest("/ws"), false)
		if status(t, head) != 502 || !errors.Is(fr.lastErr(t), ErrBadUpstreamResponse) {
			t.Fatalf("got %q, Serve %v; want 502", head, fr.lastErr(t))
		}
	})
	for _, req := range []string{
		"POST /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n",
		"GET /ws HTTP/1.0\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
	} {
		name, _, _ := strings.Cut(req, "\r\n")
		t.Run("not a handshake: "+name, func(t *testing.T) {
			up, got := captureServer(t, okResponse)
			fwd, _ := newTestForwarder(t, testConfig(up))
			fr := startFront(t, fwd, nil)
			cl := dial(t, fr.addr)
			if _, err := io.WriteString(cl.c, req); err != nil {
				t.Fatal(err)
			}
			head, err := readHead(cl.br)
			if err != nil || status(t, string(head)) != 200 {
				t.Fatalf("got %q %v", head, err)
			}
			c := receive(t, got)
			for _, f := range []string{"Upgrade", "Connection"} {
				if _, ok := headField(c.head, f); ok {
					t.Errorf("upstream got %s: %q", f, c.head)
				}
			}
		})
	}
}

// TestWebSocketUpstreamGone: an upstream that closes right after its 101
// closes the client's connection too.
func TestWebSocketUpstreamGone(t *testing.T) {
	var n atomic.Int32
	up := rawServer(t, func(c net.Conn) {
		n.Add(1)
		if _, err := readHead(bufio.NewReader(c)); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	})
	fwd, _ := newTestForwarder(t, testConfig(up))
	fr := startFront(t, fwd, nil)
	cl := dial(t, fr.addr)
	if head := handshake(t, cl, upgradeRequest("/ws"), nil); status(t, head) != 101 {
		t.Fatalf("handshake answer %q", head)
	}
	if _, err := cl.br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("client read: %v, want EOF", err)
	}
	waitFor(t, "the tunnel to end", func() bool { return gauge(t, fwd.metrics.tunnelsOpen) == 0 })
}

// TestUpgradeCopyIsOrdinary: a forwarder built with NoTunnels (the shadow
// side's, whose requests are copies in a RequestCtx built with Init, with
// no connection to hijack) forwards a handshake as an ordinary request.
func TestUpgradeCopyIsOrdinary(t *testing.T) {
	up, got := captureServer(t, okResponse)
	cfg := testConfig(up)
	cfg.NoTunnels = true
	fwd, _ := newTestForwarder(t, cfg)
	var req fasthttp.Request
	if err := req.Read(bufio.NewReader(strings.NewReader(upgradeRequest("/ws")))); err != nil {
		t.Fatal(err)
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, nil, nil)
	if err := fwd.Serve(&ctx); err != nil {
		t.Fatal(err)
	}
	if ctx.Response.StatusCode() != 200 || ctx.Hijacked() {
		t.Fatalf("status %d, hijacked %v", ctx.Response.StatusCode(), ctx.Hijacked())
	}
	if err := ctx.Response.CloseBodyStream(); err != nil {
		t.Fatal(err)
	}
	if c := receive(t, got); strings.Contains(string(c.head), "Upgrade") {
		t.Errorf("upstream got the upgrade: %q", c.head)
	}
}
