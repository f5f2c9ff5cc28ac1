package client_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/client"
)

// binDir holds the audit-stream binary, built on first use so that tests
// that do not need it do not pay for the build.
var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binError error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "audit-stream-client-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildServer(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binPath = filepath.Join(binDir, "audit-stream")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/audit-stream").CombinedOutput()
		if err != nil {
			binError = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binError != nil {
		t.Fatal(binError)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// server is an audit-stream process.
type server struct {
	cmd  *exec.Cmd
	exit chan error
}

func startServer(t *testing.T, bin, addr, data string) *server {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--addr", addr, "--data", data, "--heartbeat", "200ms", "--sse-retry", "20ms", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, exit: make(chan error, 1)}
	go func() { s.exit <- cmd.Wait() }()
	t.Cleanup(func() { s.cmd.Process.Kill(); <-s.exit })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case err := <-s.exit:
			t.Fatalf("server exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("server did not come up")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *server) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	s.cmd.Process.Signal(sig)
	select {
	case err := <-s.exit:
		if sig == syscall.SIGTERM && err != nil {
			t.Fatalf("graceful stop: %v", err)
		}
		s.exit <- err // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatalf("server ignored %v", sig)
	}
}

// TestTailSurvivesKill runs the real binary and stops it mid-stream, with
// kill -9 and with SIGTERM, restarting it on the same address and data
// while producers keep appending. The tail yields exactly the log.
func TestTailSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	bin := buildServer(t)
	addr, data := freeAddr(t), t.TempDir()
	srv := startServer(t, bin, addr, data)
	c := newClient(t, "http://"+addr)

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
		srv.stop(t, sig)
		srv = startServer(t, bin, addr, data)
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
	srv.stop(t, syscall.SIGTERM)
}
