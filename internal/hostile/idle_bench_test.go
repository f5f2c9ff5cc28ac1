package hostile

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

var idleStreams = flag.Int("hostile.idle-streams", 10000, "idle /stream subscribers BenchmarkIdleStreams holds open")

// BenchmarkIdleStreams measures what idle /stream subscribers cost the real
// binary: heap per stream, and single-append latency with them open against
// the same server with none (same run). Idle subscribers filter on a kind
// that is never appended, so they have nothing to send.
//
//	go test -run='^$' -bench=IdleStreams -benchtime=1x ./internal/hostile/
func BenchmarkIdleStreams(b *testing.B) {
	n := *idleStreams
	raiseNoFileB(b, uint64(n+1000))
	for range b.N {
		s := startB(b)
		appendLatency := func(count int) (p50, p99 time.Duration) {
			var d []time.Duration
			for i := range count {
				t0 := time.Now()
				resp, body := s.post(b, "/events", appendBody(i))
				if resp.StatusCode != 201 {
					b.Fatalf("append: %d %s", resp.StatusCode, body)
				}
				d = append(d, time.Since(t0))
			}
			return percentile(d, 0.5), percentile(d, 0.99)
		}
		appendLatency(50) // warm up
		base50, base99 := appendLatency(500)
		heap0 := s.heapBytesB(b)

		conns := make([]net.Conn, 0, n)
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for i := range n {
			c, err := net.Dial("tcp", s.Addr)
			if err != nil {
				b.Fatalf("stream %d: %v", i, err)
			}
			fmt.Fprintf(c, "GET /stream?kind=incident_filed HTTP/1.1\r\nHost: x\r\n\r\n")
			conns = append(conns, c)
			if i%500 == 499 {
				time.Sleep(20 * time.Millisecond)
			}
		}
		// Every stream has its headers and preamble.
		for i, c := range conns {
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || !strings.Contains(line, "200") {
				b.Fatalf("stream %d: %q %v", i, line, err)
			}
			c.SetReadDeadline(time.Time{})
		}
		time.Sleep(time.Second)
		heap1 := s.heapBytesB(b)
		idle50, idle99 := appendLatency(500)
		b.ReportMetric(float64(heap1-heap0)/float64(n), "heap-B/stream")
		b.ReportMetric(float64(base99.Microseconds())/1000, "p99-ms-0-streams")
		b.ReportMetric(float64(idle99.Microseconds())/1000, "p99-ms-idle-streams")
		b.ReportMetric(float64(idle99)/float64(base99), "p99-ratio")
		b.Logf("%d idle streams: heap %+.1f MiB (%.0f B each); append p50 %v → %v, p99 %v → %v (×%.2f)",
			n, float64(heap1-heap0)/(1<<20), float64(heap1-heap0)/float64(n), base50, idle50, base99, idle99, float64(idle99)/float64(base99))
	}
}
