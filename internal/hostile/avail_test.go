package hostile

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/e2e"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

// Item 1. Connections that send their headers and then trickle the body a
// byte at a time used to be held forever; a couple of thousand took /healthz
// and appends offline. Now the body must arrive within --body-timeout (408
// after), and the server keeps answering meanwhile.
func TestSlowBodies(t *testing.T) {
	// Not parallel: it measures latency, which the other attacks disturb.
	conns := 2000
	if raceEnabled {
		conns = 300
	}
	raiseNoFile(t, uint64(conns+500))
	s := start(t, "--body-timeout", "3s")
	control := start(t) // a server nobody attacks: see finish

	// Each attacker sends headers and trickles its body a byte a second;
	// once cut off it connects again, as a real one would, so the server
	// faces 2,000 slow bodies for the whole measurement.
	var answered408, other, active atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	attack := func(i int) {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := net.Dial("tcp", s.Addr)
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			active.Add(1)
			fmt.Fprintf(c, "POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{")
			answer := make(chan string, 1)
			go func() {
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					answer <- "cut"
					return
				}
				resp.Body.Close()
				answer <- resp.Status
			}()
			tick := time.NewTicker(time.Second + time.Duration(i%100)*time.Millisecond)
		trickle:
			for {
				select {
				case a := <-answer:
					if strings.HasPrefix(a, "408") {
						answered408.Add(1)
					} else {
						other.Add(1)
					}
					break trickle
				case <-tick.C:
					c.Write([]byte(" "))
				case <-stop:
					break trickle
				}
			}
			tick.Stop()
			c.Close()
			active.Add(-1)
			// Reconnect after a pause of up to a second: two thousand
			// connections at the same instant would be a SYN flood,
			// which is another attack (the kernel's, not ours, to fend
			// off).
			time.Sleep(time.Duration(i%1000) * time.Millisecond)
		}
	}
	begun := time.Now()
	for i := range conns {
		wg.Add(1)
		go attack(i)
		if i%200 == 199 {
			time.Sleep(100 * time.Millisecond) // no SYN flood: that is not this attack
		}
	}
	for active.Load() < int64(conns*9/10) && time.Since(begun) < 20*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d slow connections open after %v", active.Load(), time.Since(begun).Round(time.Millisecond))
	p, pc := startProbe(s), startProbe(control)
	// The target is p99 < 200 ms, which a quiet machine meets; on a
	// loaded, shared one the test holds the median to it and the tail only
	// to "never stalled".
	p.finish(t, 5*time.Second, 200*time.Millisecond, pc)
	close(stop)
	wg.Wait()

	t.Logf("slow bodies answered 408: %d, otherwise ended: %d, in %v", answered408.Load(), other.Load(), time.Since(begun).Round(time.Millisecond))
	// Held forever before: every attacker must have been cut off at
	// least once by the 3 s body timeout.
	if got := answered408.Load(); got < int64(conns) {
		t.Errorf("only %d slow bodies were answered 408, want at least %d", got, conns)
	}
}

