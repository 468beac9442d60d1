package legacy

import (
	"bytes"
	"net"
	"net/netip"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/internal/cidr"
)

// ClientIP is the address of the client a request came from, as far as
// trusted_proxies lets the proxy know it: the connection's peer, or, when
// the peer is a trusted proxy, the rightmost address of its
// X-Forwarded-For chain that is not one too. Each trusted hop vouches for
// the address written left of its own; whatever stands left of the first
// untrusted one, that client could have written. A canary or shadow split
// with sticky: ip hashes this, so behind a load balancer it splits
// clients, not the balancer's own addresses.
func (f *Forwarder) ClientIP(ctx *fasthttp.RequestCtx) net.IP {
	p := f.peer(ctx)
	if !p.trusted {
		return ctx.RemoteIP()
	}
	client := p.addr
	lines := ctx.Request.Header.PeekAll(hXForwardedFor)
	for i := len(lines) - 1; i >= 0; i-- {
		for rest := lines[i]; len(rest) > 0; {
			var hop []byte
			if j := bytes.LastIndexByte(rest, ','); j >= 0 {
				rest, hop = rest[:j], rest[j+1:]
			} else {
				rest, hop = nil, rest
			}
			hop = bytes.TrimSpace(hop)
			if len(hop) == 0 {
				continue
			}
			a, ok := hopAddr(hop)
			if !ok {
				// A hop the trusted proxy could not name: nothing left of
				// it can be vouched for.
				return net.IP(client.AsSlice())
			}
			client = a
			if !cidr.Contains(f.trusted, a) {
				return net.IP(client.AsSlice())
			}
		}
	}
	return net.IP(client.AsSlice())
}

// hopAddr reads one X-Forwarded-For element: an address, with a port or
// in brackets as some proxies write it.
func hopAddr(b []byte) (netip.Addr, bool) {
	s := string(b)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}
