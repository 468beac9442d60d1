package legacy

import (
	"bufio"
	"net/netip"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkRequestHeaders is the upstream copy of a browser's request
// head: order and case kept, hop-by-hop fields and the ones Connection
// names dropped, an untrusted client's X-Forwarded-For replaced, the
// forwarder's X-Forwarded-* added. And the copy of a PHP answer's head
// back, Set-Cookie and all.
func BenchmarkRequestHeaders(b *testing.B) {
	var in fasthttp.RequestHeader
	in.DisableNormalizing()
	raw := "GET /account/orders?page=2 HTTP/1.1\r\nHost: shop.example\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n" +
		"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-GB,en;q=0.9\r\n" +
		"Accept-Encoding: gzip, deflate, br\r\nCookie: PHPSESSID=abcdef0123456789; theme=dark\r\n" +
		"Referer: https://shop.example/account\r\nX-Forwarded-For: 10.0.0.1\r\nConnection: keep-alive, X-Trace\r\n" +
		"X-Trace: 1\r\nX-Request-Id: 0123456789abcdef0123456789abcdef\r\n\r\n"
	if err := in.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		b.Fatal(err)
	}
	p := peer{addr: netip.MustParseAddr("192.0.2.7")}
	b.Run("request", func(b *testing.B) {
		var s scratch
		var out fasthttp.RequestHeader
		b.ReportAllocs()
		for b.Loop() {
			out.Reset()
			out.DisableNormalizing()
			out.DisableSpecialHeader()
			s.copyRequestHeader(&out, &in, p, false, nil, "upstream:80")
			s.reset()
		}
	})

	var src fasthttp.ResponseHeader
	src.DisableNormalizing()
	rawResp := "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Mon, 01 Dec 2026 10:00:00 GMT\r\nContent-Type: text/html; charset=UTF-8\r\n" +
		"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\nX-Powered-By: PHP/8.2\r\n" +
		"Set-Cookie: PHPSESSID=abc; path=/; HttpOnly\r\nSet-Cookie: lang=de; path=/\r\nCache-Control: no-store\r\n\r\n"
	if err := src.Read(bufio.NewReader(strings.NewReader(rawResp))); err != nil {
		b.Fatal(err)
	}
	b.Run("response", func(b *testing.B) {
		var s scratch
		var dst fasthttp.ResponseHeader
		b.ReportAllocs()
		for b.Loop() {
			dst.Reset()
			dst.DisableNormalizing()
			if err := s.copyResponseHeader(&dst, &src, false, 16<<10); err != nil {
				b.Fatal(err)
			}
			s.reset()
		}
	})
}
