package proxy

import (
	"strings"
	"testing"
)

func TestLoopbackListen(t *testing.T) {
	for _, tt := range []struct {
		give string
		want bool
	}{
		{"127.0.0.1:9901", true},
		{"127.8.9.10:1", true},
		{"[::1]:9901", true},
		{"localhost:9901", true},
		{"[::ffff:127.0.0.1]:9901", true},
		{":9901", false},
		{"0.0.0.0:9901", false},
		{"[::]:9901", false},
		{"10.0.0.5:9901", false},
		{"admin.internal:9901", false},
		{"127.0.0.1", false},
	} {
		if got := loopbackListen(tt.give); got != tt.want {
			t.Errorf("loopbackListen(%q) = %v, want %v", tt.give, got, tt.want)
		}
	}
}

func TestAdminExposureNeedsToken(t *testing.T) {
	const token = "0123456789abcdef0123"
	tests := []struct {
		name        string
		admin, tok  string
		wantRefused bool
	}{
		{"default loopback", "", "", false},
		{"v6 loopback", "[::1]:9901", "", false},
		{"all interfaces without token", "0.0.0.0:9901", "", true},
		{"empty host without token", ":9901", "", true},
		{"private address without token", "10.1.2.3:9901", "", true},
		{"all interfaces with token", "0.0.0.0:9901", token, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Config{AdminListen: tt.admin, AdminToken: tt.tok}.WithDefaults().Validate()
			if (err != nil) != tt.wantRefused {
				t.Fatalf("Validate = %v, want refused=%v", err, tt.wantRefused)
			}
			if err != nil && !strings.Contains(err.Error(), "set admin_token") {
				t.Errorf("error %q does not say how to fix it", err)
			}
		})
	}
}
