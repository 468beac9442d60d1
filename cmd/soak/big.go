package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/strangler-proxy/strangler/internal/wsframe"
)

// bigDownload reads GET /download/{mb} through the proxy and checks its
// length: PHP streams it, and so must the proxy, in bounded memory.
func bigDownload(addr string, size int64) error {
	mb := max(size>>20, 1)
	resp, err := http.Get(fmt.Sprintf("http://%s/download/%d", addr, mb))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %s", resp.Status)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return err
	}
	if n != mb<<20 {
		return fmt.Errorf("%d bytes, want %d", n, mb<<20)
	}
	return nil
}

// bigUpload posts a multipart body with one size-byte file through the
// proxy, streamed with its length known, and checks the size PHP saw.
func bigUpload(addr string, size int64) error {
	const boundary = "soakbigboundary"
	head := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n" +
		"Content-Type: application/octet-stream\r\n\r\n"
	tail := "\r\n--" + boundary + "--\r\n"
	body := io.MultiReader(strings.NewReader(head), io.LimitReader(pattern{}, size), strings.NewReader(tail))
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/upload", body)
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(head)) + size + int64(len(tail))
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
	client := &http.Client{Timeout: 10 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var got struct {
		Size int64 `json:"size"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != 200 || json.Unmarshal(b, &got) != nil || got.Size != size {
		return fmt.Errorf("%s %s, want size %d", resp.Status, b, size)
	}
	return nil
}

// pattern is an endless stream of bytes that never spell the boundary.
type pattern struct{}

func (pattern) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a' + byte(i%23)
	}
	return len(p), nil
}

// echo is the websocket service behind the monolith's Nginx: it upgrades
// any request and echoes frames until the client's close.
type echo struct {
	net.Listener
	wg sync.WaitGroup
}

func startEcho() (*echo, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e := &echo{Listener: ln}
	e.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.wg.Go(func() { serveEcho(c) })
		}
	})
	return e, nil
}

// Close stops accepting and waits for the connections, which end within
// their deadline.
func (e *echo) Close() error {
	err := e.Listener.Close()
	e.wg.Wait()
	return err
}

func serveEcho(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		wsframe.Accept(req.Header.Get("Sec-WebSocket-Key")))
	for {
		op, p, err := wsframe.Decode(br)
		if err != nil {
			return
		}
		if _, err := c.Write(wsframe.Encode(op, bytes.Clone(p), false)); err != nil || op == 0x8 {
			return
		}
	}
}
