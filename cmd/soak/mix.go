package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/internal/wsframe"
)

// kind is one sort of request in the mix, with its share per thousand and
// what a correct answer looks like.
type kind struct {
	name   string
	weight int
	do     func(c *client, i int) error
}

// mix is the soak's traffic: mostly legacy pages (what a migration sees),
// the Go routes, the shadowed route, and the rarer hard cases. Weights add
// up to 1000.
func mix() []kind {
	return []kind{
		{"legacy home page", 150, getExpect("/", 200)},
		{"legacy static file", 150, getExpect("/static/app.css", 200)},
		{"legacy ping", 100, getExpect("/api/v1/ping", 200)},
		{"legacy headers echo", 50, getExpect("/headers", 200)},
		{"legacy redirect", 30, getExpect("/account", 302)},
		{"go intake", 150, (*client).intake},
		{"go lookup", 200, func(c *client, i int) error {
			return c.get(fmt.Sprintf("/api/v1/campaigns/cmp_%06d", 1+i%1000), 200)
		}},
		{"shadowed list", 100, getExpect("/api/v1/campaigns?country=DE&limit=5", 200)},
		{"upload 64 KiB", 10, (*client).upload},
		{"download 1 MiB", 2, getExpect("/download/1", 200)},
		{"websocket tunnel", 5, (*client).websocket},
		{"client abort mid-body", 20, (*client).abort},
		{"bad request", 33, (*client).bad},
	}
}

func getExpect(path string, status int) func(*client, int) error {
	return func(c *client, _ int) error { return c.get(path, status) }
}

// schedule spreads the kinds over 1000 slots in a fixed shuffled order,
// so every stretch of the run has the same mix.
func schedule(ks []kind) []int {
	var s []int
	for i, k := range ks {
		for range k.weight {
			s = append(s, i)
		}
	}
	r := rand.New(rand.NewPCG(14, 14))
	r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}

// client is one load worker's connections to the proxy.
type client struct {
	addr string
	hc   *fasthttp.HostClient
	now  func() time.Time
}

func (c *client) get(path string, want int) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + c.addr + path)
	req.Header.SetHost("shop.example")
	if err := c.hc.DoTimeout(req, resp, 30*time.Second); err != nil {
		return err
	}
	if resp.StatusCode() != want {
		return fmt.Errorf("GET %s: %d, want %d", path, resp.StatusCode(), want)
	}
	return nil
}

// intake posts a valid purchase stamped now: the Go intake spools it and
// the forwarder moves it to Kafka.
func (c *client) intake(i int) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + c.addr + "/api/v1/events")
	req.Header.SetHost("shop.example")
	req.Header.SetMethod("POST")
	req.Header.SetContentType("application/json")
	req.SetBodyString(fmt.Sprintf(`{"type":"purchase","user_id":"u_soak%05d","session_id":"s_soaksession1",`+
		`"occurred_at":%q,"country":"DE","currency":"EUR","amount":25.5,`+
		`"items":[{"sku":"SKU-1","qty":2,"price":10},{"sku":"SKU-2","qty":1,"price":5.5}],`+
		`"campaign_id":"cmp_000001","email":" Soak@Example.com ","metadata":{"source":"soak"}}`,
		i%10000, c.now().UTC().Format(time.RFC3339)))
	if err := c.hc.DoTimeout(req, resp, 30*time.Second); err != nil {
		return err
	}
	if resp.StatusCode() != 202 {
		return fmt.Errorf("POST /api/v1/events: %d %s", resp.StatusCode(), resp.Body())
	}
	return nil
}

var uploadBody = bytes.Repeat([]byte("strangler-soak-"), 64<<10/15)

