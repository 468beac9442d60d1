package legacy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"
)

// waitFor polls cond until it holds or ioTimeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSlowDownloadOutlivesTimeout: Config.Timeout ends at the response head;
// a body that keeps coming may take longer.
func TestSlowDownloadOutlivesTimeout(t *testing.T) {
	const chunks = 8
	up := fastUpstream(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			for i := range chunks {
				fmt.Fprintf(w, "chunk %d\n", i)
				if err := w.Flush(); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	})
	cfg := testConfig(up)
	cfg.Timeout = 300 * time.Millisecond
	cfg.ReadTimeout = 5 * time.Second
	fwd, _ := newTestForwarder(t, cfg)
	fr := startFront(t, fwd, nil)

	head, body := dial(t, fr.addr).do(t, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n", false)
	if status(t, head) != 200 || strings.Count(string(body), "chunk") != chunks {
		t.Fatalf("got %q %q, want all %d chunks", head, body, chunks)
	}
	if n := counter(t, fwd, "body"); n != 0 {
		t.Errorf("body errors = %v, want 0", n)
	}
}

// TestBodyCutShort: once the head is out, an upstream that stalls longer than
// read_timeout, or dies, ends the client connection mid-body; the upstream
// connection is closed, not pooled, and the error is counted.
func TestBodyCutShort(t *testing.T) {
	tests := []struct {
		name  string
		stall bool // stall (read_timeout) rather than close
	}{
		{"upstream stalls", true},
		{"upstream dies", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upClosed := make(chan struct{})
			up := rawServer(t, func(c net.Conn) {
				serveUntil(c, func([]byte) bool { return true })
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
				if tt.stall {
					_, _ = io.Copy(io.Discard, c) // returns when the proxy closes
					close(upClosed)
				}
			})
			cfg := testConfig(up)
			cfg.ReadTimeout = 300 * time.Millisecond
			fwd, _ := newTestForwarder(t, cfg)
			fr := startFront(t, fwd, nil)
			cl := dial(t, fr.addr)

			if _, err := io.WriteString(cl.c, "GET /cut HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			// What reaches the client depends on what the front door had
			// flushed: some prefix of the upstream's answer, never all of
			// it, then the connection closes.
			got, err := io.ReadAll(cl.br)
			const whole = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"
			if err != nil || !strings.HasPrefix(whole, string(got)) {
				t.Fatalf("client got %q, %v; want a prefix of %q, then EOF", got, err, whole)
			}
			if tt.stall {
				select {
				case <-upClosed:
				case <-time.After(ioTimeout):
					t.Fatal("the upstream connection was not closed")
				}
			}
			waitFor(t, "the body error to be counted", func() bool { return counter(t, fwd, "body") == 1 })
			waitFor(t, "no upstream connection left", func() bool { return fwd.clients[0].ConnsCount() == 0 })
		})
	}
}

// TestClientLeavesMidDownload: a client that goes away mid-body makes the
// forwarder close the upstream connection (its body cannot be finished, so
// it cannot be reused) and leaves no goroutine behind.
func TestClientLeavesMidDownload(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t, ignoreCleaner) }) // runs after every other cleanup

	upGone := make(chan error, 1)
	up := rawServer(t, func(c net.Conn) {
		serveUntil(c, func([]byte) bool { return true })
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n")
		_, err := io.Copy(c, io.LimitReader(&pattern{}, 1<<30))
		upGone <- err
	})
	fwd, _ := newTestForwarder(t, testConfig(up))
	fr := startFront(t, fwd, nil)
	cl := dial(t, fr.addr)

	if _, err := io.WriteString(cl.c, "GET /big HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if head, err := readHead(cl.br); err != nil || status(t, string(head)) != 200 {
		t.Fatalf("head: %q, %v", head, err)
	}
	if _, err := io.CopyN(io.Discard, cl.br, 1<<20); err != nil {
		t.Fatal(err)
	}
	_ = cl.c.Close()

	select {
	case err := <-upGone:
		if err == nil {
			t.Fatal("the upstream sent the whole body to a client that had left")
		}
	case <-time.After(ioTimeout):
		t.Fatal("the upstream connection stayed open after the client left")
	}
	waitFor(t, "no upstream connection left", func() bool { return fwd.clients[0].ConnsCount() == 0 })
	if n := counter(t, fwd, "body"); n != 0 {
		t.Errorf("body errors = %v: a client leaving is not an upstream error", n)
	}
}

// bigSize is the size of the bounded-memory transfers: 256 MiB, or 1 GiB
// with STRANGLER_BIG=1 (about four times slower under -race on a shared
// 2-core machine).
func bigSize() int64 {
	if os.Getenv("STRANGLER_BIG") == "1" {
		return 1 << 30
	}
	return 256 << 20
}

// maxGrowth is how much the heap in use and the memory obtained from the OS
// may grow during a big transfer.
const maxGrowth = 64 << 20

// memWatch samples the heap while a transfer runs.
type memWatch struct {
	base            runtime.MemStats
	maxHeap, maxSys uint64
	stop, done      chan struct{}
}

