package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/proxy/wirecheck"
)

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

func TestLimitsCheck(t *testing.T) {
	l := limits{maxLine: 64, maxBody: 100}
	tests := []struct {
		name string
		head string // request head without the final CRLF
		want int    // 0: within limits
	}{
		{"small", "GET / HTTP/1.1\r\nHost: a\r\n", 0},
		{"request line at the limit", "GET /" + strings.Repeat("u", 64-len("GET / HTTP/1.1")) + " HTTP/1.1\r\nHost: a\r\n", 0},
		{"request line over", "GET /" + strings.Repeat("u", 65-len("GET / HTTP/1.1")) + " HTTP/1.1\r\nHost: a\r\n", 414},
		{"header line at the limit", "GET / HTTP/1.1\r\nHost: a\r\nX-A: " + strings.Repeat("v", 64-len("X-A: ")) + "\r\n", 0},
		{"header line over", "GET / HTTP/1.1\r\nHost: a\r\nX-A: " + strings.Repeat("v", 65-len("X-A: ")) + "\r\n", 431},
		{"many short lines", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-B: 1234567890\r\n", 20), 0},
		{"long line after short ones", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-B: 1\r\n", 5) + "X-C: " + strings.Repeat("v", 70) + "\r\n", 431},
		{"body at the limit", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n", 0},
		{"body over", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n", 413},
		{"chunked is checked while streaming", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h fasthttp.RequestHeader
			h.DisableNormalizing()
			if err := h.Read(bufioReader(tt.head + "\r\n")); err != nil {
				t.Fatal(err)
			}
			got := 0
			if err := l.check(&h); err != nil {
				got = StatusOf(err)
			}
			if got != tt.want {
				t.Errorf("check = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestLongestLine(t *testing.T) {
	tests := []struct {
		give string
		want int
	}{
		{"", 0},
		{"abc", 3},
		{"abc\r\n", 3},
		{"a\r\nbcde\r\nfg\r\n", 4},
		{"a\nbcdef\n", 5}, // bare LF, which fasthttp accepts
	}
	for _, tt := range tests {
		if got := longestLine([]byte(tt.give)); got != tt.want {
			t.Errorf("longestLine(%q) = %d, want %d", tt.give, got, tt.want)
		}
	}
}

func TestClientBodyLimit(t *testing.T) {
	tests := []struct {
		name    string
		size    int
		limit   int64
		tripped bool
	}{
		{"empty", 0, 10, false},
		{"under", 9, 10, false},
		{"exactly the limit", 10, 10, false},
		{"one over", 11, 10, true},
		{"far over", 1 << 20, 10, true},
		{"zero limit", 1, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &clientBody{r: strings.NewReader(strings.Repeat("x", tt.size)), left: tt.limit}
			n, err := io.Copy(io.Discard, b)
			if b.tripped != tt.tripped {
				t.Fatalf("tripped = %v, want %v", b.tripped, tt.tripped)
			}
			if tt.tripped {
				if !errors.Is(err, fasthttp.ErrBodyTooLarge) || b.status() != 413 {
					t.Errorf("err = %v, status %d; want ErrBodyTooLarge in the chain and 413", err, b.status())
				}
				if n > tt.limit || b.read != n {
					t.Errorf("passed %d bytes (counted %d), want at most %d", n, b.read, tt.limit)
				}
				return
			}
			if err != nil || n != int64(tt.size) || b.read != n || b.status() != 0 {
				t.Errorf("copied %d (counted %d), err %v, status %d; want %d, nil, 0", n, b.read, err, b.status(), tt.size)
			}
		})
	}
}

// failingReader returns some bytes, then err.
// A read that returns bytes with an error delivers the bytes, then fails
// every time: fasthttp's client writes what comes with an error and reads
// on, and its chunked reader would go on parsing after the bad byte.
func TestClientBodyErrorIsSticky(t *testing.T) {
	r := &stutterReader{reads: []stutter{{"xx", fasthttp.ErrBrokenChunk{}}, {"0123", nil}, {"", io.EOF}}}
	b := &clientBody{r: r, left: 100}
	buf := make([]byte, 16)
	if n, err := b.Read(buf); n != 2 || err != nil {
		t.Fatalf("first read = %d, %v; want the 2 bytes and no error yet", n, err)
	}
	for range 3 {
		if n, err := b.Read(buf); n != 0 || !errors.As(err, new(fasthttp.ErrBrokenChunk)) {
			t.Fatalf("later read = %d, %v; want 0 and the broken chunk", n, err)
		}
	}
	if b.status() != 400 || b.read != 2 {
		t.Errorf("status %d, read %d; want 400 and 2", b.status(), b.read)
	}
}

type stutter struct {
	data string
	err  error
}

type stutterReader struct{ reads []stutter }

func (r *stutterReader) Read(p []byte) (int, error) {
	s := r.reads[0]
	r.reads = r.reads[1:]
	return copy(p, s.data), s.err
}

type failingReader struct {
	data string
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestClientBodyBlamesTheClient(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"client went silent", &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, 408},
		{"client went away", io.ErrUnexpectedEOF, StatusClientClosedRequest},
		{"client reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, StatusClientClosedRequest},
		{"broken chunked encoding", fasthttp.ErrBrokenChunk{}, 400},
		{"framing wirecheck refused", fmt.Errorf("read: %w", &wirecheck.Error{Reason: "x"}), 400},
		{"a chunk size fasthttp cannot read", errors.New("empty hex number"), 400},
		{"connection closed", net.ErrClosed, StatusClientClosedRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &clientBody{r: &failingReader{data: "abc", err: tt.err}, left: 100}
			_, err := io.Copy(io.Discard, b)
			if !errors.Is(err, tt.err) {
				t.Errorf("the handler sees %v, want %v", err, tt.err)
			}
			if got := b.status(); got != tt.want {
				t.Errorf("status %d, want %d", got, tt.want)
			}
			if b.read != 3 {
				t.Errorf("read %d, want 3", b.read)
			}
		})
	}
}
