package shadowreport

import (
	"fmt"
	"testing"
)

func TestTemplate(t *testing.T) {
	tests := []struct{ give, want string }{
		{"/users/123", "/users/{id}"},
		{"/users/123/orders/9", "/users/{id}/orders/{id}"},
		{"/api/v1/campaigns/cmp_000123", "/api/v1/campaigns/{id}"},
		{"/adv-42/report", "/{id}/report"},
		{"/files/3f2c6a9e-1b7d-4c55-9a0e-2b7f5c1d8e4a", "/files/{uuid}"},
		{"/blobs/5f2b9c0e8a7d6e4f3a2b1c0d", "/blobs/{hex}"},
		{"/reports/2025-03-01", "/reports/{date}"},
		{"/reset/aZ3kP9qL2mN8xV4tR7wY", "/reset/{token}"},
		{"/blog/how-to-port-php-to-go", "/blog/how-to-port-php-to-go"},
		{"/api/v1/ping", "/api/v1/ping"},
		{"/deadbeef0deadbeef", "/{hex}"},
		{"/abcdefabcdefabcdef", "/abcdefabcdefabcdef"}, // hex letters only: a word
		{"/search?q=123", "/search"},
		{"/", "/"},
		{"", "/"},
		{"/a/", "/a/"},
		{"/static/app.css", "/static/app.css"},
		{"/1/2/3/4/5/6/7/8/9/10/11/12/13/14", "/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}/…"},
	}
	for _, tt := range tests {
		if got := string(AppendTemplate(nil, []byte(tt.give))); got != tt.want {
			t.Errorf("AppendTemplate(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestUnmatchedTopK(t *testing.T) {
	u := newUnmatched(4) // 4 per shard, 32 in all
	truth := map[string]uint64{}
	add := func(method, path, tpl string) {
		u.add([]byte(method), []byte(path))
		truth[method+" "+tpl]++
	}
	// Three heavy templates among 2,000 one-off paths.
	for i := range 2000 {
		add("GET", fmt.Sprintf("/users/%d", i), "/users/{id}")
		if i%2 == 0 {
			add("GET", fmt.Sprintf("/orders/%d/items", i), "/orders/{id}/items")
		}
		if i%4 == 0 {
			add("POST", "/login", "/login")
		}
		add("GET", fmt.Sprintf("/page-%c%c%c", 'a'+i%26, 'a'+i/26%26, 'a'+i/676%26), "")
	}
	top, total := u.top(3)
	if total != 2000+1000+500+2000 {
		t.Fatalf("total %d", total)
	}
	want := []string{"GET /users/{id}", "GET /orders/{id}/items", "POST /login"}
	for i, tc := range top {
		if tc.Template != want[i] || tc.Count < truth[want[i]] || tc.Count > truth[want[i]]+tc.Error {
			t.Errorf("top[%d] = %+v, want %s with count %d within its error", i, tc, want[i], truth[want[i]])
		}
	}
	all, _ := u.top(1000)
	if len(all) > 4*unmatchedShards {
		t.Fatalf("%d templates tracked, want at most %d", len(all), 4*unmatchedShards)
	}
}

func BenchmarkUnmatched(b *testing.B) {
	s, _ := newStats(b, newClock(), nil)
	method, path := []byte("GET"), []byte("/api/v1/users/12345/orders/cmp_000042")
	b.ReportAllocs()
	for b.Loop() {
		s.Unmatched(method, path)
	}
}
