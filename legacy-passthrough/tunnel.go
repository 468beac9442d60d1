package legacy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/internal/ascii"
)

// WebSocket passthrough (RFC 6455 over RFC 9110 §7.8 Upgrade).
//
// Upgrade and Connection are hop-by-hop, so an ordinary forward strips them
// and the monolith never sees a handshake. For a GET that asks to switch to
// websocket, the forwarder instead opens a connection of its own to the
// upstream (never a pooled one: after a 101 it no longer carries HTTP), sends
// the request with those two fields put back, and on "101 Switching
// Protocols" hands the client connection over from fasthttp (ctx.Hijack) and
// copies bytes both ways until either side closes or the tunnel is idle for
// Config.TunnelIdleTimeout. Any other answer is passed on as an ordinary
// response and the connection closed.
//
// Tunnels are counted and capped (Config.MaxTunnels) and tracked, so that
// Close ends every one of them — with a 1001 "going away" close frame to
// each peer (wsclose.go) — and waits for their goroutines.

// tunnelBufSize is the copy buffer of each direction: the memory a tunnel
// holds besides its two sockets.
const tunnelBufSize = 32 << 10

// maxRefusalBody bounds the body of a non-101 answer to an upgrade request,
// which is read whole (Nginx's and PHP's refusals are a few hundred bytes).
const maxRefusalBody = 1 << 20

// errUpgradeMismatch: the upstream answered 101 but not for websocket.
var errUpgradeMismatch = errors.New("101 without Upgrade: websocket")

// isWebSocketUpgrade reports whether the request asks for a websocket
// upgrade the forwarder passes through: HTTP/1.1 GET without a body, whose
// Connection lists "upgrade" and whose Upgrade names "websocket" (RFC 6455
// §4.1). Other upgrades (h2c...) are forwarded as ordinary requests, with
// Upgrade stripped.
func isWebSocketUpgrade(h *fasthttp.RequestHeader) bool {
	if !h.IsGet() || !h.IsHTTP11() || (h.ContentLength() != 0 && h.ContentLength() != -2) {
		return false
	}
	var connection, websocket bool
	for k, v := range h.All() {
		switch {
		case ascii.EqualFold(k, "Connection"):
			connection = connection || hasToken(v, "upgrade")
		case ascii.EqualFold(k, "Upgrade"):
			websocket = websocket || hasToken(v, "websocket")
		}
	}
	return connection && websocket
}

// hasToken reports whether the comma-separated list v holds token,
// case-insensitively. Upgrade values may carry a version ("websocket/13").
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var t []byte
		t, v, _ = bytes.Cut(v, []byte{','})
		t = bytes.Trim(t, " \t")
		if i := bytes.IndexByte(t, '/'); i >= 0 {
			t = t[:i]
		}
		if ascii.EqualFold(t, token) {
			return true
		}
	}
	return false
}

