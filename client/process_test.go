package client_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/e2e"

	"github.com/audit-stream/audit-stream/client"
)

// startServer runs the real binary on data at addr ("" for a free port),
// with short heartbeats and retry hints so reconnects are quick.
func startServer(t *testing.T, addr, data string) *e2e.Process {
	t.Helper()
	return e2e.Start(t, data, addr, "--heartbeat", "200ms", "--sse-retry", "20ms")
}

// stopServer ends the server with sig; SIGTERM must end it cleanly.
func stopServer(t *testing.T, p *e2e.Process, sig syscall.Signal) {
	t.Helper()
	if sig == syscall.SIGKILL {
		p.Kill()
		return
	}
	if code := p.Terminate(t); code != 0 {
		t.Fatalf("graceful stop: exit status %d\n%s", code, p.Log())
	}
}

// TestTailSurvivesKill runs the real binary and stops it mid-stream, with
// kill -9 and with SIGTERM, restarting it on the same address and data
// while producers keep appending. The tail yields exactly the log.
func TestTailSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	data := t.TempDir()
	srv := startServer(t, "", data)
	addr := srv.Addr // restarts come back on the same address
	c := newClient(t, srv.URL)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	zero := int64(0)
	col := startTail(t, ctx, c, fastRetry(client.TailOptions{After: &zero, IdleTimeout: 2 * time.Second}))
	var acked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { producer(c, stop, &acked) })
	}
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM, syscall.SIGKILL} {
		for n := acked.Load(); acked.Load() < n+100; {
			time.Sleep(5 * time.Millisecond)
		}
		stopServer(t, srv, sig)
		srv = startServer(t, addr, data)
	}
	for n := acked.Load(); acked.Load() < n+100; {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	st, err := c.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Count < acked.Load() {
		t.Fatalf("log has %d events, %d appends were acknowledged", st.Count, acked.Load())
	}
	if got := col.waitFor(t, int(st.Count)); !slices.Equal(got, seq(1, st.Count)) {
		t.Fatalf("tail yielded %d events, not exactly 1..%d", len(got), st.Count)
	}
	rep, err := c.Verify(context.Background())
	if err != nil || !rep.Valid || rep.Checked != st.Count {
		t.Fatalf("verify %+v, %v", rep, err)
	}
	col.mu.Lock()
	t.Logf("%d events (%d acknowledged), %d reconnects", st.Count, acked.Load(), len(col.retries))
	col.mu.Unlock()
	cancel()
	<-col.done
	stopServer(t, srv, syscall.SIGTERM)
}
