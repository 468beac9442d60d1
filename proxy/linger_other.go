//go:build !unix

package proxy

import "net"

// inputPending cannot peek here; closing without lingering is the fallback.
func inputPending(*net.TCPConn) bool { return false }