// serveUpgrade forwards a websocket handshake and, on 101, arranges for the
// tunnel to start once fasthttp has written the 101 to the client.
func (f *Forwarder) serveUpgrade(ctx *fasthttp.RequestCtx, s *scratch, b *backend) error {
	t := f.tunnels.reserve()
	if t == nil {
		f.metrics.tunnelsRefused.Inc()
		// Every tunnel holds two sockets and two buffers for as long as it
		// lives; past the cap the client is told to come back.
		ctx.Response.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.Response.Header.Set("Retry-After", "1")
		ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
		ctx.Response.SetBodyString("Service Unavailable: too many open websocket connections\n")
		return nil
	}
	handedOver := false
	defer func() {
		if !handedOver {
			t.finish()
		}
	}()

	deadline := time.Now().Add(f.cfg.Timeout)
	b.requests.Inc()
	uc, err := f.dialConn(b, time.Until(deadline))
	if err != nil {
		f.pool.observe(b, true)
		return f.upstreamError(b, err)
	}
	if !t.attach(uc.Conn) {
		_ = uc.Close()
		return fmt.Errorf("forward to %s: %w: shutting down", b.addr, ErrUpstreamUnreachable)
	}
	_ = uc.SetWriteDeadline(deadline)
	_ = uc.SetReadDeadline(deadline)

	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	f.buildRequest(ctx, req, s, b)
	req.Header.Add("Connection", "Upgrade")
	req.Header.Add("Upgrade", "websocket")
	bw := bufio.NewWriterSize(uc, 4<<10)
	if err := req.Write(bw); err != nil {
		return f.upstreamError(b, err)
	}
	if err := bw.Flush(); err != nil {
		return f.upstreamError(b, err)
	}

	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	resp.Header.DisableNormalizing()
	resp.Header.SetNoDefaultContentType(true)
	br := bufio.NewReaderSize(uc, f.cfg.MaxResponseHeaderBytes)
	if err := resp.ReadLimitBody(br, maxRefusalBody); err != nil {
		f.pool.observe(b, true)
		return f.upstreamError(b, err)
	}
	f.pool.observe(b, resp.StatusCode() >= fasthttp.StatusInternalServerError)
	if err := uc.checkHead(); err != nil {
		f.metrics.badResponse.Inc()
		return fmt.Errorf("forward to %s: %w: %w", b.addr, ErrBadUpstreamResponse, err)
	}
	switching := resp.StatusCode() == fasthttp.StatusSwitchingProtocols
	if switching && !hasToken(resp.Header.Peek("Upgrade"), "websocket") {
		f.metrics.badResponse.Inc()
		return fmt.Errorf("forward to %s: %w: %w", b.addr, ErrBadUpstreamResponse, errUpgradeMismatch)
	}
	if err := s.copyResponseHeader(&ctx.Response.Header, &resp.Header, false, f.cfg.MaxResponseHeaderBytes); err != nil {
		clearHeader(&ctx.Response.Header)
		f.metrics.badResponse.Inc()
		return fmt.Errorf("forward to %s: %w: %w", b.addr, ErrBadUpstreamResponse, err)
	}
	if !switching {
		// Refused (400, 403, 426...): an ordinary answer; the connection
		// closes with the deferred finish.
		ctx.Response.SetBody(resp.Body())
		return nil
	}
	// Upgrade and Connection were stripped with the other hop-by-hop
	// fields; the client needs them back to complete its handshake.
	ctx.Response.Header.Set("Upgrade", "websocket")
	ctx.Response.Header.Set("Connection", "Upgrade")
	_ = uc.SetDeadline(time.Time{})
	// Frames the upstream sent right behind its 101 are in br already.
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		t.early = bytes.Clone(b)
	}
	t.id = append(t.id[:0], s.id...)
	// fasthttp calls run after writing the 101; if writing it fails, run is
	// never called, and the guard closes the upstream connection instead.
	if !t.pend(f.cfg.Timeout) {
		clearHeader(&ctx.Response.Header)
		return fmt.Errorf("forward to %s: %w: shutting down", b.addr, ErrUpstreamUnreachable)
	}
	ctx.Hijack(t.run)
	handedOver = true
	return nil
}

// clearHeader undoes a copied response head, so that a returned error
// leaves the response as Serve found it.
func clearHeader(h *fasthttp.ResponseHeader) {
	var keys []string
	for k := range h.All() {
		keys = append(keys, string(k))
	}
	for _, k := range keys {
		h.Del(k)
	}
	h.SetStatusCode(fasthttp.StatusOK)
}

// tunnels tracks the open tunnels so that Close can end them.
type tunnels struct {
	max  int
	idle time.Duration
	log  *zap.Logger
	open prometheus.Gauge

	mu     sync.Mutex
	all    map[*tunnel]struct{}
	closed bool
	wg     sync.WaitGroup // one per tunnel not yet finished
}

func newTunnels(max int, idle time.Duration, log *zap.Logger, open prometheus.Gauge) *tunnels {
	return &tunnels{max: max, idle: idle, log: log, open: open, all: make(map[*tunnel]struct{})}
}