func watchMemory() *memWatch {
	runtime.GC()
	w := &memWatch{stop: make(chan struct{}), done: make(chan struct{})}
	runtime.ReadMemStats(&w.base)
	go func() {
		defer close(w.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			w.maxHeap, w.maxSys = max(w.maxHeap, m.HeapInuse), max(w.maxSys, m.Sys)
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *memWatch) check(t testing.TB) {
	t.Helper()
	close(w.stop)
	<-w.done
	heap, sys := int64(w.maxHeap)-int64(w.base.HeapInuse), int64(w.maxSys)-int64(w.base.Sys)
	t.Logf("growth during the transfer: HeapInuse %d KiB, Sys %d KiB", heap>>10, sys>>10)
	if heap > maxGrowth || sys > maxGrowth {
		t.Errorf("memory grew by HeapInuse %d MiB, Sys %d MiB; want under %d MiB each", heap>>20, sys>>20, maxGrowth>>20)
	}
}

func TestBigUpload(t *testing.T) {
	size := bigSize()
	up := fastUpstream(t, func(ctx *fasthttp.RequestCtx) {
		c := newPatternChecker()
		_, err := io.Copy(c, ctx.RequestBodyStream())
		fmt.Fprintf(ctx, "%d %d %v", c.n, c.bad, err)
	})
	fwd, _ := newTestForwarder(t, testConfig(up))
	fr := startFront(t, fwd, nil)
	cl := dial(t, fr.addr)

	w := watchMemory()
	var (
		wg       sync.WaitGroup
		writeErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, writeErr = fmt.Fprintf(cl.c, "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", size)
		if writeErr == nil {
			_, writeErr = io.CopyBuffer(cl.c, io.LimitReader(&pattern{}, size), make([]byte, 64<<10))
		}
	}()
	head, err := readHead(cl.br)
	var body []byte
	if err == nil {
		body, err = readBody(cl.br, head, true)
	}
	wg.Wait()
	w.check(t)
	if err != nil || writeErr != nil {
		t.Fatalf("read: %v, write: %v", err, writeErr)
	}
	if want := strconv.FormatInt(size, 10) + " -1 <nil>"; status(t, string(head)) != 200 || string(body) != want {
		t.Fatalf("got %q %q, want the upstream to count %q", head, body, want)
	}
}

func TestBigDownload(t *testing.T) {
	size := bigSize()
	tests := []struct {
		name    string
		chunked bool
	}{
		{"content-length", false},
		{"chunked", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := fastUpstream(t, func(ctx *fasthttp.RequestCtx) {
				if tt.chunked {
					// Hidden from fasthttp, which frames a LimitedReader
					// with its length.
					ctx.SetBodyStream(struct{ io.Reader }{io.LimitReader(&pattern{}, size)}, -1)
					return
				}
				ctx.SetBodyStream(io.LimitReader(&pattern{}, size), int(size))
			})
			fwd, _ := newTestForwarder(t, testConfig(up))
			fr := startFront(t, fwd, nil)
			cl := dial(t, fr.addr)

			w := watchMemory()
			if _, err := io.WriteString(cl.c, "GET /download HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			head, err := readHead(cl.br)
			if err != nil || status(t, string(head)) != 200 {
				t.Fatalf("head: %q, %v", head, err)
			}
			if _, ok := headField(head, "Transfer-Encoding"); ok != tt.chunked {
				t.Fatalf("head %q: want chunked %v", head, tt.chunked)
			}
			var r io.Reader = io.LimitReader(cl.br, size)
			if tt.chunked {
				r = httputil.NewChunkedReader(cl.br)
			}
			c := newPatternChecker()
			_, err = io.CopyBuffer(c, r, make([]byte, 64<<10))
			w.check(t)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, size)
		})
	}
}

// TestUpstreamStopsReading: an upstream that stops reading the request body
// is given up after write_timeout of no progress, well before the exchange
// timeout.
func TestUpstreamStopsReading(t *testing.T) {
	up := rawServer(t, func(c net.Conn) {
		// Read the head, then nothing more; hold the connection until the
		// proxy closes it.
		if _, err := readHead(bufio.NewReader(c)); err != nil {
			return
		}
		<-t.Context().Done()
	})
	cfg := testConfig(up)
	cfg.WriteTimeout = 300 * time.Millisecond
	fwd, _ := newTestForwarder(t, cfg)
	fr := startFront(t, fwd, nil)
	cl := dial(t, fr.addr)

	const size = 256 << 20 // far more than the sockets buffer
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Fails once the front door gives up on this connection.
		_, _ = fmt.Fprintf(cl.c, "PUT /up HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", size)
		_, _ = io.CopyBuffer(cl.c, io.LimitReader(&pattern{}, size), make([]byte, 64<<10))
	}()
	var err error
	waitFor(t, "Serve to return", func() bool {
		fr.mu.Lock()
		defer fr.mu.Unlock()
		if len(fr.errs) > 0 {
			err = fr.errs[0]
			return true
		}
		return false
	})
	_ = cl.c.Close()
	<-done
	if !errors.Is(err, ErrUpstreamTimeout) {
		t.Fatalf("Serve returned %v, want ErrUpstreamTimeout", err)
	}
	if d := time.Since(start); d > DefaultTimeout/3 {
		t.Errorf("gave up after %s: write_timeout did not apply", d)
	}
}
