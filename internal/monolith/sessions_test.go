package monolith_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/strangler-proxy/strangler/internal/monolith"
	"github.com/strangler-proxy/strangler/internal/monolith/monolithtest"
)

// TestSessionBackends: the pool keeps its sessions in files, Redis
// (phpredis) or memcached (php-memcached) as asked, login works over each,
// and /account hands no session to a cookie PHP never issued.
func TestSessionBackends(t *testing.T) {
	for _, backend := range []string{monolith.SessionsFiles, monolith.SessionsRedis, monolith.SessionsMemcached} {
		t.Run(backend, func(t *testing.T) {
			m := monolithtest.Start(t, monolith.Options{Workers: 2, Sessions: backend, SerializeHandler: "php_serialize"})
			if m.Sessions != backend || (backend != monolith.SessionsFiles) != (m.SessionServer != nil) {
				t.Fatalf("sessions %q, server %v", m.Sessions, m.SessionServer)
			}
			jar, _ := cookiejar.New(nil)
			c := newClient(t, jar)
			req, _ := http.NewRequest(http.MethodPost, m.URL+"/login", strings.NewReader(url.Values{"user": {"alice"}, "password": {"secret"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if r := do(t, c, req); r.status != 302 {
				t.Fatalf("login: %d", r.status)
			}
			if acc := get(t, c, m.URL+"/account"); acc.status != 200 || !strings.Contains(string(acc.body), `<span id="user">alice</span>`) {
				t.Fatalf("account: %d %s", acc.status, acc.body)
			}
			before := storeSize(t, m)
			for _, forged := range []string{"abcdefghijklmnopqrstuv0123", "bad!!", ""} {
				req, _ := http.NewRequest(http.MethodGet, m.URL+"/account", nil)
				req.Header.Set("Cookie", "PHPSESSID="+forged)
				r := do(t, newClient(t, nil), req)
				if r.status != 302 || r.header.Get("Location") != "/login" || len(r.header.Values("Set-Cookie")) != 0 {
					t.Errorf("forged %q: %d Location %q Set-Cookie %q", forged, r.status, r.header.Get("Location"), r.header.Values("Set-Cookie"))
				}
				if r.header.Get("Cache-Control") != "no-store, no-cache, must-revalidate" {
					t.Errorf("forged %q: Cache-Control %q, want session_start's nocache", forged, r.header.Get("Cache-Control"))
				}
			}
			if after := storeSize(t, m); after != before {
				t.Errorf("forged cookies changed the store: %d sessions before, %d after", before, after)
			}
		})
	}
}

// storeSize counts the sessions in m's store (memcached: its curr_items).
func storeSize(t *testing.T, m *monolith.Monolith) int {
	t.Helper()
	switch m.Sessions {
	case monolith.SessionsFiles:
		ents, err := os.ReadDir(m.SessionSavePath)
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	case monolith.SessionsRedis:
		c := redis.NewClient(&redis.Options{Addr: m.SessionAddr, Protocol: 2, DisableIdentity: true})
		defer c.Close()
		n, err := c.DBSize(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		return int(n)
	}
	return -1 // memcached: no cheap count; the answers above are the check
}
