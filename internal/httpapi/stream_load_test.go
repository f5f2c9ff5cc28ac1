package httpapi_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/httpapi"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store"
)

// TestStreamExactlyOnceUnderLoad: 50 subscribers join at random moments with
// random resume points and random filters while 16 producers append 5,000
// events. The in-memory ring holds only 64 events, so most subscribers replay
// from storage, and one subscriber stops reading for the whole run: it falls
// far behind anything in memory and must catch up from storage. Every
// subscriber must receive exactly the ids it asked for, in order.
func TestStreamExactlyOnceUnderLoad(t *testing.T) {
	const (
		total       = 5000
		producers   = 16
		subscribers = 50
		ring        = 64
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	env := apitest.Start(t, apitest.Options{
		Ledger: ledger.Options{RecentEvents: ring},
		// The slow subscriber is blocked in a write for the whole run.
		API: httpapi.Options{WriteTimeout: 5 * time.Minute},
	})
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * producers}, Timeout: time.Minute}
	kinds := []string{"request_allowed", "request_denied", "policy_bundle_registered", "other"}
	sources := []string{"s0", "s1", "s2", "s3", "s4"}
	// About 1.3 KB an event, 6.5 MB in all: more than the socket buffers
	// of the slow subscriber's connection can hold, so the server's writes
	// to it block and its reads fall behind the ring.
	pad := strings.Repeat("x", 1200)

	var acked atomic.Int64 // appends answered
	var wg sync.WaitGroup

	type sub struct {
		name   string
		query  string
		header string
		flt    store.Filter // Kinds and Sources
		slow   bool

		mu    sync.Mutex
		start int64 // from the preamble
		ids   []int64
		err   error
	}
	subs := make([]*sub, subscribers)
	release := make(chan struct{}) // lets the slow subscriber read on
	for i := range subs {
		s := &sub{name: fmt.Sprintf("sub%d", i), slow: i == 0}
		if !s.slow {
			for _, k := range kinds {
				if rng.IntN(3) == 0 {
					s.flt.Kinds = append(s.flt.Kinds, k)
				}
			}
			for _, src := range sources {
				if rng.IntN(3) == 0 {
					s.flt.Sources = append(s.flt.Sources, src)
				}
			}
		}
		subs[i] = s
	}

	read := func(s *sub, body io.Reader) {
		fr := newFrameReader(body)
		lines, err := fr.next()
		if err == nil {
			if len(lines) != 2 || !strings.HasPrefix(lines[1], "id: ") {
				err = fmt.Errorf("preamble %q", lines)
			} else {
				s.mu.Lock()
				s.start, err = strconv.ParseInt(lines[1][4:], 10, 64)
				s.mu.Unlock()
			}
		}
		for err == nil {
			if s.slow && len(s.ids) == 5 {
				<-release
			}
			lines, err = fr.next()
			if err != nil {
				break
			}
			if len(lines) == 1 && lines[0] == ": keep-alive" {
				continue
			}
			if len(lines) != 3 || !strings.HasPrefix(lines[1], "id: ") {
				err = fmt.Errorf("bad frame %q", lines)
				break
			}
			id, perr := strconv.ParseInt(lines[1][4:], 10, 64)
			if perr != nil {
				err = perr
				break
			}
			s.mu.Lock()
			s.ids = append(s.ids, id)
			s.mu.Unlock()
		}
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
	}

	// The slow subscriber joins first, from the start of the log, over a
	// connection with a small receive buffer.
	u, _ := url.Parse(env.URL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Small, but not so small that loopback TCP crawls.
	conn.(*net.TCPConn).SetReadBuffer(64 << 10)
	fmt.Fprintf(conn, "GET /stream?after=0 HTTP/1.1\r\nHost: %s\r\n\r\n", u.Host)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("slow subscriber: %v %v", resp, err)
	}
	subs[0].query = "?after=0"
	wg.Go(func() { read(subs[0], resp.Body) })

	// The others join at random moments of the run.
	for _, s := range subs[1:] {
		joinAt := rng.Int64N(total)
		mode := rng.IntN(5)
		resumeFrac := rng.Float64()
		altHeader := rng.IntN(2) == 0
		wg.Go(func() {
			for acked.Load() < joinAt {
				time.Sleep(time.Millisecond)
			}
			q := url.Values{"kind": s.flt.Kinds, "source": s.flt.Sources}
			h := http.Header{}
			after := int64(resumeFrac * float64(acked.Load()))
			switch mode {
			case 0: // from the head
			case 1:
				q.Set("after", "0")
			case 2:
				q.Set("after", strconv.FormatInt(after, 10))
				if altHeader { // the query wins
					h.Set("Last-Event-ID", strconv.FormatInt(after/2, 10))
				}
			default:
				h.Set("Last-Event-ID", strconv.FormatInt(after, 10))
			}
			s.query, s.header = q.Encode(), h.Get("Last-Event-ID")
			req, _ := http.NewRequest(http.MethodGet, env.URL+"/stream?"+q.Encode(), nil)
			req.Header = h
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(resp.Body)
				s.mu.Lock()
				s.err = fmt.Errorf("status %d: %s", resp.StatusCode, b)
				s.mu.Unlock()
				return
			}
			read(s, resp.Body)
		})
	}

	// Producers.
	var next atomic.Int64
	var pwg sync.WaitGroup
	for range producers {
		pwg.Go(func() {
			for {
				k := next.Add(1) - 1
				if k >= total {
					return
				}
				body := fmt.Sprintf(`{"kind":%q,"source":%q,"payload":{"k":%d,"pad":%q}}`, kinds[k%4], sources[k*7%5], k, pad)
				resp, err := hc.Post(env.URL+"/events", "application/json", strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					t.Errorf("append: %d", resp.StatusCode)
					return
				}
				acked.Add(1)
			}
		})
	}
	pwg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// The whole log, to compute what each subscriber must get.
	var log []event.Event
	err = env.Store.Scan(context.Background(), store.Filter{}, 0, func(e *event.Event) error {
		log = append(log, event.Event{ID: e.ID, Kind: e.Kind, Source: e.Source})
		return nil
	})
	if err != nil || len(log) != total {
		t.Fatalf("log has %d events, %v", len(log), err)
	}
	expect := func(s *sub) []int64 {
		var ids []int64
		for _, e := range log {
			if e.ID > s.start && (len(s.flt.Kinds) == 0 || slices.Contains(s.flt.Kinds, e.Kind)) &&
				(len(s.flt.Sources) == 0 || slices.Contains(s.flt.Sources, e.Source)) {
				ids = append(ids, e.ID)
			}
		}
		return ids
	}
	waitFor := func(s *sub) {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			s.mu.Lock()
			n, want, err := len(s.ids), len(expect(s)), s.err
			s.mu.Unlock()
			if err != nil {
				t.Fatalf("%s (%s, Last-Event-ID %q): %v after %d events", s.name, s.query, s.header, err, n)
			}
			if n >= want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s (%s): %d of %d events", s.name, s.query, n, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for _, s := range subs[1:] {
		waitFor(s)
	}
	// Only the slow subscriber is behind now: every storage read from here
	// on is its own.
	before := env.Ledger.Feed().StoreReads()
	close(release)
	waitFor(subs[0])
	if after := env.Ledger.Feed().StoreReads(); after == before {
		t.Errorf("the slow subscriber caught up without reading from storage: it never fell behind the ring")
	}

	// Shut down: every stream ends cleanly, and nothing more arrives.
	env.Stop()
	wg.Wait()
	for _, s := range subs {
		want := expect(s)
		if s.err != io.EOF {
			t.Errorf("%s: ended with %v", s.name, s.err)
		}
		if !slices.Equal(s.ids, want) {
			t.Errorf("%s (%s, Last-Event-ID %q, start %d): got %d events, want %d; first difference at %d",
				s.name, s.query, s.header, s.start, len(s.ids), len(want), firstDiff(s.ids, want))
		}
	}
}

func firstDiff(a, b []int64) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
