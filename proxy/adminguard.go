package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Admin listener exposure (the listener itself is proxy/control's Admin).
// The admin listener shows the route table and metrics and takes actions
// (route re-enable, hot-cache refresh), so:
//   - it binds loopback by default (DefaultAdminListen);
//   - bound anywhere else, it must have an admin_token: Config.Validate
//     refuses the config otherwise, so `strangler run` and `strangler check`
//     fail at start instead of serving actions to the network;
//   - every action, that is every request with an unsafe method (RFC 9110
//     §9.2.1) to any admin endpoint, components' included, passes
//     control.Admin's authorize: the bearer token when one is set, else a
//     loopback listener;
//   - the public listener has no admin path at all: the front door only
//     routes to the route table and legacy (e2e TestNoAdminPathOnPublicListener).

// checkAdminExposure is Config.Validate's rule for admin_listen.
func checkAdminExposure(c Config) error {
	if c.AdminToken != "" || loopbackListen(c.AdminListen) {
		return nil
	}
	return fmt.Errorf("admin_listen: %q is not a loopback address, so its actions would be open to the network: "+
		"set admin_token (at least %d random characters), or bind 127.0.0.1 or [::1]", c.AdminListen, minAdminToken)
}

// loopbackListen reports whether addr (host:port) binds loopback only:
// 127.0.0.0/8, ::1 or "localhost". An empty host, 0.0.0.0 and :: bind every
// interface.
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