type tunnelState uint8

const (
	tunnelReserved tunnelState = iota // handshake in progress
	tunnelPending                     // 101 received; waiting for fasthttp to hand over the client
	tunnelRunning                     // copying
	tunnelDone
)

// tunnel is one upgraded connection pair. Its fields other than the atomics
// and those set before the hand-over are guarded by ts.mu.
type tunnel struct {
	ts     *tunnels
	state  tunnelState
	up     net.Conn
	client net.Conn
	guard  *time.Timer
	early  []byte // upstream bytes read along with the 101
	id     []byte // X-Request-Id, for the log

	last      atomic.Int64 // UnixNano of the last byte moved either way
	stopped   atomic.Bool  // closeBoth or goAway was called
	goingAway atomic.Bool  // goAway was: the shutdown's, see wsclose.go
	up2client atomic.Int64
	client2up atomic.Int64
	// Where each direction's frames begin and end, for the close frames.
	toClient, toUp frameCursor
}

// reserve returns a new tunnel, or nil when MaxTunnels are open or Close
// has been called.
func (ts *tunnels) reserve() *tunnel {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closed || len(ts.all) >= ts.max {
		return nil
	}
	t := &tunnel{ts: ts}
	ts.all[t] = struct{}{}
	ts.wg.Add(1)
	ts.open.Inc()
	return t
}

// attach records the upstream connection; false when Close came first.
func (t *tunnel) attach(up net.Conn) bool {
	t.ts.mu.Lock()
	defer t.ts.mu.Unlock()
	if t.state != tunnelReserved || t.ts.closed {
		return false
	}
	t.up = up
	return true
}

// pend marks the handshake done; the guard finishes the tunnel if the
// client is not handed over within wait. False when Close came first.
func (t *tunnel) pend(wait time.Duration) bool {
	t.ts.mu.Lock()
	defer t.ts.mu.Unlock()
	if t.state != tunnelReserved || t.ts.closed {
		return false
	}
	t.state = tunnelPending
	t.guard = time.AfterFunc(wait, t.finish)
	return true
}

// finish ends the tunnel once, whatever state it is in: it closes both
// connections and releases the tracker's hold.
func (t *tunnel) finish() {
	ts := t.ts
	ts.mu.Lock()
	if t.state == tunnelDone {
		ts.mu.Unlock()
		return
	}
	t.state = tunnelDone
	delete(ts.all, t)
	if t.guard != nil {
		t.guard.Stop()
	}
	up, client := t.up, t.client
	ts.mu.Unlock()
	if up != nil {
		_ = up.Close()
	}
	if client != nil {
		t.closeBoth() // only run's own deferred call gets here with a client
	}
	ts.open.Dec()
	ts.wg.Done()
}

// run is the hijack handler: it copies both ways until the tunnel ends. It
// runs on fasthttp's goroutine for the hijacked connection; the second
// direction gets a goroutine of its own, which run waits for.
func (t *tunnel) run(client net.Conn) {
	ts := t.ts
	ts.mu.Lock()
	if t.state != tunnelPending {
		ts.mu.Unlock()
		_ = client.Close() // Close or the guard came first
		return
	}
	t.state = tunnelRunning
	t.client = client
	t.guard.Stop()
	ts.mu.Unlock()
	defer t.finish()

	t.touch()
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := t.pipe(t.up, client, &t.client2up, &t.toUp)
		if t.goingAway.Load() {
			return // run sends the close frames, then closes
		}
		if err == nil {
			// The client finished sending: pass the FIN on and keep
			// answering it until the upstream closes too.
			if cw, ok := t.up.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
				return
			}
		}
		t.closeBoth()
	}()
	err := t.writeEarly(client)
	if err == nil {
		err = t.pipe(client, t.up, &t.up2client, &t.toClient)
	}
	if t.goingAway.Load() {
		<-done // nothing else writes to either side now
		t.sayGoingAway(client)
	}
	// The upstream is done (or failed): nothing more can reach the client,
	// and a hijacked connection cannot be half-closed, so both close.
	t.closeBoth()
	<-done
	if ce := ts.log.Check(zap.DebugLevel, "websocket tunnel closed"); ce != nil {
		ce.Write(zap.ByteString("request_id", t.id), zap.Int64("bytes_to_client", t.up2client.Load()),
			zap.Int64("bytes_to_upstream", t.client2up.Load()), zap.Error(err))
	}
}

