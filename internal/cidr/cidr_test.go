package cidr

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseAndContains(t *testing.T) {
	ps, err := Parse("k", []string{"10.1.2.3/8", " 192.0.2.7 ", "::ffff:172.16.0.0/108", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want bool
	}{
		{"10.200.0.1", true},
		{"::ffff:10.0.0.1", true}, // a v4 peer written as v4-mapped
		{"192.0.2.7", true},
		{"192.0.2.8", false},
		{"172.31.255.255", true},
		{"2001:db8:1::1", true},
		{"2001:db9::1", false},
	}
	for _, tt := range tests {
		if got := Contains(ps, netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Contains(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	_, err = Parse("server.proxy_protocol.trusted", []string{"10.0.0.0/33", "ten", "fe80::1%eth0"})
	for _, want := range []string{`server.proxy_protocol.trusted[0]: "10.0.0.0/33" is not a CIDR`, `[1]: "ten"`, `[2]: "fe80::1%eth0"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
}
