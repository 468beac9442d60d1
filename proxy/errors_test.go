package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/legacy-passthrough"
)

// timeoutErr is a net.Error that timed out, as a dialer or conn returns.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestStatusOf(t *testing.T) {
	tests := []struct {
		name string
		give error
		want int
	}{
		{"nil", nil, 200},
		{"legacy timeout", legacy.ErrUpstreamTimeout, 504},
		{"legacy timeout wrapped", fmt.Errorf("forward GET /x: %w", legacy.ErrUpstreamTimeout), 504},
		{"context deadline", context.DeadlineExceeded, 504},
		{"conn deadline", os.ErrDeadlineExceeded, 504},
		{"fasthttp timeout", fasthttp.ErrTimeout, 504},
		{"fasthttp dial timeout", fasthttp.ErrDialTimeout, 504},
		{"net timeout", &net.OpError{Op: "read", Err: timeoutErr{}}, 504},
		{"legacy unreachable", fmt.Errorf("dial: %w", legacy.ErrUpstreamUnreachable), 502},
		{"legacy bad response", legacy.ErrBadUpstreamResponse, 502},
		// Both sentinels in one chain: the timeout wins.
		{"unreachable and timeout", errors.Join(legacy.ErrUpstreamUnreachable, legacy.ErrUpstreamTimeout), 504},
		{"connection refused", &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, 502},
		{"connection reset", syscall.ECONNRESET, 502},
		{"broken pipe", fmt.Errorf("write: %w", syscall.EPIPE), 502},
		{"upstream closed early", fasthttp.ErrConnectionClosed, 502},
		{"upstream pool full", fasthttp.ErrNoFreeConns, 502},
		{"client gone", context.Canceled, StatusClientClosedRequest},
		{"client gone wrapped", fmt.Errorf("publish: %w", context.Canceled), StatusClientClosedRequest},
		{"status error", &StatusError{Code: 404}, 404},
		{"status error wrapped", fmt.Errorf("lookup: %w", &StatusError{Code: 409, Err: io.EOF}), 409},
		// An explicit choice beats what the cause would map to.
		{"status error over timeout", &StatusError{Code: 503, Err: legacy.ErrUpstreamTimeout}, 503},
		{"status error out of range", &StatusError{Code: 42}, 500},
		{"body too large", fmt.Errorf("read body: %w", fasthttp.ErrBodyTooLarge), 413},
		{"own body limit", errBodyTooLarge, 413},
		{"plain error", errors.New("boom"), 500},
		{"unexpected EOF", io.ErrUnexpectedEOF, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StatusOf(tt.give); got != tt.want {
				t.Errorf("StatusOf(%v) = %d, want %d", tt.give, got, tt.want)
			}
		})
	}
}

func TestStatusErrorMessage(t *testing.T) {
	tests := []struct {
		give *StatusError
		want string
	}{
		{&StatusError{Code: 404}, "status 404"},
		{&StatusError{Code: 409, Err: errors.New("version conflict")}, "status 409: version conflict"},
	}
	for _, tt := range tests {
		if got := tt.give.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}