func (t *tunnel) writeEarly(client net.Conn) error {
	if len(t.early) == 0 {
		return nil
	}
	_ = client.SetWriteDeadline(time.Now().Add(t.ts.idle))
	n, err := client.Write(t.early)
	t.up2client.Add(int64(n))
	t.toClient.advance(t.early[:n])
	t.early = nil
	return err
}

// closeBoth stops both directions. fasthttp's hijacked connection ignores
// Close (fasthttp closes it once run returns), so a read or write blocked
// on it is cut by an expired deadline instead, and stopped keeps pipe from
// taking that for an idle timeout.
func (t *tunnel) closeBoth() {
	t.stopped.Store(true)
	_ = t.up.Close()
	_ = t.client.SetDeadline(time.Unix(1, 0))
	_ = t.client.Close()
}

func (t *tunnel) touch() { t.last.Store(time.Now().UnixNano()) }

// pipe copies src to dst until src ends: nil at EOF, else the error,
// following in frames where dst's frames begin and end. The idle timeout
// counts from the last byte moved in either direction, so a tunnel where
// only one side talks stays open.
func (t *tunnel) pipe(dst, src net.Conn, moved *atomic.Int64, frames *frameCursor) error {
	buf := make([]byte, tunnelBufSize)
	for {
		last := time.Unix(0, t.last.Load())
		if err := src.SetReadDeadline(last.Add(t.ts.idle)); err != nil {
			return err
		}
		if t.stopped.Load() {
			// closeBoth's expired deadline may have come before the one
			// just set; it set stopped first.
			return net.ErrClosed
		}
		n, err := src.Read(buf)
		if n > 0 {
			t.touch()
			if werr := dst.SetWriteDeadline(time.Now().Add(t.ts.idle)); werr != nil {
				return werr
			}
			if t.stopped.Load() {
				return net.ErrClosed
			}
			nw, werr := dst.Write(buf[:n])
			frames.advance(buf[:nw]) // what dst has, whole frames or not
			if werr != nil {
				return werr
			}
			moved.Add(int64(n))
		}
		switch {
		case err == nil:
		case t.stopped.Load():
			return err
		case errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded) && time.Since(time.Unix(0, t.last.Load())) < t.ts.idle:
			// The other direction moved meanwhile.
		default:
			return err
		}
	}
}

// closeAll ends every tunnel and waits until their goroutines are done.
func (ts *tunnels) closeAll() {
	ts.mu.Lock()
	ts.closed = true
	list := make([]*tunnel, 0, len(ts.all))
	for t := range ts.all {
		list = append(list, t)
	}
	ts.mu.Unlock()
	for _, t := range list {
		t.shut()
	}
	ts.wg.Wait()
}

// shut ends the tunnel for the shutdown. A tunnel waiting for its
// hand-over is finished here; a running one stops copying and run says
// going away to both peers (wsclose.go) and closes; one still in its
// handshake has its upstream connection closed, so that I/O fails. The client connection is touched
// under the lock and only while run has not finished: fasthttp recycles it
// as soon as run returns.
func (t *tunnel) shut() {
	t.ts.mu.Lock()
	switch t.state {
	case tunnelPending:
		t.ts.mu.Unlock()
		t.finish()
		return
	case tunnelRunning:
		t.goAway() // run sends 1001 close frames, then closes (wsclose.go)
	case tunnelReserved:
		if t.up != nil {
			_ = t.up.Close()
		}
	}
	t.ts.mu.Unlock()
}
