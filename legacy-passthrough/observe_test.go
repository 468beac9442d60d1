package legacy

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"
)

// recordingObserver keeps what ServeObserved reports.
type recordingObserver struct {
	mu       sync.Mutex
	body     []byte
	done     int
	complete bool
	ended    chan struct{}
}

func newRecordingObserver() *recordingObserver {
	return &recordingObserver{ended: make(chan struct{})}
}

func (o *recordingObserver) ObserveBody(p []byte) {
	o.mu.Lock()
	o.body = append(o.body, p...)
	o.mu.Unlock()
}

func (o *recordingObserver) BodyDone(complete bool) {
	o.mu.Lock()
	o.done++
	o.complete = complete
	o.mu.Unlock()
	close(o.ended)
}

// observedFront serves fwd through ServeObserved, handing each request the
// next observer from obs.
func observedFront(t *testing.T, fwd *Forwarder, obs chan *recordingObserver, observed chan bool) string {
	t.Helper()
	return serve(t, frontServer(func(ctx *fasthttp.RequestCtx) {
		ok, err := fwd.ServeObserved(ctx, <-obs)
		if err != nil {
			ctx.SetStatusCode(statusOf(err))
		}
		observed <- ok
	}))
}

// TestServeObservedReportsTheBodyTheClientGets: the observer sees exactly
// the bytes the client receives, sized or chunked, and learns whether the
// client got all of them; a body-less answer is not observed at all.
func TestServeObservedReportsTheBodyTheClientGets(t *testing.T) {
	chunked := strings.Repeat("chunk-", 2000)
	up := fastUpstream(t, func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/sized":
			ctx.SetBodyString(`{"sized":true}`)
		case "/chunked":
			ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
				for i := 0; i < len(chunked); i += 1000 {
					_, _ = w.WriteString(chunked[i:min(i+1000, len(chunked))])
					_ = w.Flush()
				}
			})
		case "/empty":
			ctx.SetStatusCode(204)
		}
	})
	fwd, _ := newTestForwarder(t, testConfig(up))
	obs, observed := make(chan *recordingObserver, 1), make(chan bool, 1)
	addr := observedFront(t, fwd, obs, observed)
	cl := dial(t, addr)
	for _, tc := range []struct{ path, want string }{{"/sized", `{"sized":true}`}, {"/chunked", chunked}} {
		o := newRecordingObserver()
		obs <- o
		_, body := cl.do(t, "GET "+tc.path+" HTTP/1.1\r\nHost: h\r\n\r\n", false)
		if !<-observed {
			t.Fatalf("%s: not observed", tc.path)
		}
		<-o.ended
		if string(body) != tc.want || string(o.body) != tc.want || o.done != 1 || !o.complete {
			t.Fatalf("%s: client got %d bytes, observer %d bytes, done %d, complete %v",
				tc.path, len(body), len(o.body), o.done, o.complete)
		}
	}
	o := newRecordingObserver()
	obs <- o
	if head, _ := cl.do(t, "GET /empty HTTP/1.1\r\nHost: h\r\n\r\n", true); status(t, head) != 204 || <-observed {
		t.Fatalf("204: %q observed", head)
	}
}

// observeOne starts a front door on up that serves one request with an
// observer, and a client connection to it.
func observeOne(t *testing.T, up string) (*recordingObserver, chan bool, *client) {
	t.Helper()
	fwd, _ := newTestForwarder(t, testConfig(up))
	obs, observed := make(chan *recordingObserver, 1), make(chan bool, 1)
	addr := observedFront(t, fwd, obs, observed)
	o := newRecordingObserver()
	obs <- o
	return o, observed, dial(t, addr)
}

// TestServeObservedIncompleteBody: an upstream that dies mid-body, or a
// client that leaves, ends the observation as incomplete.
func TestServeObservedIncompleteBody(t *testing.T) {
	t.Run("upstream dies", func(t *testing.T) {
		up := rawServer(t, func(c net.Conn) {
			serveUntil(c, func([]byte) bool { return true })
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
		})
		o, observed, cl := observeOne(t, up)
		if _, err := io.WriteString(cl.c, "GET /cut HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadAll(cl.br)
		<-o.ended
		if !<-observed || o.complete || string(o.body) != "0123456789" {
			t.Fatalf("complete %v after %q: want an incomplete observation", o.complete, o.body)
		}
	})
	t.Run("client leaves", func(t *testing.T) {
		up := rawServer(t, func(c net.Conn) {
			serveUntil(c, func([]byte) bool { return true })
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n")
			_, _ = io.Copy(c, io.LimitReader(&pattern{}, 1<<30))
		})
		o, observed, cl := observeOne(t, up)
		if _, err := io.WriteString(cl.c, "GET /big HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := readHead(cl.br); err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, cl.br, 1<<20); err != nil {
			t.Fatal(err)
		}
		_ = cl.c.Close()
		<-o.ended
		if !<-observed || o.complete {
			t.Fatal("a client that left got a complete observation")
		}
		if n := len(o.body); n < 1<<20 {
			t.Fatalf("observer saw %d bytes, less than the client read", n)
		}
	})
}