// Item 1. A request that needs a token and has none is refused before its
// body is read: the 401 comes at once even if the body never does.
func TestUnauthenticatedRefusedBeforeBody(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.json")
	if err := os.WriteFile(tokens, []byte(`{"tokens":[{"id":"p","roles":["producer"],"sources":["hostile"],"token":"hostile-producer-secret-0123456789"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startIn(t, filepath.Join(dir, "data"), "--tokens-file", tokens)
	for _, path := range []string{"/events", "/events/batch"} {
		start := time.Now()
		// Headers only: the promised body never comes.
		resp, b, err := rawRequest(t, s.Addr, "POST "+path+" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n", 5*time.Second)
		if err != nil {
			t.Fatalf("POST %s without a token and without its body: %v (want an immediate 401)", path, err)
		}
		if resp.StatusCode != http.StatusUnauthorized || time.Since(start) > 2*time.Second {
			t.Fatalf("POST %s: %d after %v (%s), want 401 at once", path, resp.StatusCode, time.Since(start), b)
		}
	}
	// The token still works.
	resp, b := s.post(t, "/events", appendBody(1), "Authorization", "Bearer hostile-producer-secret-0123456789")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("append with the token: %d %s", resp.StatusCode, b)
	}
}

// Item 1. Past --max-conns a new connection is refused at once with a 503
// (not queued behind the held ones), and a slot frees when a holder leaves.
func TestMaxConnsRefusesFast(t *testing.T) {
	t.Parallel()
	const max = 50
	s := start(t, "--max-conns", fmt.Sprint(max))
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range max {
		c, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// The server accepts asynchronously; wait until the cap is reached.
	var resp *http.Response
	var b []byte
	var err error
	for range 50 {
		start := time.Now()
		resp, b, err = rawRequest(t, s.Addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 5*time.Second)
		if err != nil {
			t.Fatalf("connection beyond the cap: %v (want an immediate 503)", err)
		}
		if resp.StatusCode == http.StatusServiceUnavailable {
			if d := time.Since(start); d > time.Second {
				t.Errorf("refusal took %v", d)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(problemDetail(b), "--max-conns") {
		t.Fatalf("beyond the cap: %d %v %s; want 503 with Retry-After naming --max-conns", resp.StatusCode, resp.Header, b)
	}
	// One holder leaves: the next client gets in.
	held[0].Close()
	held = held[1:]
	for i := 0; ; i++ {
		resp, _, err := rawRequest(t, s.Addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 5*time.Second)
		if err == nil && resp.StatusCode == http.StatusOK {
			break
		}
		if i == 100 {
			t.Fatalf("no slot freed after a holder left: %v %v", resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Item 6. A malformed chunked body, or a client that hangs up half-way
// through its body, is the client's fault: a 400 (when anyone is left to
// read it), nothing written, and nothing logged at ERROR.
func TestBrokenBodiesAre4xx(t *testing.T) {
	t.Parallel()
	s := start(t)
	cases := []struct {
		name, raw string
		want      int // 0: the client is gone, no answer expected
	}{
		{"malformed chunk size", "POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 400},
		{"chunk longer than said", "POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}xx\r\n0\r\n\r\n", 400},
		{"malformed chunk in a batch", "POST /events/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n[\r\nq\r\n", 400},
	}
	for _, tc := range cases {
		resp, b, err := rawRequest(t, s.Addr, tc.raw, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if resp.StatusCode != tc.want || problemDetail(b) == "" {
			t.Errorf("%s: %d %s, want %d with a detail", tc.name, resp.StatusCode, b, tc.want)
		}
	}
	// Hang up mid-body, with a Content-Length and chunked.
	for _, raw := range []string{
		"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"kind\":",
		"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n{\"kind\":",
	} {
		c, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, raw)
		c.(*net.TCPConn).CloseWrite() // the client is done sending: the body ends early
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("hang-up mid-body: %d %s, want 400", resp.StatusCode, b)
			}
		}
		c.Close()
	}
	if h := s.head(t); h != 0 {
		t.Errorf("%d events written by broken requests", h)
	}
	time.Sleep(100 * time.Millisecond) // let the server log
	if errs := logLevels(s.Log())["ERROR"]; len(errs) > 0 {
		t.Errorf("client errors logged at ERROR:\n%s", strings.Join(errs, "\n"))
	}
	var metrics string
	if _, b := s.get(t, "/metrics"); true {
		metrics = string(b)
	}
	if strings.Contains(metrics, `code="500"`) {
		t.Errorf("a client error was counted as a 500:\n%s", grepLines(metrics, `code="500"`))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

var hugeEvents = flag.Int("hostile.huge-events", 300, "events of 1 MiB appended by TestHugeEvents (the issue's figure is 3000)")

// Item 2. The feed's ring held 16,384 events whatever their size: a few
// hundred events of 1 MiB pinned gigabytes. Now it is bounded in bytes
// (--feed-bytes) and every subscriber still gets every event exactly once,
// the large ones read from storage.
func TestHugeEvents(t *testing.T) {
	t.Parallel()
	n := *hugeEvents
	if raceEnabled {
		n = min(n, 40)
	}
	s := start(t, "--body-limit", "2097152", "--feed-bytes", "67108864")
	mem := sampleMemory(t, s.Pid())
	begun := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Two live subscribers from the start; a third joins half-way from
	// the beginning of the log, so it catches up from storage.
	const subs = 3
	got := make([]chan int64, subs)
	for i := range got {
		got[i] = make(chan int64, 1024)
	}
	errs := make(chan error, subs)
	follow := func(i int, after int64) {
		go func() { errs <- tailIDs(ctx, t, s.URL, after, got[i]) }()
	}
	follow(0, 0)
	follow(1, 0)
	pad := strings.Repeat("x", 1<<20)
	var appended atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				resp, b := s.post(t, "/events", `{"kind":"request_denied","source":"hostile","payload":{"pad":"`+pad+`"}}`)
				if resp.StatusCode != 201 {
					t.Errorf("append %d: %d %s", i, resp.StatusCode, b)
					return
				}
				if appended.Add(1) == int64(n/2) {
					follow(2, 0)
				}
			}
		}()
	}
	// Check every subscriber's ids as they come: 1, 2, 3, ... n.
	var checked sync.WaitGroup
	for i := range subs {
		checked.Add(1)
		go func() {
			defer checked.Done()
			want := int64(1)
			for want <= int64(n) {
				select {
				case id := <-got[i]:
					if id != want {
						t.Errorf("subscriber %d: got event %d, want %d (every event exactly once, in order)", i, id, want)
						return
					}
					want++
				case err := <-errs:
					t.Errorf("a subscriber stopped: %v", err)
					return
				case <-ctx.Done():
					t.Errorf("subscriber %d: timed out at event %d of %d", i, want, n)
					return
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d appended after %v", appended.Load(), time.Since(begun).Round(time.Millisecond))
	checked.Wait()
	t.Logf("tailed after %v", time.Since(begun).Round(time.Millisecond))
	peak := mem.finish()
	t.Logf("%d events of 1 MiB, %d subscribers: peak anonymous memory of the server %d MiB", n, subs, peak>>20)
	if peak > 300<<20 && !raceEnabled {
		t.Errorf("server peak anonymous memory %d MiB, want < 300 MiB", peak>>20)
	}
}

// fill appends n events in batches of 1,000.
func (s *server) fill(t *testing.T, n int) {
	t.Helper()
	for done := 0; done < n; {
		k := min(1000, n-done)
		var b strings.Builder
		b.WriteByte('[')
		for i := range k {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(appendBody(done + i))
		}
		b.WriteByte(']')
		resp, body := s.post(t, "/events/batch", b.String())
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("batch: %d %s", resp.StatusCode, body)
		}
		done += k
	}
}

// Item 4. GET /export?until=<huge> scanned empty ranges for as long as the
// client stayed connected. Every range now stops at the head as of the
// request.
func TestUnboundedExport(t *testing.T) {
	t.Parallel()
	s := start(t)
	s.fill(t, 10)
	for _, q := range []string{"until=9223372036854775807", "after=5&until=9223372036854775807", "after=9000000000000000000"} {
		c := &http.Client{Timeout: 10 * time.Second}
		resp, err := c.Get(s.URL + "/export?" + q)
		if err != nil {
			t.Fatalf("export?%s: %v (want the events up to the head, at once)", q, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("export?%s: %d, %v", q, resp.StatusCode, err)
		}
		want := 10
		if strings.HasPrefix(q, "after=5") {
			want = 5
		} else if strings.HasPrefix(q, "after=9") {
			want = 0
		}
		if got := strings.Count(string(b), "\n"); got != want {
			t.Errorf("export?%s: %d events, want %d", q, got, want)
		}
	}
}

// Item 4. Whole-log reads take every core: eight /verify at once left the
// sequencer none. They are bounded by a semaphore (--max-heavy-reads); past
// it a 503 with Retry-After, and appends keep their pace.
func TestConcurrentVerifyBounded(t *testing.T) {
	// Not parallel: it measures latency, which the other attacks disturb.
	s := start(t, "--max-heavy-reads", "2")
	if raceEnabled {
		s.fill(t, 20_000)
	} else {
		s.fill(t, 100_000)
	}
	control := start(t) // a server nobody attacks: see finish
	var ok, refused, other atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: time.Minute}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(s.URL + "/verify")
				if err != nil {
					other.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == 200:
					ok.Add(1)
				case resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "":
					refused.Add(1)
					time.Sleep(50 * time.Millisecond)
				default:
					other.Add(1)
				}
			}
		}()
	}
	p, pc := startProbe(s), startProbe(control)
	p.finish(t, 4*time.Second, 500*time.Millisecond, pc)
	close(stop)
	wg.Wait()
	t.Logf("/verify by 8 clients at once: %d verified, %d refused with 503, %d other", ok.Load(), refused.Load(), other.Load())
	if ok.Load() == 0 || refused.Load() == 0 || other.Load() != 0 {
		t.Errorf("want some verified, some refused with 503 + Retry-After, nothing else")
	}
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory, or skips the
// test when this process may not mount (not root, or no mount namespace).
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs to fill needs root; the disk-full paths are also covered with faultstore in internal/checkpoint and internal/httpapi")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fillDisk writes to a file in dir until the file system is full.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	for _, n := range []int{4096, 512, 1} { // the last scraps
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				break
			}
		}
	}
	return path
}

// Item 5. On a full disk appends get a 503 with Retry-After and a detail
// saying so, reads keep working, the server restarts (it used to exit when
// it could not store a checkpoint at start-up), and once space returns
// appends and checkpoint signing resume by themselves.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	mnt := mountTmpfs(t, 32<<20)
	data := filepath.Join(mnt, "data")
	s := startIn(t, data, "--checkpoint-interval", "100ms")
	for i := range 20 {
		if resp, b := s.post(t, "/events", appendBody(i)); resp.StatusCode != 201 {
			t.Fatalf("append: %d %s", resp.StatusCode, b)
		}
	}
	filler := fillDisk(t, mnt)
	// SQLite reuses the space its write-ahead log already holds, so a few
	// appends may still fit.
	pad := strings.Repeat("x", 16<<10)
	var resp *http.Response
	var b []byte
	for i := 0; ; i++ {
		resp, b = s.post(t, "/events", `{"kind":"request_denied","source":"hostile","payload":{"pad":"`+pad+`"}}`)
		if resp.StatusCode != 201 || i == 5000 {
			break
		}
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(problemDetail(b), "disk is full") {
		t.Fatalf("append on a full disk: %d %v %s; want 503 with Retry-After and a detail saying the disk is full", resp.StatusCode, resp.Header, b)
	}
	head := s.head(t)
	checkReads := func(s *server) {
		t.Helper()
		for _, path := range []string{"/events?limit=5", "/events/1", "/verify", "/stats", "/checkpoint", "/export", "/healthz"} {
			if resp, b := s.get(t, path); resp.StatusCode != 200 {
				t.Errorf("GET %s on a full disk: %d %s", path, resp.StatusCode, b)
			}
		}
	}
	checkReads(s)

	// A restart on the full disk: it must come up and serve reads.
	if code := s.Terminate(t); code != 0 {
		t.Fatalf("exit code %d on SIGTERM:\n%s", code, s.Log())
	}
	s = startIn(t, data, "--checkpoint-interval", "100ms")
	checkReads(s)
	if got := s.head(t); got != head {
		t.Fatalf("head after restart %d, want %d", got, head)
	}
	if resp, b := s.post(t, "/events", appendBody(0)); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("append after a restart on a full disk: %d %s", resp.StatusCode, b)
	}

	// Space returns: appends and checkpoints resume without a restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if resp, b := s.post(t, "/events", appendBody(1)); resp.StatusCode != 201 {
		t.Fatalf("append after space returned: %d %s", resp.StatusCode, b)
	}
	want := s.head(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, b := s.get(t, "/checkpoint")
		lines := strings.Split(string(b), "\n")
		if len(lines) > 1 && lines[1] == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint did not reach %d after space returned:\n%s\nlog:\n%s", want, b, s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if errs := logLevels(s.Log())["ERROR"]; len(errs) > 0 {
		t.Errorf("a full disk logged at ERROR:\n%s", strings.Join(errs, "\n"))
	}
}

// Item 7. With a checkpoint due only in an hour, a shutdown used to wait for
// it. Now the last checkpoint is signed at once and the process exits within
// --shutdown-timeout, every event covered.
func TestShutdownDoesNotWaitForCheckpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startIn(t, dir, "--checkpoint-interval", "1h", "--shutdown-timeout", "3s")
	for i := range 5 {
		if resp, b := s.post(t, "/events", appendBody(i)); resp.StatusCode != 201 {
			t.Fatalf("append: %d %s", resp.StatusCode, b)
		}
	}
	begun := time.Now()
	s.Signal(syscall.SIGTERM)
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("no exit within 10 s of SIGTERM with --shutdown-timeout 3s:\n%s", s.Log())
	}
	took := time.Since(begun)
	t.Logf("exited %v after SIGTERM", took.Round(time.Millisecond))
	if took > 4*time.Second {
		t.Errorf("shutdown took %v, want within --shutdown-timeout (3s)", took)
	}
	if size := storedCheckpointSize(t, dir); size != 5 {
		t.Errorf("stored checkpoint covers %d events, want all 5", size)
	}
}

// Item 7. SIGHUP (a closed terminal, a careless kill -HUP) used to kill the
// server outright; it now shuts down gracefully, exit code 0.
func TestSIGHUPIsGraceful(t *testing.T) {
	t.Parallel()
	s := start(t)
	if resp, b := s.post(t, "/events", appendBody(0)); resp.StatusCode != 201 {
		t.Fatalf("append: %d %s", resp.StatusCode, b)
	}
	s.Signal(syscall.SIGHUP)
	select {
	case <-s.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit within 20 s of SIGHUP:\n%s", s.Log())
	}
	if code := s.ExitCode(); code != 0 || !strings.Contains(s.Log(), "msg=stopped") {
		t.Fatalf("after SIGHUP: exit code %d, want a graceful exit (0, logged 'stopped'):\n%s", code, s.Log())
	}
}

// storedCheckpointSize opens the data directory of a stopped server and
// returns the tree size of its stored checkpoint.
func storedCheckpointSize(t *testing.T, dir string) int64 {
	t.Helper()
	st, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, err := st.Meta(context.Background(), "checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 2 {
		t.Fatalf("stored checkpoint %q", b)
	}
	var n int64
	fmt.Sscan(lines[1], &n)
	return n
}

// Item 8. A crash while the signing key was being created could leave an
// empty key file, and every later start failed on it. Now the key is
// written whole or not at all; an empty file left by an older version is
// replaced. The test kills the binary at random moments of its first start,
// then starts it for real.
func TestKeyCreationCrashSafe(t *testing.T) {
	t.Parallel()
	bin := e2e.Binary(t)
	t.Run("kill -9 during first start", func(t *testing.T) {
		for i := range 12 {
			dir := t.TempDir()
			cmd := exec.Command(bin, "serve", "--data", dir, "--addr", "127.0.0.1:0")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(i) * 3 * time.Millisecond)
			cmd.Process.Kill()
			cmd.Wait()
			s := startIn(t, dir)
			if resp, b := s.get(t, "/checkpoint"); resp.StatusCode != 200 {
				t.Fatalf("start after a kill at %d ms: /checkpoint %d %s", i*3, resp.StatusCode, b)
			}
			s.Kill()
		}
	})
	t.Run("empty key file", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "checkpoint-signing.key"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		s := startIn(t, dir)
		if resp, b := s.get(t, "/checkpoint/key"); resp.StatusCode != 200 {
			t.Fatalf("GET /checkpoint/key: %d %s", resp.StatusCode, b)
		}
	})
}
