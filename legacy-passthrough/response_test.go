package legacy

import (
	"strings"
	"testing"
)

func TestResponseFidelity(t *testing.T) {
	tests := []struct {
		name     string
		request  string // method and target; HEAD reads no body
		extra    string // more request fields, CRLF-terminated
		upstream string // raw response
		want     string // what the client receives, head and body
	}{
		{
			name:    "redirect with cookies, odd case, no Date or Server",
			request: "POST /login",
			upstream: "HTTP/1.1 302 Found It\r\n" +
				"Location: /account?from=%2Flogin\r\n" +
				"x-lower: v\r\n" +
				"X-Dup: 1\r\n" +
				"Set-Cookie: PHPSESSID=abc; path=/; HttpOnly\r\n" +
				"X-Dup: 2\r\n" +
				"set-cookie: last_user=bob; expires=Wed, 21 Oct 2037 07:28:00 GMT; Max-Age=0\r\n" +
				"Set-Cookie: weird=a=b;;  SameSite=lax\r\n" +
				"Connection: keep-alive, X-Hop\r\n" +
				"X-Hop: secret\r\n" +
				"Keep-Alive: timeout=75\r\n" +
				"Proxy-Authenticate: Basic\r\n" +
				"Content-Length: 5\r\n" +
				"\r\nhello",
			want: "HTTP/1.1 302 Found It\r\n" +
				"Content-Length: 5\r\n" +
				"Location: /account?from=%2Flogin\r\n" +
				"x-lower: v\r\n" +
				"X-Dup: 1\r\n" +
				"X-Dup: 2\r\n" +
				"Set-Cookie: PHPSESSID=abc; path=/; HttpOnly\r\n" +
				"Set-Cookie: last_user=bob; expires=Wed, 21 Oct 2037 07:28:00 GMT; Max-Age=0\r\n" +
				"Set-Cookie: weird=a=b;;  SameSite=lax\r\n" +
				"\r\nhello",
		},
		{
			name:    "Nginx-like head keeps Date and Server",
			request: "GET /",
			upstream: "HTTP/1.1 200 OK\r\n" +
				"Server: nginx/1.22.1\r\n" +
				"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n" +
				"Content-Type: text/html; charset=UTF-8\r\n" +
				"Transfer-Encoding: chunked\r\n" +
				"Connection: keep-alive\r\n" +
				"Vary: Accept-Encoding\r\n" +
				"\r\n5\r\nhello\r\n0\r\n\r\n",
			want: "HTTP/1.1 200 OK\r\n" +
				"Server: nginx/1.22.1\r\n" +
				"Content-Type: text/html; charset=UTF-8\r\n" +
				"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n" +
				"Vary: Accept-Encoding\r\n" +
				"Transfer-Encoding: chunked\r\n" +
				"\r\nhello",
		},
		{
			name:     "the request's Connection options do not strip the response",
			request:  "GET /opts",
			extra:    "Connection: X-Resp, x-dup\r\n",
			upstream: "HTTP/1.1 200 OK\r\nX-Resp: kept\r\nX-Dup: 1\r\nX-Dup: 2\r\nContent-Length: 0\r\n\r\n",
			want:     "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Resp: kept\r\nX-Dup: 1\r\nX-Dup: 2\r\n\r\n",
		},
		{
			name:     "HEAD keeps the length it announces",
			request:  "HEAD /big",
			upstream: "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\nETag: \"x\"\r\n\r\n",
			want:     "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\nETag: \"x\"\r\n\r\n",
		},
		{
			name:     "304 keeps its length",
			request:  "GET /cached",
			upstream: "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 42\r\n\r\n",
			want:     "HTTP/1.1 304 Not Modified\r\nContent-Length: 42\r\nETag: \"x\"\r\n\r\n",
		},
		{
			name:     "204",
			request:  "DELETE /thing",
			upstream: "HTTP/1.1 204 No Content\r\nX-Deleted: 1\r\n\r\n",
			want:     "HTTP/1.1 204 No Content\r\nX-Deleted: 1\r\n\r\n",
		},
		{
			name:     "until close becomes chunked",
			request:  "GET /stream",
			upstream: "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nboom",
			want:     "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\nboom",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up, got := captureServer(t, tt.upstream)
			fwd, _ := newTestForwarder(t, testConfig(up))
			fr := startFront(t, fwd, nil)
			cl := dial(t, fr.addr)

			method, _, _ := strings.Cut(tt.request, " ")
			head, body := cl.do(t, tt.request+" HTTP/1.1\r\nHost: h\r\n"+tt.extra+"\r\n",
				method == "HEAD" || strings.Contains(tt.want, " 304 ") || strings.Contains(tt.want, " 204 "))
			if err := fr.lastErr(t); err != nil {
				t.Fatalf("Serve: %v", err)
			}
			mustEqualHead(t, "response", head+string(body), tt.want)
			receive(t, got)

			// The connection to the client is still good: a second exchange
			// on it works (no stray body bytes, no early close).
			head, _ = cl.do(t, tt.request+" HTTP/1.1\r\nHost: h\r\n\r\n",
				method == "HEAD" || strings.Contains(tt.want, " 304 ") || strings.Contains(tt.want, " 204 "))
			if status(t, head) != status(t, tt.want) {
				t.Errorf("second exchange: %q", head)
			}
		})
	}
}
