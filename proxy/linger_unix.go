//go:build unix

package proxy

import (
	"net"
	"syscall"
)

// inputPending reports whether c has received bytes not yet read, without
// blocking and without consuming them.
func inputPending(c *net.TCPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	n := 0
	var b [1]byte
	_ = rc.Read(func(fd uintptr) bool {
		n, _, _ = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // one attempt: never wait for data
	})
	return n > 0
}
