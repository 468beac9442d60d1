// Package cidr parses the lists of trusted peers the config holds
// (legacy.trusted_proxies, server.proxy_protocol.trusted) and matches peer
// addresses against them.
package cidr

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Parse parses list, CIDRs or single addresses (standing for themselves,
// /32 or /128), naming key in its errors. IPv4-mapped IPv6 forms are
// unmapped, so a v4 peer matches whichever way it is written.
func Parse(key string, list []string) ([]netip.Prefix, error) {
	var (
		out  []netip.Prefix
		errs []error
	)
	for i, s := range list {
		s = strings.TrimSpace(s)
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s[%d]: %q is not a CIDR: write it like 10.0.0.0/8 or fd00::/8", key, i, s))
				continue
			}
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			errs = append(errs, fmt.Errorf("%s[%d]: %q is not an address or CIDR: write it like 192.0.2.7 or 10.0.0.0/8", key, i, s))
			continue
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, errors.Join(errs...)
}

// Contains reports whether a (unmapped first) is in one of ps.
func Contains(ps []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
