package wirecheck

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

const host = "Host: a\r\n"

// A stream the front door accepts passes whole, however the reads split it.
func TestScannerPassesWellFormedStreams(t *testing.T) {
	tests := []struct{ name, give string }{
		{"pipelined GETs", "GET / HTTP/1.1\r\n" + host + "\r\nGET /b HTTP/1.1\r\n" + host + "\r\n"},
		{"empty lines before the request line", "\r\n\r\nGET / HTTP/1.1\r\n" + host + "\r\n"},
		{"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n"},
		{"a body holding bare LFs and an empty line", "POST / HTTP/1.1\r\n" + host + "Content-Length: 12\r\n\r\na\nb\n\nc\r\r\n\nGET / HTTP/1.1\r\n" + host + "\r\n"},
		{"Content-Length: 0", "POST / HTTP/1.1\r\n" + host + "content-length: 0\r\n\r\nGET / HTTP/1.1\r\n" + host + "\r\n"},
		{"chunked", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhe\nlo\r\nA\r\n0123456789\r\n0\r\n\r\nGET / HTTP/1.1\r\n" + host + "\r\n"},
		{"chunked, coding name in any case", "POST / HTTP/1.1\r\n" + host + "transfer-encoding:  Chunked \r\n\r\n1\r\nx\r\n0\r\n\r\n"},
		{"chunk sizes with leading zeros and upper-case hex", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n000B\r\n0123456789a\r\n000\r\n\r\n"},
		{"chunk extensions", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n1;a=b;c=\"d e\"\r\nx\r\n0;z\r\n\r\n"},
		{"declared trailers, names in any case", "POST / HTTP/1.1\r\n" + host + "Trailer: X-Sum, x-other\r\nTrailer: X-Third\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nx-sum: 1\r\nX-Other:\r\nX-THIRD: a\tb\r\n\r\nGET / HTTP/1.1\r\n" + host + "\r\n"},
		{"after Upgrade, anything", "GET /ws HTTP/1.1\r\n" + host + "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello\n\n\r\x00"},
		{"after CONNECT, anything", "CONNECT a:443 HTTP/1.1\r\n" + host + "\r\n\x16\x03\x01\n\n"},
		{"ambiguous framing: not followed (the screen refuses it)", "POST / HTTP/1.1\r\n" + host + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nzz\n\n"},
		{"obs-text and long lines elsewhere", "GET / HTTP/1.1\r\n" + host + "X-A: \xe4\xf6" + strings.Repeat("v", 5000) + "\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, split := range []int{len(tt.give), 1, 2, 3, 7} {
				if n, err := scanIn(tt.give, split); err != nil {
					t.Fatalf("reads of %d: refused at %d (%q): %v", split, n, tt.give[n:], err)
				}
			}
		})
	}
}

// A stream with an offending byte is refused at that byte, however the
// reads split it.
func TestScannerRefusesAtTheOffendingByte(t *testing.T) {
	const te = "Transfer-Encoding: chunked\r\n"
	next := "GET / HTTP/1.1\r\n" + host + "\r\n"
	tests := []struct {
		name, good, bad, reason string // good is delivered; bad starts at the offending byte
	}{
		{"head ended by LF LF", "GET / HTTP/1.1", "\nHost: a\n\n", "bare LF"},
		{"field line ended by a bare LF", "GET / HTTP/1.1\r\nHost: a", "\nX: 1\r\n\r\n", "bare LF"},
		{"empty line of the head is a bare LF", "GET / HTTP/1.1\r\nHost: a\r\n", "\n", "bare LF"},
		{"bare LF before the request line", "", "\nGET / HTTP/1.1\r\n\r\n", "bare LF"},
		{"CR inside a field line", "GET / HTTP/1.1\r\nX-A: a\r", "b\r\n\r\n", "CR not followed by LF"},
		{"CR CR LF", "GET / HTTP/1.1\r\nX-A: a\r", "\r\n\r\n", "CR not followed by LF"},
		{"second head of a pipeline", next + "GET / HTTP/1.1\r\nHost: a\r\n", "\n", "bare LF"},
		{"after a body", "POST / HTTP/1.1\r\n" + host + "Content-Length: 2\r\n\r\n\n\nGET / HTTP/1.1", "\n\n", "bare LF"},
		{"chunk data followed by a bare LF", "POST / HTTP/1.1\r\n" + host + te + "\r\n2\r\nxx", "\n0\r\n\r\n", "chunk data not followed by CRLF"},
		{"chunk data followed by CR and not LF", "POST / HTTP/1.1\r\n" + host + te + "\r\n2\r\nxx\r", "x0\r\n\r\n", "chunk data not followed by CRLF"},
		{"chunk longer than its size", "POST / HTTP/1.1\r\n" + host + te + "\r\n2\r\nxx", "yy\r\n0\r\n\r\n", "chunk data not followed by CRLF"},
		{"chunk size not hex", "POST / HTTP/1.1\r\n" + host + te + "\r\n", "zz\r\nxx\r\n0\r\n\r\n", "not hex"},
		{"chunk size with a sign", "POST / HTTP/1.1\r\n" + host + te + "\r\n", "+2\r\nxx\r\n0\r\n\r\n", "not hex"},
		{"empty chunk size", "POST / HTTP/1.1\r\n" + host + te + "\r\n", "\r\n\r\n", "not hex"},
		{"chunk size then a bare LF", "POST / HTTP/1.1\r\n" + host + te + "\r\n2", "\nxx\r\n0\r\n\r\n", "not hex"},
		{"chunk size too large", "POST / HTTP/1.1\r\n" + host + te + "\r\n" + "fffffffffffffff", "f\r\n", "too large"},
		{"bare LF in a chunk extension", "POST / HTTP/1.1\r\n" + host + te + "\r\n2;a", "\nxx\r\n0\r\n\r\n", "control character"},
		{"control character in a chunk extension", "POST / HTTP/1.1\r\n" + host + te + "\r\n2;a", "\x01\r\nxx\r\n0\r\n\r\n", "control character"},
		{"chunk-size line CR not followed by LF", "POST / HTTP/1.1\r\n" + host + te + "\r\n2\r", "xx\r\n0\r\n\r\n", "not ended by CRLF"},
		{"undeclared trailer", "POST / HTTP/1.1\r\n" + host + te + "\r\n2\r\nxx\r\n0\r\nX-T: 1", "\r\n\r\n", "not declared"},
		{"trailer not among the declared", "POST / HTTP/1.1\r\n" + host + "Trailer: X-A\r\n" + te + "\r\n0\r\nX-B: 1", "\r\n\r\n", "not declared"},
		{"trailer name with a space", "POST / HTTP/1.1\r\n" + host + "Trailer: X-T\r\n" + te + "\r\n0\r\nX T: 1", "\r\n\r\n", "not a token"},
		{"trailer name with a space before the colon", "POST / HTTP/1.1\r\n" + host + "Trailer: X-T\r\n" + te + "\r\n0\r\nX-T : 1", "\r\n\r\n", "not a token"},
		{"trailer without a colon", "POST / HTTP/1.1\r\n" + host + "Trailer: X-T\r\n" + te + "\r\n0\r\nX-T", "\r\n\r\n", "without a name"},
		{"trailer with an empty name", "POST / HTTP/1.1\r\n" + host + "Trailer: X-T\r\n" + te + "\r\n0\r\n: 1", "\r\n\r\n", "without a name"},
		{"trailer obs-fold", "POST / HTTP/1.1\r\n" + host + "Trailer: X-T\r\n" + te + "\r\n0\r\nX-T: 1\r\n 2", "\r\n\r\n", "obs-fold"},
		{"trailer ended by a bare LF", "POST / HTTP/1.1\r\n" + host + "Trailer: X-T\r\n" + te + "\r\n0\r\nX-T: 1", "\n\r\n", "bare LF"},
		{"trailer section ended by a bare LF", "POST / HTTP/1.1\r\n" + host + "Trailer: X-T\r\n" + te + "\r\n0\r\nX-T: 1\r\n", "\n", "bare LF"},
		{"control character in a trailer value", "POST / HTTP/1.1\r\n" + host + "Trailer: X-T\r\n" + te + "\r\n0\r\nX-T: a", "\x00b\r\n\r\n", "control character"},
		{"Trailer field over 1 KiB", "POST / HTTP/1.1\r\n" + host + "Trailer: " + strings.Repeat("X-T,", 300), "\r\n" + te + "\r\n0\r\n\r\n", "longer than 1 KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, split := range []int{len(tt.good) + len(tt.bad), 1, 2, 3, 7} {
				n, err := scanIn(tt.good+tt.bad, split)
				var e *Error
				if !errors.As(err, &e) || !strings.Contains(e.Reason, tt.reason) {
					t.Fatalf("reads of %d: %v, want a refusal for %q", split, err, tt.reason)
				}
				// A line refused at its CRLF: when a read ends between the
				// two, the CR has been delivered already (harmless: the
				// line is still not ended).
				crSent := split < len(tt.good)+len(tt.bad) && strings.HasPrefix(tt.bad, "\r\n") && n == len(tt.good)+1
				if n != len(tt.good) && !crSent {
					t.Fatalf("reads of %d: refused at byte %d, want %d (%q)", split, n, len(tt.good), tt.bad)
				}
			}
		})
	}
}

