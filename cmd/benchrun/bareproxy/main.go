// Command bareproxy is a benchmark contender only: the smallest reverse
// proxy fasthttp allows (one HostClient, Do, nothing else), so `make bench`
// can show what Strangler costs above the library it is built on. It has no
// header hygiene, no X-Forwarded-*, no streaming and no timeouts worth the
// name; never put it in front of anything.
//
//	bareproxy -listen 127.0.0.1:0 -upstream 127.0.0.1:8081
//
// It prints "listening on ADDR" once it accepts connections.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"

	"github.com/valyala/fasthttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	upstream := flag.String("upstream", "", "host:port of the upstream")
	flag.Parse()
	if *upstream == "" {
		fmt.Fprintln(os.Stderr, "bareproxy: -upstream is required")
		os.Exit(2)
	}
	hc := &fasthttp.HostClient{Addr: *upstream, MaxConns: 1024}
	handler := func(ctx *fasthttp.RequestCtx) {
		req := &ctx.Request
		req.Header.Del(fasthttp.HeaderConnection) // hop-by-hop; keep the pool alive
		if err := hc.Do(req, &ctx.Response); err != nil {
			ctx.Error("bad gateway", fasthttp.StatusBadGateway)
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bareproxy:", err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	if err := fasthttp.Serve(ln, handler); err != nil {
		fmt.Fprintln(os.Stderr, "bareproxy:", err)
		os.Exit(1)
	}
}
