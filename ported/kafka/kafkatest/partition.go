package kafkatest

import (
	"net"
	"sync"
)

// Partition makes the cluster unreachable the way a network partition
// does, unlike Stop: connections stay open and new ones are accepted, but
// no byte moves either way, so requests just hang until the client's own
// timeouts. Heal lets the held bytes through again.
func (c *Cluster) Partition() { c.gate.shut() }

// Heal ends a Partition.
func (c *Cluster) Heal() { c.gate.open() }

// gate holds the traffic of every connection of a cluster while shut.
type gate struct {
	mu     sync.Mutex
	opened chan struct{} // closed while traffic flows
}

func newGate() *gate {
	g := &gate{opened: make(chan struct{})}
	close(g.opened)
	return g
}

func (g *gate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.opened:
		g.opened = make(chan struct{})
	default:
	}
}

func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.opened:
	default:
		close(g.opened)
	}
}

// wait blocks while the gate is shut.
func (g *gate) wait() {
	g.mu.Lock()
	ch := g.opened
	g.mu.Unlock()
	<-ch
}

func (g *gate) listen(network, address string) (net.Listener, error) {
	l, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	return &gatedListener{Listener: l, g: g}, nil
}

type gatedListener struct {
	net.Listener
	g *gate
}

func (l *gatedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &gatedConn{Conn: c, g: l.g}, nil
}

// gatedConn is the broker's side of a connection: what it reads is held
// until the gate opens, and so is what it writes.
type gatedConn struct {
	net.Conn
	g *gate
}

func (c *gatedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.g.wait()
	return n, err
}

func (c *gatedConn) Write(b []byte) (int, error) {
	c.g.wait()
	return c.Conn.Write(b)
}