// scanIn feeds s to a Scanner in reads of split bytes and returns how many
// bytes passed before the error.
func scanIn(s string, split int) (int, error) {
	var sc Scanner
	passed := 0
	for b := []byte(s); len(b) > 0; {
		n := min(split, len(b))
		ok, err := sc.Scan(b[:n])
		passed += ok
		if err != nil {
			if _, again := sc.Scan([]byte("GET / HTTP/1.1\r\n\r\n")); again != err {
				return passed, errors.New("the error is not sticky")
			}
			return passed, err
		}
		b = b[n:]
	}
	return passed, nil
}

// Through a connection: the bytes before the offending one are read, then
// the error, at once; a TLS connection stays one for fasthttp's IsTLS.
func TestConnDeliversThePrefixThenTheError(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	c := Wrap(server)
	defer c.Close()
	go func() { _, _ = io.WriteString(client, "GET / HTTP/1.1\nHost: a\n\n") }()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got bytes.Buffer
	buf := make([]byte, 64)
	var err error
	for err == nil {
		var n int
		n, err = c.Read(buf)
		got.Write(buf[:n])
	}
	var e *Error
	if !errors.As(err, &e) || got.String() != "GET / HTTP/1.1" {
		t.Fatalf("read %q then %v; want the request line, then the refusal", got.String(), err)
	}
	if _, again := c.Read(buf); again != err {
		t.Errorf("a later read returned %v", again)
	}
	if _, ok := Wrap(tlsPipe{server}).(tlsConn); !ok {
		t.Error("a wrapped TLS connection lost ConnectionState and Handshake")
	}
	if _, ok := c.(tlsConn); ok {
		t.Error("a wrapped plain connection claims to be TLS")
	}
}

type tlsPipe struct{ net.Conn }

func (tlsPipe) Handshake() error                     { return nil }
func (tlsPipe) ConnectionState() tls.ConnectionState { return tls.ConnectionState{} }

// BenchmarkScanHead is the cost per request of following a browser-sized
// GET head (the bytes fasthttp parses anyway).
func BenchmarkScanHead(b *testing.B) {
	head := []byte("GET /api/v1/campaigns/cmp_000042?x=1 HTTP/1.1\r\nHost: shop.example\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36\r\n" +
		"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: de-DE,de;q=0.9\r\n" +
		"Accept-Encoding: gzip, deflate\r\nCookie: PHPSESSID=0123456789abcdef0123456789; lang=de\r\nConnection: keep-alive\r\n\r\n")
	var s Scanner
	b.SetBytes(int64(len(head)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Scan(head); err != nil {
			b.Fatal(err)
		}
	}
}
