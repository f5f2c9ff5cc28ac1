// Package connlimit caps the connections a server holds open at once.
// Unlike golang.org/x/net/netutil.LimitListener, which stops accepting
// (so that new clients wait in the kernel's backlog for as long as the
// connections already held stay open, and a flood of them looks like a dead
// server), a connection beyond the cap is answered at once with a short
// refusal and closed: a client learns in one round trip that it must retry.
package connlimit

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// refusers bounds the goroutines answering refused connections; past it a
// refused connection is closed without an answer.
const refusers = 64

// Listener is a net.Listener holding at most Max accepted connections open.
type Listener struct {
	net.Listener
	max    int64
	refuse []byte // written to a refused connection before closing it; may be nil

	open    atomic.Int64
	refused atomic.Int64
	busy    chan struct{}
}

// New caps ln at max open connections. A connection beyond the cap gets
// refusal (if not nil; e.g. a canned HTTP 503) and is closed.
func New(ln net.Listener, max int, refusal []byte) *Listener {
	return &Listener{Listener: ln, max: int64(max), refuse: refusal, busy: make(chan struct{}, refusers)}
}

// Open returns the number of connections accepted and not yet closed.
func (l *Listener) Open() int64 { return l.open.Load() }

// Refused returns how many connections were refused since the start.
func (l *Listener) Refused() int64 { return l.refused.Load() }

// Accept implements net.Listener.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &conn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.refused.Add(1)
		select {
		case l.busy <- struct{}{}:
			go func() {
				defer func() { <-l.busy }()
				l.refuseConn(c)
			}()
		default:
			c.Close()
		}
	}
}

// refuseConn answers c and closes it. The client may already have sent its
// request: closing a socket with unread data sends a reset, which can destroy
// the answer before the client reads it, so the request is drained briefly
// after the answer is sent.
func (l *Listener) refuseConn(c net.Conn) {
	defer c.Close()
	if l.refuse == nil {
		return
	}
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write(l.refuse); err != nil {
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}
