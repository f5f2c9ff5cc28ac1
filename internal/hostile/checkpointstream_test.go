package hostile

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// A subscriber that asks for checkpoint frames (/stream?checkpoints=true)
// and never reads must cost the server no more than one that does not ask:
// the frames and their proofs are built per write, the follower goroutine
// ends with the stream, and the write timeout frees the slot as before.
// Mounted twice on one server, without and with checkpoints, over a history
// larger than the socket buffers, while appends go on and checkpoints are
// signed every 50 ms; the peak heap of each run is compared.
func TestCheckpointStreamsNeverRead(t *testing.T) {
	t.Parallel()
	n := 100
	if raceEnabled {
		n = 20
	}
	raiseNoFile(t, uint64(n)+256)
	s := start(t, "--stream-write-timeout", "2s", "--checkpoint-interval", "50ms")
	pad := strings.Repeat("x", 2000)
	for done := 0; done < 6000; done += 500 {
		var b strings.Builder
		b.WriteByte('[')
		for i := range 500 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"kind":"request_denied","source":"hostile","payload":{"i":%d,"pad":%q}}`, done+i, pad)
		}
		b.WriteByte(']')
		if resp, body := s.post(t, "/events/batch", b.String()); resp.StatusCode != 201 {
			t.Fatalf("batch: %d %s", resp.StatusCode, body)
		}
	}
	metric := func(name string) float64 {
		_, b := s.get(t, "/metrics")
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				var f float64
				fmt.Sscan(v, &f)
				return f
			}
		}
		t.Fatalf("no %s in /metrics", name)
		return 0
	}
	goroutines0 := metric("go_goroutines")

	heap0 := s.heapBytes(t)
	attack := func(query string) (peak float64) {
		conns := make([]net.Conn, 0, n)
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for i := range n {
			c, err := net.Dial("tcp", s.Addr)
			if err != nil {
				t.Fatalf("stream %d: %v", i, err)
			}
			c.(*net.TCPConn).SetReadBuffer(4096)
			fmt.Fprintf(c, "GET /stream?%s HTTP/1.1\r\nHost: x\r\n\r\n", query)
			conns = append(conns, c)
		}
		// Appends go on (checkpoints follow them), and the heap is
		// sampled while every stream is stuck in a write.
		end := time.Now().Add(3 * time.Second)
		for i := 0; time.Now().Before(end); i++ {
			if resp, body := s.post(t, "/events", appendBody(i)); resp.StatusCode != 201 {
				t.Fatalf("append during the attack: %d %s", resp.StatusCode, body)
			}
			if i%20 == 0 {
				peak = max(peak, s.heapBytes(t))
			}
		}
		// The write timeout frees every slot, and every goroutine the
		// streams had (the checkpoint followers among them) ends.
		deadline := time.Now().Add(30 * time.Second)
		for metric("audit_stream_streams_open") != 0 || metric("go_goroutines") > goroutines0+10 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v streams open, %v goroutines (%v before), 30 s after the attack", query, metric("audit_stream_streams_open"), metric("go_goroutines"), goroutines0)
			}
			time.Sleep(100 * time.Millisecond)
		}
		return peak
	}
	plain := attack("after=0")
	withCheckpoints := attack("after=0&checkpoints=true")
	// Peaks, not growths: the heap the first run left is not collected
	// on demand, so a growth over it would flatter the second run.
	t.Logf("%d subscribers that never read, 6,000 events of 2 KiB: server heap %.1f MiB before, peak %.1f MiB without checkpoints, %.1f MiB with them",
		n, heap0/(1<<20), plain/(1<<20), withCheckpoints/(1<<20))
	if !raceEnabled && withCheckpoints > 1.5*plain+8<<20 {
		t.Errorf("checkpoint frames raised the peak heap from %.1f to %.1f MiB", plain/(1<<20), withCheckpoints/(1<<20))
	}
}