func (c *client) upload(int) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + c.addr + "/upload")
	req.Header.SetHost("shop.example")
	req.Header.SetMethod("POST")
	const boundary = "soakboundary14"
	req.Header.SetContentType("multipart/form-data; boundary=" + boundary)
	var b bytes.Buffer
	b.WriteString("--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"soak.bin\"\r\n" +
		"Content-Type: application/octet-stream\r\n\r\n")
	b.Write(uploadBody)
	b.WriteString("\r\n--" + boundary + "--\r\n")
	req.SetBody(b.Bytes())
	if err := c.hc.DoTimeout(req, resp, 60*time.Second); err != nil {
		return err
	}
	if resp.StatusCode() != 200 || !bytes.Contains(resp.Body(), []byte(fmt.Sprint(len(uploadBody)))) {
		return fmt.Errorf("POST /upload: %d %.200s", resp.StatusCode(), resp.Body())
	}
	return nil
}

// raw opens a fresh connection for the requests a pooled client cannot
// make (half a body, a broken head, an upgrade).
func (c *client) raw() (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return conn, conn.SetDeadline(time.Now().Add(30 * time.Second))
}

// websocket upgrades through the proxy and Nginx to the echo server, sends
// three messages, checks the echoes, and closes.
func (c *client) websocket(i int) error {
	conn, err := c.raw()
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /ws/echo HTTP/1.1\r\nHost: shop.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"); err != nil {
		return err
	}
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("websocket handshake: %w", err)
	}
	if !strings.Contains(status, " 101 ") {
		return fmt.Errorf("websocket handshake: %q", strings.TrimSpace(status))
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if line == "\r\n" {
			break
		}
	}
	for m := range 3 {
		msg := fmt.Appendf(nil, "soak %d/%d", i, m)
		if _, err := conn.Write(wsframe.Encode(0x1, msg, true)); err != nil {
			return err
		}
		_, p, err := wsframe.Decode(br)
		if err != nil {
			return err
		}
		if !bytes.Equal(p, msg) {
			return fmt.Errorf("websocket echo %q, want %q", p, msg)
		}
	}
	_, err = conn.Write(wsframe.Encode(0x8, []byte{0x03, 0xe8}, true))
	return err
}

// abort announces a 64 KiB body, sends 1 KiB of it and hangs up.
func (c *client) abort(int) error {
	conn, err := c.raw()
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = io.WriteString(conn, "POST /headers HTTP/1.1\r\nHost: shop.example\r\nContent-Type: text/plain\r\n"+
		"Content-Length: 65536\r\n\r\n"+strings.Repeat("a", 1024))
	return err
}

// bad sends a head the front door must refuse with 400.
func (c *client) bad(i int) error {
	conn, err := c.raw()
	if err != nil {
		return err
	}
	defer conn.Close()
	heads := []string{
		"GET /a b HTTP/1.1\r\nHost: shop.example\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
	}
	if _, err := io.WriteString(conn, heads[i%len(heads)]); err != nil {
		return err
	}
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("bad request: %w", err)
	}
	if !strings.HasPrefix(status, "HTTP/1.1 400 ") {
		return fmt.Errorf("bad request answered %q, want 400", strings.TrimSpace(status))
	}
	return nil
}

// tally counts what the workers did, by kind.
type tally struct {
	done   atomic.Int64
	counts []atomic.Int64
	fails  []atomic.Int64
	mu     sync.Mutex
	first  []string // the first failure of each kind
}

// drive runs workers until n requests are done or ctx ends.
func drive(ctx context.Context, addr string, n int64, workers int, ks []kind, t *tally) {
	slots := schedule(ks)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			c := &client{addr: addr, now: time.Now, hc: &fasthttp.HostClient{
				Addr: addr, MaxConns: 4, ReadTimeout: 60 * time.Second, WriteTimeout: 60 * time.Second,
				MaxResponseBodySize: 2 << 20,
			}}
			defer c.hc.CloseIdleConnections()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				k := slots[i%int64(len(slots))]
				if err := ks[k].do(c, int(i)); err != nil {
					t.fails[k].Add(1)
					t.mu.Lock()
					if t.first[k] == "" {
						t.first[k] = err.Error()
					}
					t.mu.Unlock()
				}
				t.counts[k].Add(1)
				t.done.Add(1)
			}
		})
	}
	wg.Wait()
}
