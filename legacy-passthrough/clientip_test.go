package legacy

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestClientIP(t *testing.T) {
	cfg := testConfig("127.0.0.1:1")
	cfg.TrustedProxies = []string{"10.0.0.0/8", "2001:db8:ffff::/48"}
	fwd, _ := newTestForwarder(t, cfg)
	tests := []struct {
		name string
		peer string
		xff  []string // X-Forwarded-For lines, in order
		want string
	}{
		{"untrusted peer: its own address, whatever it claims", "203.0.113.9", []string{"198.51.100.1"}, "203.0.113.9"},
		{"trusted peer without a chain", "10.0.0.5", nil, "10.0.0.5"},
		{"behind one load balancer", "10.0.0.5", []string{"198.51.100.1"}, "198.51.100.1"},
		{"the rightmost untrusted hop: left of it the client wrote", "10.0.0.5", []string{"192.0.2.66, 198.51.100.1, 10.1.2.3"}, "198.51.100.1"},
		{"several lines are one list", "10.0.0.5", []string{"192.0.2.66", "198.51.100.1, 10.1.2.3"}, "198.51.100.1"},
		{"every hop trusted: the leftmost", "10.0.0.5", []string{"10.9.9.9, 10.1.2.3"}, "10.9.9.9"},
		{"a hop that is no address ends the chain", "10.0.0.5", []string{"198.51.100.1, unknown, 10.1.2.3"}, "10.1.2.3"},
		{"ports and brackets", "10.0.0.5", []string{"[2001:db8::7]:443, 198.51.100.1:5555"}, "198.51.100.1"},
		{"IPv6 hops", "2001:db8:ffff::1", []string{"2001:db8::7"}, "2001:db8::7"},
		{"empty elements are passed over", "10.0.0.5", []string{"198.51.100.1,, "}, "198.51.100.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req fasthttp.Request
			req.SetRequestURI("http://shop.example/")
			for _, v := range tt.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			var ctx fasthttp.RequestCtx
			ctx.Init(&req, &net.TCPAddr{IP: net.ParseIP(tt.peer), Port: 40000}, nil)
			if got := fwd.ClientIP(&ctx); !got.Equal(net.ParseIP(tt.want)) {
				t.Errorf("ClientIP = %v, want %s", got, tt.want)
			}
		})
	}
}
