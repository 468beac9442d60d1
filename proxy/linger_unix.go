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
	// Control, not Read: Read takes the descriptor's read lock, which the
	// server's own goroutine holds while it waits on an idle keep-alive
	// connection, so closing that connection at shutdown would block until
	// the client spoke. MSG_DONTWAIT keeps the peek from ever waiting.
	_ = rc.Control(func(fd uintptr) {
		n, _, _ = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	})
	return n > 0
}
