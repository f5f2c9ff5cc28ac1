package connlimit_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/connlimit"
)

const refusal = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

func listen(t *testing.T, max int) *connlimit.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := connlimit.New(ln, max, []byte(refusal))
	t.Cleanup(func() { l.Close() })
	return l
}

// Beyond the cap a connection is answered at once, not queued; closing one
// that is held makes room again.
func TestRefusesBeyondCapAndFreesOnClose(t *testing.T) {
	l := listen(t, 2)
	held := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held <- c
		}
	}()
	var clients []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	a, b := <-held, <-held

	start := time.Now()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("third connection: %v", err)
	}
	if resp.StatusCode != 503 {
		t.Fatalf("third connection: status %d, want 503", resp.StatusCode)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("refusal took %v", d)
	}
	if got := l.Refused(); got != 1 {
		t.Fatalf("Refused = %d, want 1", got)
	}
	if got := l.Open(); got != 2 {
		t.Fatalf("Open = %d, want 2", got)
	}

	a.Close()
	a.Close() // closing twice frees one slot only
	d, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	select {
	case c := <-held:
		defer c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("a connection after one was closed was not accepted")
	}
	if got := l.Open(); got != 2 {
		t.Fatalf("Open = %d, want 2", got)
	}
	b.Close()
	_ = clients
}

func TestRefusalWithoutAnswerCloses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := connlimit.New(ln, 0, nil)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("read: %v", err)
	}
	if len(b) != 0 {
		t.Fatalf("got %q, want nothing", b)
	}
}
