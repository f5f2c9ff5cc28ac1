package hostile

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/e2e"
)

// server is a running binary with a client that never reuses a connection
// held by an attack.
type server struct {
	*e2e.Process
	dir    string
	client *http.Client
}

func start(t *testing.T, args ...string) *server {
	t.Helper()
	return startIn(t, t.TempDir(), args...)
}

func startB(b *testing.B, args ...string) *server {
	b.Helper()
	return startIn(b, b.TempDir(), args...)
}

func startIn(t testing.TB, dir string, args ...string) *server {
	t.Helper()
	p := e2e.Start(t, dir, "", args...)
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &server{Process: p, dir: dir, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// raiseNoFile lifts this process's open-file limit to the hard limit, so that
// a test can hold thousands of connections, and skips the test if even that
// is too low.
func raiseNoFileB(b *testing.B, need uint64) { raiseNoFileTB(b, need) }

func raiseNoFile(t *testing.T, need uint64) { raiseNoFileTB(t, need) }

func raiseNoFileTB(t testing.TB, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if lim.Cur < need {
		t.Skipf("open-file limit %d is below the %d this attack needs (raise ulimit -n)", lim.Cur, need)
	}
}

// appendBody is a valid single event.
func appendBody(i int) string {
	return fmt.Sprintf(`{"kind":"request_denied","source":"hostile","payload":{"i":%d}}`, i)
}

// post appends one event and returns the status.
func (s *server) post(t testing.TB, path, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (s *server) get(t testing.TB, path string) (*http.Response, []byte) {
	t.Helper()
	resp, err := s.client.Get(s.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// head returns the server's last event id.
func (s *server) head(t testing.TB) int64 {
	t.Helper()
	resp, b := s.get(t, "/stats")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /stats: %d %s", resp.StatusCode, b)
	}
	var st struct {
		Last int64 `json:"last_event_id"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st.Last
}

// probe is what an operator's monitoring does during an attack: health
// checks and appends, one after another, each on a fresh connection (a
// kept-alive one would dodge connection-level attacks).
type probe struct {
	mu      sync.Mutex
	health  []time.Duration
	appends []time.Duration
	fails   []string
	slow    []string
	stop    chan struct{}
	done    chan struct{}
}

func startProbe(s *server) *probe {
	p := &probe{stop: make(chan struct{}), done: make(chan struct{})}
	// A request unanswered for this long fails: the server stopped
	// answering, however loaded the machine (finish holds the answers to
	// far less where it is not).
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	go func() {
		defer close(p.done)
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			default:
			}
			t0 := time.Now()
			var resp *http.Response
			var err error
			if i%2 == 0 {
				resp, err = c.Get(s.URL + "/healthz")
			} else {
				resp, err = c.Post(s.URL+"/events", "application/json", strings.NewReader(appendBody(i)))
			}
			d := time.Since(t0)
			p.mu.Lock()
			if d > 100*time.Millisecond {
				p.slow = append(p.slow, fmt.Sprintf("%d at %v: %v", i, t0.Format("05.000"), d))
			}
			switch {
			case err != nil:
				p.fails = append(p.fails, err.Error())
			case resp.StatusCode >= 300:
				p.fails = append(p.fails, resp.Status)
			case i%2 == 0:
				p.health = append(p.health, d)
			default:
				p.appends = append(p.appends, d)
			}
			p.mu.Unlock()
			if resp != nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return p
}

// probeAnswers is how many answers of each kind a probe waits for: the
// median of one or two says nothing, and a loaded machine gives fewer in
// the same time.
const probeAnswers = 10

// answered reports whether the probe has probeAnswers answers of each kind.
func (p *probe) answered() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.health) >= probeAnswers && len(p.appends) >= probeAnswers
}

// await lets the probes run for at least d and until each has probeAnswers
// answers of each kind, or for two minutes.
func await(d time.Duration, ps ...*probe) {
	begun := time.Now()
	for time.Since(begun) < 2*time.Minute {
		enough := time.Since(begun) >= d
		for _, p := range ps {
			enough = enough && p.answered()
		}
		if enough {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// finish lets the probe and the control probe run for at least d (and for
// probeAnswers answers of each kind), stops them, and checks that every
// request succeeded, that the median of each kind stayed under typical and
// the 99th percentile under 5 s. (On a shared, loaded test machine a few
// requests wait for a core or a dropped SYN whatever the server does, so
// the tail bound is loose: it catches a server that stops answering, not
// one that is a little slow.) Under -race the probe's client and the
// attackers, in this process, run several times slower, so the bounds are
// 2 s and 10 s whatever typical is.
//
// What the machine gives anyway raises the bounds, measured in the same
// run: they stretch by the load average per CPU (when over 1), and are at
// least 4 times the median (and the 99th percentile) that a control
// server, one nobody attacks, gave its own probe meanwhile.
func (p *probe) finish(t *testing.T, d, typical time.Duration, control *probe) {
	t.Helper()
	stall := 5 * time.Second
	if raceEnabled {
		typical, stall = 2*time.Second, 10*time.Second
	}
	await(d, p, control)
	for _, p := range []*probe{p, control} {
		close(p.stop)
		<-p.done
	}
	// A machine with more work ready than CPUs gives a busy server its
	// share of them: answers take up to that many times longer, whatever
	// the server does.
	load := loadAverage() / float64(runtime.NumCPU())
	slowdown := max(1, load)
	t.Logf("load average per CPU: %.1f", load)
	typical = time.Duration(float64(typical) * slowdown)
	stall = time.Duration(float64(stall) * slowdown)
	if len(p.slow) > 0 {
		t.Logf("slow probes: %v", p.slow)
	}
	if len(p.fails) > 0 {
		t.Errorf("%d probe requests failed during the attack, first: %s", len(p.fails), p.fails[0])
	}
	for _, k := range []struct {
		name    string
		d, ctrl []time.Duration
	}{{"/healthz", p.health, control.health}, {"POST /events", p.appends, control.appends}} {
		if len(k.d) < 3 {
			t.Errorf("%s: only %d answers during the attack", k.name, len(k.d))
			continue
		}
		p50, p99 := percentile(k.d, 0.50), percentile(k.d, 0.99)
		typical, stall := typical, stall
		if len(k.ctrl) > 0 {
			c50, c99 := percentile(k.ctrl, 0.50), percentile(k.ctrl, 0.99)
			typical, stall = max(typical, 4*c50), max(stall, c99)
			t.Logf("%s on the control server meanwhile: %d requests, p50 %v, p99 %v", k.name, len(k.ctrl), c50, c99)
		}
		t.Logf("%s during the attack: %d requests, p50 %v, p99 %v (bounds %v, %v)", k.name, len(k.d), p50, p99, typical, stall)
		if p50 > typical || p99 > stall {
			t.Errorf("%s p50 = %v, p99 = %v; want < %v and < %v", k.name, p50, p99, typical, stall)
		}
	}
}

// loadAverage is the machine's load average over the last minute, 0 where
// it cannot be read.
func loadAverage() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	var l float64
	fmt.Sscan(string(b), &l)
	return l
}

func percentile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*q))]
}

// rawRequest sends raw bytes on a new connection and reads one response.
func rawRequest(t *testing.T, addr string, raw string, wait time.Duration) (*http.Response, []byte, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, raw); err != nil {
		return nil, nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// problemDetail returns the detail of a problem+json body.
func problemDetail(b []byte) string {
	var p struct {
		Detail string `json:"detail"`
	}
	json.Unmarshal(b, &p)
	return p.Detail
}

// logLevels counts the log lines of the server by level.
func logLevels(log string) map[string][]string {
	out := map[string][]string{}
	for _, line := range strings.Split(log, "\n") {
		if i := strings.Index(line, "level="); i >= 0 {
			lv, _, _ := strings.Cut(line[i+len("level="):], " ")
			out[lv] = append(out[lv], line)
		}
	}
	return out
}

func (s *server) heapBytesB(b *testing.B) float64 { return s.heapBytes(b) }

// heapBytes reads the server's Go heap in use from its /metrics.
func (s *server) heapBytes(t testing.TB) float64 {
	t.Helper()
	_, b := s.get(t, "/metrics")
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("go_memstats_heap_inuse_bytes ")); ok {
			var f float64
			fmt.Sscan(string(v), &f)
			return f
		}
	}
	t.Fatal("no go_memstats_heap_inuse_bytes in /metrics")
	return 0
}

var _ = context.Background
var _ = os.Getpid

// memSampler samples the server's anonymous resident memory (the Go heap,
// stacks and the database's page cache; not the memory-mapped database file,
// which the kernel can drop at any time) and keeps the peak.
type memSampler struct {
	stop chan struct{}
	done chan struct{}
	peak atomic.Int64
}

func sampleMemory(t *testing.T, pid int) *memSampler {
	m := &memSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for {
			if v := rssAnon(pid); v > m.peak.Load() {
				m.peak.Store(v)
			}
			select {
			case <-m.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return m
}

// finish stops sampling and returns the peak in bytes.
func (m *memSampler) finish() int64 {
	close(m.stop)
	<-m.done
	return m.peak.Load()
}

func rssAnon(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb << 10
		}
	}
	return 0
}

// tailIDs follows /stream from after and sends the id of every event
// received, until ctx ends or the stream does. It fails the test on a frame
// whose data is missing.
func tailIDs(ctx context.Context, t *testing.T, url string, after int64, ids chan<- int64) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/stream?after=%d", url, after), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("stream: %s", resp.Status)
	}
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	var id int64 = -1
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A data line longer than the buffer: its start is
			// enough, skip the rest.
			line = bytes.Clone(line[:min(len(line), 16)])
			for err == bufio.ErrBufferFull {
				_, err = r.ReadSlice('\n')
			}
		}
		if err != nil {
			return err
		}
		switch {
		case bytes.HasPrefix(line, []byte("id: ")):
			fmt.Sscan(string(line[4:]), &id)
		case bytes.HasPrefix(line, []byte("event: ")):
		case bytes.HasPrefix(line, []byte("data: ")):
			if id < 0 {
				return fmt.Errorf("data before id")
			}
			select {
			case ids <- id:
			case <-ctx.Done():
				return ctx.Err()
			}
			id = -1
		}
	}
}
