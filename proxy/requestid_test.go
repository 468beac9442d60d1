package proxy

import (
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestValidRequestID(t *testing.T) {
	tests := []struct {
		give string
		want bool
	}{
		{"", false},
		{"a", true},
		{"0f8fad5b-d9cb-469f-a165-70867728950e", true},
		{"lb:edge-1:42.7_x", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"has space", false},
		{"semi;colon", false},
		{"new\nline", false},
		{"quote\"", false},
		{"slash/es", false},
		{"ümlaut", false},
		{"tab\t", false},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			if got := validRequestID([]byte(tt.give)); got != tt.want {
				t.Errorf("validRequestID(%q) = %v, want %v", tt.give, got, tt.want)
			}
		})
	}
}

func TestAssignRequestID(t *testing.T) {
	generatedID := regexp.MustCompile(`^[0-9a-f]{32}$`)
	tests := []struct {
		name    string
		give    []string // header name, value pairs as the client sent them
		keep    string   // the id that must survive; "" means a fresh one
		wantKey string   // the one X-Request-Id spelling left in the request
	}{
		{"none", nil, "", "X-Request-Id"},
		{"sane kept", []string{"X-Request-Id", "abc-123"}, "abc-123", "X-Request-Id"},
		{"other case kept as sent", []string{"x-request-id", "abc-123"}, "abc-123", "x-request-id"},
		{"empty replaced", []string{"X-Request-Id", ""}, "", "X-Request-Id"},
		{"bad chars replaced", []string{"X-Request-Id", "<script>"}, "", "X-Request-Id"},
		{"too long replaced", []string{"X-Request-Id", strings.Repeat("a", 129)}, "", "X-Request-Id"},
		{"duplicate replaced", []string{"X-Request-Id", "a", "x-request-id", "b"}, "", "X-Request-Id"},
	}
	ids := newIDSource()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h fasthttp.RequestHeader
			h.DisableNormalizing()
			raw := "GET / HTTP/1.1\r\nHost: a\r\n"
			for i := 0; i+1 < len(tt.give); i += 2 {
				raw += tt.give[i] + ": " + tt.give[i+1] + "\r\n"
			}
			if err := h.Read(bufioReader(raw + "\r\n")); err != nil {
				t.Fatal(err)
			}
			got := string(ids.assign(&h, nil))
			if tt.keep != "" && got != tt.keep {
				t.Errorf("id %q, want the client's %q", got, tt.keep)
			}
			if tt.keep == "" && !generatedID.MatchString(got) {
				t.Errorf("id %q, want 32 hex characters", got)
			}
			var seen []string
			for k, v := range h.All() {
				if isRequestIDHeader(k) {
					seen = append(seen, string(k)+": "+string(v))
				}
			}
			if want := tt.wantKey + ": " + got; len(seen) != 1 || seen[0] != want {
				t.Errorf("request carries %q, want exactly [%q]", seen, want)
			}
		})
	}
}

func TestGeneratedIDsAreUnique(t *testing.T) {
	ids := newIDSource()
	const workers, each = 8, 2000
	var (
		mu   sync.Mutex
		seen = make(map[string]bool, workers*each)
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			local := make([]string, 0, each)
			for range each {
				local = append(local, string(ids.next(nil)))
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range local {
				if seen[id] {
					t.Errorf("duplicate id %s", id)
				}
				seen[id] = true
			}
		})
	}
	wg.Wait()
}

func BenchmarkNextRequestID(b *testing.B) {
	ids := newIDSource()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var buf [maxRequestIDLen]byte
		for pb.Next() {
			_ = ids.next(buf[:0])
		}
	})
}
