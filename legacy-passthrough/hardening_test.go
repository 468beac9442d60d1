package legacy

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestRequestTarget(t *testing.T) {
	tests := []struct {
		give, target, authority string
		absolute                bool
	}{
		{give: "/a//b/../c?x=%2F", target: "/a//b/../c?x=%2F"},
		{give: "/", target: "/"},
		{give: "/p?", target: "/p?"},
		{give: "http://h/p?q", target: "/p?q", authority: "h", absolute: true},
		{give: "HTTPS://Shop.Example:8443/p", target: "/p", authority: "Shop.Example:8443", absolute: true},
		{give: "http://h", target: "/", authority: "h", absolute: true},
		{give: "http://h?q=1", target: "/?q=1", authority: "h", absolute: true},
		{give: "http://user:pw@h/p", target: "/p", authority: "h", absolute: true},
		{give: "http://[::1]:80/x", target: "/x", authority: "[::1]:80", absolute: true},
		{give: "ftp://h/p", target: "ftp://h/p"},
	}
	for _, tt := range tests {
		target, authority := requestTarget([]byte(tt.give))
		if string(target) != tt.target || string(authority) != tt.authority || (authority != nil) != tt.absolute {
			t.Errorf("requestTarget(%q) = %q, %q; want %q, %q", tt.give, target, authority, tt.target, tt.authority)
		}
	}
}

// TestForwardingFieldsOnlyFromTrustedProxies: every field that tells PHP
// who the client is, or what it asked for before some proxy, is dropped
// from an untrusted peer, in any case and with '_' for '-', and passed from
// a trusted one (except underscore spellings, which Nginx would merge into
// the real field's variable).
func TestForwardingFieldsOnlyFromTrustedProxies(t *testing.T) {
	spoofs := []string{
		"Forwarded: for=192.0.2.1;proto=https",
		"X-Forwarded-Port: 443",
		"X-Forwarded-Prefix: /admin",
		"X-Forwarded-Server: evil",
		"X-Forwarded-Ssl: on",
		"X-Forwarded-Scheme: https",
		"X-Url-Scheme: https",
		"Front-End-Https: on",
		"X-Real-IP: 192.0.2.2",
		"x-client-ip: 192.0.2.3",
		"Client-IP: 192.0.2.4",
		"True-Client-IP: 192.0.2.5",
		"X-Cluster-Client-IP: 192.0.2.6",
		"CF-Connecting-IP: 192.0.2.11",
		"Fastly-Client-IP: 192.0.2.12",
		"X-Original-URL: /admin",
		"X-Rewrite-URL: /admin",
		"X-Original-Host: evil.example",
		"X-Forwarded-Proto: https",
		"X-Forwarded-Host: evil.example",
		"X-Forwarded-For: 192.0.2.7",
		"x-forwarded-for: 192.0.2.8",
	}
	underscored := []string{"X_Forwarded_For: 192.0.2.9", "client_ip: 192.0.2.10", "X_Original_URL: /admin"}
	tests := []struct {
		name    string
		trusted []string
		want    []string
	}{
		{
			name: "untrusted peer",
			want: []string{
				"GET /p HTTP/1.1", "Host: h", "X-Keep: 1",
				"X-Forwarded-For: 127.0.0.1", "X-Forwarded-Proto: http", "X-Forwarded-Host: h",
			},
		},
		{
			name:    "trusted peer",
			trusted: []string{"127.0.0.0/8"},
			want: append(append([]string{"GET /p HTTP/1.1", "Host: h"}, spoofs[:len(spoofs)-2]...),
				"X-Keep: 1", "X-Forwarded-For: 192.0.2.7, 192.0.2.8, 127.0.0.1"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up, got := captureServer(t, okResponse)
			cfg := testConfig(up)
			cfg.TrustedProxies = tt.trusted
			fwd, _ := newTestForwarder(t, cfg)
			fr := startFront(t, fwd, nil)
			fields := append(append(append([]string{"Host: h"}, spoofs...), underscored...), "X-Keep: 1")
			if head, _ := dial(t, fr.addr).do(t, "GET /p HTTP/1.1\r\n"+lines(fields...), false); status(t, head) != 200 {
				t.Fatalf("got %q", head)
			}
			mustEqualHead(t, "upstream head", string(receive(t, got).head), lines(tt.want...))
		})
	}
}

// TestAbortedExchangesLeaveNoPooledConnection: an exchange that timed out
// waiting for the head, or whose body the client abandoned, does not leave
// its connection in the pool for the next request.
func TestAbortedExchangesLeaveNoPooledConnection(t *testing.T) {
	upClosed := make(chan struct{}, 2)
	up := rawServer(t, func(c net.Conn) {
		defer func() { upClosed <- struct{}{} }()
		serveUntil(c, func(head []byte) bool { return strings.HasPrefix(string(head), "GET /hang") })
		_, _ = io.Copy(io.Discard, c) // until the proxy closes it
	})
	cfg := testConfig(up)
	cfg.Timeout = 300 * time.Millisecond
	cfg.IdleConnTimeout = 10 * time.Second
	fwd, _ := newTestForwarder(t, cfg)
	fr := startFront(t, fwd, nil)
	cl := dial(t, fr.addr)
	if head, _ := cl.do(t, "GET /ok HTTP/1.1\r\nHost: h\r\n\r\n", false); status(t, head) != 200 {
		t.Fatalf("first: %q", head)
	}
	if head, _ := cl.do(t, "GET /hang HTTP/1.1\r\nHost: h\r\n\r\n", false); status(t, head) != 504 {
		t.Fatalf("hang: %q", head)
	}
	select {
	case <-upClosed:
	case <-time.After(ioTimeout):
		t.Fatal("the timed-out connection was kept")
	}
	waitFor(t, "no upstream connection left", func() bool { return fwd.clients[0].ConnsCount() == 0 })
}
