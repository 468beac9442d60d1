package proxy

import (
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// fastLogger adapts fasthttp's Printf logger to zap, quietly: a failed
// connection (client reset, timeout mid-request) is routine for a public
// server and goes to Debug; what fasthttp says about the server itself
// (accept errors, concurrency and per-IP limits) goes to Warn.
type fastLogger struct{ log *zap.Logger }

func (l fastLogger) Printf(format string, args ...any) {
	lvl := zapcore.WarnLevel
	if strings.HasPrefix(format, "error when serving connection") {
		lvl = zapcore.DebugLevel
	}
	if ce := l.log.Check(lvl, "fasthttp"); ce != nil {
		ce.Write(zap.String("detail", fmt.Sprintf(format, args...)))
	}
}

// sensitiveHeader reports whether a header's value must never reach a log:
// credentials and sessions.
func sensitiveHeader(name []byte) bool {
	for _, s := range [...]string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie"} {
		if strings.EqualFold(string(name), s) {
			return true
		}
	}
	return false
}

// redactedHeaders returns a request head as "Name: value" lines in wire
// order, with credential and cookie values replaced. It copies, so the
// result may outlive the request (it is only built on rare paths).
func redactedHeaders(h *fasthttp.RequestHeader) []string {
	var out []string
	for k, v := range h.All() {
		if sensitiveHeader(k) {
			v = []byte("[redacted]")
		}
		out = append(out, string(k)+": "+string(v))
	}
	return out
}
