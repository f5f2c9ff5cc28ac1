package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/httpapi"
)

// These tests read /stream as a plain HTTP client would, with no SSE
// library: they check the bytes on the wire.

func post(t testing.TB, base, kind, source, payload string) int64 {
	t.Helper()
	body := fmt.Sprintf(`{"kind":%q,"source":%q,"payload":%s}`, kind, source, payload)
	resp, err := apitest.Client.Post(base+"/events", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /events: %d %s", resp.StatusCode, b)
	}
	var e struct {
		ID int64 `json:"event_id"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return e.ID
}

func getRaw(t testing.TB, base string, id int64) string {
	t.Helper()
	resp, err := apitest.Client.Get(base + "/events/" + strconv.FormatInt(id, 10))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSuffix(string(b), "\n")
}

// rawStream opens GET /stream. The caller closes the body.
func rawStream(t testing.TB, ctx context.Context, base, query string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/stream"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// frameReader splits the stream into frames: the lines up to a blank line.
type frameReader struct{ br *bufio.Reader }

func newFrameReader(r io.Reader) *frameReader { return &frameReader{bufio.NewReaderSize(r, 64<<10)} }

// next returns the lines of the next frame, each without its "\n". The
// server only ever ends lines with "\n".
func (f *frameReader) next() ([]string, error) {
	var lines []string
	for {
		line, err := f.br.ReadString('\n')
		if err != nil {
			if err == io.EOF && line == "" && lines == nil {
				return nil, io.EOF
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		line = line[:len(line)-1]
		if line == "" {
			return lines, nil
		}
		if strings.ContainsRune(line, '\r') {
			return nil, fmt.Errorf("CR in line %q", line)
		}
		lines = append(lines, line)
	}
}

// eventFrame checks that lines are an event frame and returns its id.
func eventFrame(t testing.TB, lines []string) (id int64, kind, data string) {
	t.Helper()
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "event: ") || !strings.HasPrefix(lines[1], "id: ") || !strings.HasPrefix(lines[2], "data: ") {
		t.Fatalf("not an event frame: %q", lines)
	}
	id, err := strconv.ParseInt(lines[1][4:], 10, 64)
	if err != nil {
		t.Fatalf("bad id line %q", lines[1])
	}
	return id, lines[0][7:], lines[2][6:]
}

// preamble reads the first frame and returns the position it announces.
func preamble(t testing.TB, fr *frameReader, retry int) int64 {
	t.Helper()
	lines, err := fr.next()
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 || lines[0] != "retry: "+strconv.Itoa(retry) || !strings.HasPrefix(lines[1], "id: ") {
		t.Fatalf("preamble %q, want retry: %d and id: N", lines, retry)
	}
	n, err := strconv.ParseInt(lines[1][4:], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestStreamWireFormat(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{API: httpapi.Options{Heartbeat: 100 * time.Millisecond, RetryMillis: 1500}})
	post(t, env.URL, "request_denied", "gw", `{"path":"/admin","msg":"line\nbreak \u2028 é"}`)
	post(t, env.URL, "other", "gw-2", `{}`)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := rawStream(t, ctx, env.URL, "?after=0", nil)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for k, v := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	// The body is not chunked: it runs until the connection closes, so a
	// burst of frames is one write.
	if len(resp.TransferEncoding) != 0 || !resp.Close {
		t.Errorf("transfer encoding %q, close %v; want an unchunked body up to the close", resp.TransferEncoding, resp.Close)
	}
	// The very first bytes: the retry line, then the starting position.
	first := make([]byte, len("retry: 1500\nid: 0\n\n"))
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	if string(first) != "retry: 1500\nid: 0\n\n" {
		t.Fatalf("first bytes %q", first)
	}
	fr := newFrameReader(resp.Body)
	for want := int64(1); want <= 2; want++ {
		lines, err := fr.next()
		if err != nil {
			t.Fatal(err)
		}
		id, kind, data := eventFrame(t, lines)
		stored := getRaw(t, env.URL, want)
		if id != want || data != stored {
			t.Fatalf("frame %d: id %d data %s, want the stored event %s", want, id, data, stored)
		}
		var e struct{ Kind string }
		json.Unmarshal([]byte(data), &e)
		if kind != e.Kind {
			t.Fatalf("event: %q, data kind %q", kind, e.Kind)
		}
	}
	// Idle: keep-alive comments.
	for range 2 {
		lines, err := fr.next()
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) != 1 || lines[0] != ": keep-alive" {
			t.Fatalf("want a keep-alive comment, got %q", lines)
		}
	}
	// Live.
	id := post(t, env.URL, "request_allowed", "gw", `{"n":3}`)
	for {
		lines, err := fr.next()
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) == 1 && lines[0] == ": keep-alive" {
			continue
		}
		if got, _, data := eventFrame(t, lines); got != id || data != getRaw(t, env.URL, id) {
			t.Fatalf("live frame %q", lines)
		}
		break
	}
}

// readIDs reads event frames until n have arrived, skipping keep-alives.
func readIDs(t testing.TB, fr *frameReader, n int) []int64 {
	t.Helper()
	var ids []int64
	for len(ids) < n {
		lines, err := fr.next()
		if err != nil {
			t.Fatalf("after %v: %v", ids, err)
		}
		if len(lines) == 1 && strings.HasPrefix(lines[0], ":") {
			continue
		}
		id, _, _ := eventFrame(t, lines)
		ids = append(ids, id)
	}
	return ids
}

func seq(from, to int64) []int64 {
	var s []int64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func TestStreamResume(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	for i := range 10 {
		post(t, env.URL, "other", "s", fmt.Sprintf(`{"i":%d}`, i))
	}
	for _, tc := range []struct {
		name   string
		query  string
		header string
		start  int64
	}{
		{"Last-Event-ID", "", "4", 4},
		{"after", "?after=6", "", 6},
		{"after wins over Last-Event-ID", "?after=7", "2", 7},
		{"after=0 replays everything", "?after=0", "", 0},
		{"at the head", "?after=10", "", 10},
		{"neither: the head", "", "", 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			h := http.Header{}
			if tc.header != "" {
				h.Set("Last-Event-ID", tc.header)
			}
			resp := rawStream(t, ctx, env.URL, tc.query, h)
			defer resp.Body.Close()
			fr := newFrameReader(resp.Body)
			if got := preamble(t, fr, 2000); got != tc.start {
				t.Fatalf("starts at %d, want %d", got, tc.start)
			}
			if got := readIDs(t, fr, int(10-tc.start)); fmt.Sprint(got) != fmt.Sprint(seq(tc.start+1, 10)) {
				t.Fatalf("replayed %v", got)
			}
		})
	}

	// Resume through the real header after a disconnect, as EventSource
	// does: no gap, no duplicate.
	ctx, cancel := context.WithCancel(context.Background())
	resp := rawStream(t, ctx, env.URL, "", nil)
	fr := newFrameReader(resp.Body)
	preamble(t, fr, 2000)
	post(t, env.URL, "other", "s", `{}`)
	post(t, env.URL, "other", "s", `{}`)
	got := readIDs(t, fr, 1)
	cancel()
	resp.Body.Close()
	post(t, env.URL, "other", "s", `{}`)
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	resp = rawStream(t, ctx, env.URL, "", http.Header{"Last-Event-ID": {strconv.FormatInt(got[0], 10)}})
	defer resp.Body.Close()
	fr = newFrameReader(resp.Body)
	preamble(t, fr, 2000)
	got = append(got, readIDs(t, fr, 2)...)
	if fmt.Sprint(got) != fmt.Sprint(seq(11, 13)) {
		t.Fatalf("across the reconnect: %v", got)
	}
}

func TestStreamFilters(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	type ev struct{ kind, source string }
	var log []ev
	add := func(kind, source string) {
		post(t, env.URL, kind, source, `{}`)
		log = append(log, ev{kind, source})
	}
	kinds := []string{"request_allowed", "request_denied", "other"}
	for i := range 12 {
		add(kinds[i%3], fmt.Sprintf("s%d", i%2))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := "?after=0&kind=request_denied&kind=other&source=s1"
	resp := rawStream(t, ctx, env.URL, q, nil)
	defer resp.Body.Close()
	fr := newFrameReader(resp.Body)
	preamble(t, fr, 2000)
	for i := 12; i < 24; i++ { // live, the same filter
		add(kinds[i%3], fmt.Sprintf("s%d", i%2))
	}
	var want []int64
	for i, e := range log {
		if (e.kind == "request_denied" || e.kind == "other") && e.source == "s1" {
			want = append(want, int64(i+1))
		}
	}
	got := readIDs(t, fr, len(want))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v (frame ids are the events' own ids)", got, want)
	}
}

func TestStreamRejects(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	for range 3 {
		post(t, env.URL, "other", "s", `{}`)
	}
	for _, tc := range []struct {
		query, lastID string
		status        int
		detail        string
	}{
		{"?after=4", "", 400, "beyond the head"},
		{"", "4", 400, "beyond the head"},
		{"?after=9223372036854775807", "", 400, "beyond the head"},
		{"?after=-1", "", 400, "non-negative integer"},
		{"?after=%2B1", "", 400, "non-negative integer"},
		{"?after=1.0", "", 400, "non-negative integer"},
		{"?after=", "", 400, "non-negative integer"},
		{"?after=%201", "", 400, "non-negative integer"},
		{"?after=0x1", "", 400, "non-negative integer"},
		{"?after=99999999999999999999", "", 400, "non-negative integer"},
		{"?after=abc", "1", 400, "non-negative integer"}, // the query wins, even when bad
		{"", "abc", 400, "non-negative integer"},
		{"", "-3", 400, "non-negative integer"},
		{"?kind=nope", "", 422, `unknown kind "nope"`},
		{"?kind=other&kind=nope", "", 422, `unknown kind "nope"`},
		{"?kind=", "", 422, `unknown kind ""`},
		{"?source=", "", 422, "source: must not be empty"},
	} {
		t.Run(tc.query+"|"+tc.lastID, func(t *testing.T) {
			h := http.Header{}
			if tc.lastID != "" {
				h.Set("Last-Event-ID", tc.lastID)
			}
			resp := rawStream(t, context.Background(), env.URL, tc.query, h)
			defer resp.Body.Close()
			var p struct {
				Status int
				Detail string
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q", ct)
			}
			if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status || p.Status != tc.status || !strings.Contains(p.Detail, tc.detail) {
				t.Fatalf("%d %+v, want %d with detail containing %q", resp.StatusCode, p, tc.status, tc.detail)
			}
		})
	}
	// A refused stream takes no slot and writes nothing.
	if h := env.Ledger.Head(); h.ID != 3 {
		t.Fatalf("head moved to %d", h.ID)
	}
}

func TestStreamLimit(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{API: httpapi.Options{MaxStreams: 2}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var open []*http.Response
	for range 2 {
		resp := rawStream(t, ctx, env.URL, "", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		preamble(t, newFrameReader(resp.Body), 2000)
		open = append(open, resp)
	}
	resp := rawStream(t, ctx, env.URL, "", nil)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !bytes.Contains(body, []byte("too many concurrent streams")) {
		t.Fatalf("third stream: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// Closing a stream frees its slot.
	open[0].Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx2, cancel2 := context.WithCancel(ctx)
		resp := rawStream(t, ctx2, env.URL, "", nil)
		status := resp.StatusCode
		resp.Body.Close()
		cancel2()
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not freed: %d", status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	open[1].Body.Close()
}

// A peer that stops reading is dropped once a write blocks for longer than
// the write timeout, and its slot is freed; appends never wait for it.
//
// Bytes decide when a write must block, not time: the test appends twice
// what the kernel and the server can buffer for the stuck peer, however long
// a loaded machine takes to, and only then waits for the slot.
func TestStreamWriteDeadlineFreesSlot(t *testing.T) {
	t.Parallel()
	const writeTimeout = 200 * time.Millisecond
	env := apitest.Start(t, apitest.Options{API: httpapi.Options{MaxStreams: 1, WriteTimeout: writeTimeout}})
	u, _ := url.Parse(env.URL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const readBuffer = 4096
	conn.(*net.TCPConn).SetReadBuffer(readBuffer)
	fmt.Fprintf(conn, "GET /stream HTTP/1.1\r\nHost: %s\r\n\r\n", u.Host)
	// Read the answer up to the preamble: then the stream holds the only
	// slot. From here on this end never reads.
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %v %v", resp, err)
	}
	preamble(t, newFrameReader(resp.Body), 2000)
	probe := func() int {
		resp := rawStream(t, context.Background(), env.URL, "?after=0&kind=request_denied", nil)
		resp.Body.Close()
		return resp.StatusCode
	}
	if status := probe(); status != http.StatusServiceUnavailable {
		t.Fatalf("a second stream: %d, want 503 while the first holds the only slot", status)
	}

	// What can wait between the server and a peer that does not read: the
	// server's socket send buffer (at most tcp_wmem's maximum), this end's
	// receive buffer (doubled by the kernel) and the stream's write buffer.
	buffered := tcpSendBufferMax(t) + 2*readBuffer + 64<<10
	blob := strings.Repeat("x", 256<<10)
	var slowest time.Duration
	for pushed := 0; pushed < 2*buffered; pushed += len(blob) {
		t0 := time.Now()
		post(t, env.URL, "other", "s", `{"blob":"`+blob+`"}`)
		slowest = max(slowest, time.Since(t0))
	}
	// A write to the stuck peer blocks now and fails within the write
	// timeout. How long the stream then takes to let go depends on how
	// loaded the machine is, which the slowest append measures; a stream
	// without a write deadline never lets go.
	grace := 10*writeTimeout + 20*slowest
	start := time.Now()
	for probe() != http.StatusOK {
		if time.Since(start) > grace {
			t.Fatalf("the stuck stream still holds the only slot %v after %d bytes were appended (slowest append %v)", grace, 2*buffered, slowest)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("slot freed %v after the appends (slowest append %v)", time.Since(start), slowest)
}

// tcpSendBufferMax is the most a TCP socket's send buffer grows to here:
// the third figure of tcp_wmem, or 16 MiB where that cannot be read.
func tcpSendBufferMax(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem")
	if f := strings.Fields(string(b)); err == nil && len(f) == 3 {
		if n, err := strconv.Atoi(f[2]); err == nil {
			return n
		}
	}
	return 16 << 20
}

// On shutdown every stream delivers every event whose append was
// acknowledged, then ends cleanly (a proper end of the chunked body, not a
// cut connection).
func TestStreamShutdown(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	post(t, env.URL, "other", "s", `{}`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const streams = 4
	type result struct {
		ids []int64
		err error
	}
	results := make(chan result, streams)
	for range streams {
		resp := rawStream(t, ctx, env.URL, "", nil)
		fr := newFrameReader(resp.Body)
		preamble(t, fr, 2000)
		go func() {
			defer resp.Body.Close()
			var r result
			for {
				lines, err := fr.next()
				if err != nil {
					r.err = err
					results <- r
					return
				}
				if len(lines) == 1 && lines[0] == ": keep-alive" {
					continue
				}
				id, _, _ := eventFrame(t, lines)
				r.ids = append(r.ids, id)
			}
		}()
	}
	// Producers keep appending while the server stops.
	var (
		mu    sync.Mutex
		acked = map[int64]bool{}
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	for p := range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf(`{"kind":"other","source":"p%d"}`, p)
				resp, err := http.Post(env.URL+"/events", "application/json", strings.NewReader(body))
				if err != nil {
					return // the listener is gone
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusCreated {
					var e struct {
						ID int64 `json:"event_id"`
					}
					json.Unmarshal(b, &e)
					mu.Lock()
					acked[e.ID] = true
					mu.Unlock()
				} else if resp.StatusCode != http.StatusServiceUnavailable {
					t.Errorf("append during shutdown: %d %s", resp.StatusCode, b)
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	env.Stop()
	close(stop)
	wg.Wait()
	final := int64(0)
	for id := range acked {
		final = max(final, id)
	}
	if final == 0 {
		t.Fatal("no append was acknowledged")
	}
	for range streams {
		r := <-results
		if r.err != io.EOF {
			t.Fatalf("stream ended with %v, want a clean end", r.err)
		}
		if len(r.ids) == 0 || r.ids[0] != 2 {
			t.Fatalf("stream started at %v", r.ids[:min(1, len(r.ids))])
		}
		if fmt.Sprint(r.ids) != fmt.Sprint(seq(2, r.ids[len(r.ids)-1])) || r.ids[len(r.ids)-1] < final {
			t.Fatalf("stream got %d..%d (%d events), last acknowledged append %d", r.ids[0], r.ids[len(r.ids)-1], len(r.ids), final)
		}
	}
}
