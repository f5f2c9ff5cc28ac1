package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"math/bits"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/cputime"
	"github.com/audit-stream/audit-stream/internal/httpapi"
)

var (
	fanoutSubs      = flag.Int("fanout.subs", 1000, "BenchmarkFanOut: concurrent /stream subscribers")
	fanoutProducers = flag.Int("fanout.producers", 32, "BenchmarkFanOut: concurrent producers (one POST /events in flight each)")
	fanoutPhase     = flag.Duration("fanout.phase", 5*time.Second, "BenchmarkFanOut: length of each measured phase")
	fanoutLinger    = flag.Duration("fanout.linger", 0, "BenchmarkFanOut: httpapi.Options.StreamLinger (0: the default)")
	fanoutBursts    = flag.Int("fanout.bursts", 0, "BenchmarkFanOut: httpapi.Options.StreamBursts (0: the default)")
)

// BenchmarkFanOut measures the live tail at scale. Each iteration runs two
// phases on the same server: producers appending as fast as they can with
// no subscriber, then the same producers with fanout.subs subscribers
// following the head. It reports the producers' append rate in both phases
// and their ratio, the events delivered per second (all subscribers
// together and per subscriber), and the delivery lag: from the moment a
// producer's append was acknowledged to the moment a subscriber read the
// event's frame (0 when the frame arrived first: the head is announced
// before the waiters are answered). It also reports the process's CPU time
// per append with no subscriber and per delivered frame with them (the
// producers, the server and the subscribers share the process): on a shared
// machine CPU per operation is far steadier than the rates. cpu-us/frame
// includes the appends; cpu-us/frame-fanout subtracts their cost measured in
// the first phase.
//
// The subscribers only split the stream into frames, take each frame's id
// and count it: they stand in for clients, and the benchmark measures the
// server.
//
//	go test -run '^$' -bench FanOut -benchtime 1x -count 3 ./internal/httpapi/
func BenchmarkFanOut(b *testing.B) {
	raiseFileLimit(b)
	for range b.N {
		fanOutOnce(b)
	}
}

func raiseFileLimit(b *testing.B) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	need := uint64(4**fanoutSubs + 1024) // both ends of each stream, producers, SQLite
	if lim.Cur < need {
		lim.Cur = min(need, lim.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			b.Fatal(err)
		}
	}
	if lim.Cur < uint64(2**fanoutSubs+256) {
		b.Fatalf("RLIMIT_NOFILE %d is too low for %d subscribers", lim.Cur, *fanoutSubs)
	}
}

// lagHist is a log-linear histogram of durations: 8 buckets per power of two.
type lagHist [64 * 8]uint64

func (h *lagHist) add(d time.Duration) {
	n := uint64(max(d, 1))
	e := bits.Len64(n) - 1
	if e < 3 {
		h[n]++
		return
	}
	h[e*8+int(n>>(e-3)&7)]++
}

func (h *lagHist) merge(o *lagHist) {
	for i := range h {
		h[i] += o[i]
	}
}

// quantile returns the upper bound of the bucket holding quantile q.
func (h *lagHist) quantile(q float64) time.Duration {
	var total uint64
	for _, c := range h {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q * float64(total))
	var seen uint64
	for i, c := range h {
		seen += c
		if seen > rank {
			if i < 8 {
				return time.Duration(i + 1)
			}
			e, m := i/8, uint64(i%8)
			return time.Duration((9 + m) << (e - 3))
		}
	}
	return 0
}

func fanOutOnce(b *testing.B) {
	subs, producers, phase := *fanoutSubs, *fanoutProducers, *fanoutPhase
	env := apitest.Start(b, apitest.Options{API: httpapi.Options{MaxStreams: subs + 16, StreamLinger: *fanoutLinger, StreamBursts: *fanoutBursts}})
	ptr := &http.Transport{MaxIdleConnsPerHost: producers, DisableCompression: true}
	defer ptr.CloseIdleConnections()
	pc := &http.Client{Transport: ptr}

	const maxIDs = 1 << 23
	ackAt := make([]atomic.Int64, maxIDs) // unix nanos of the acknowledgement, by event id

	// produce appends until stop and returns how many were acknowledged.
	produce := func(stop <-chan struct{}) int64 {
		var n atomic.Int64
		var wg sync.WaitGroup
		body := []byte(`{"kind":"request_denied","source":"bench","payload":{"path":"/admin","n":1}}`)
		for range producers {
			wg.Go(func() {
				var resp struct {
					ID int64 `json:"event_id"`
				}
				for {
					select {
					case <-stop:
						return
					default:
					}
					r, err := pc.Post(env.URL+"/events", "application/json", bytes.NewReader(body))
					if err != nil {
						b.Error(err)
						return
					}
					data, _ := io.ReadAll(r.Body)
					r.Body.Close()
					now := time.Now().UnixNano()
					if r.StatusCode != http.StatusCreated || json.Unmarshal(data, &resp) != nil {
						b.Errorf("append: %d %s", r.StatusCode, data)
						return
					}
					if resp.ID < maxIDs {
						ackAt[resp.ID].Store(now)
					}
					n.Add(1)
				}
			})
		}
		wg.Wait()
		return n.Load()
	}
	timed := func() (int64, time.Duration) {
		stop := make(chan struct{})
		start := time.Now()
		time.AfterFunc(phase, func() { close(stop) })
		n := produce(stop)
		return n, time.Since(start)
	}

	// Phase 1: producers alone.
	cpu := cputime.Start()
	aloneN, aloneD := timed()
	aloneCPU := cpu.PerOp(int(aloneN))

	// Phase 2: the same with subscribers following the head.
	str := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: -1, ReadBufferSize: 64 << 10}
	defer str.CloseIdleConnections()
	sc := &http.Client{Transport: str}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type subState struct {
		hist      lagHist
		delivered int64
		last      atomic.Int64
	}
	states := make([]*subState, subs)
	var ready, done sync.WaitGroup
	for i := range states {
		s := &subState{}
		states[i] = s
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, env.URL+"/stream", nil)
			resp, err := sc.Do(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Errorf("subscribe: %v %v", resp, err)
				ready.Done()
				return
			}
			defer resp.Body.Close()
			buf := make([]byte, 64<<10)
			n := 0
			first := true
			for {
				m, err := resp.Body.Read(buf[n:])
				n += m
				// Every frame this read completed arrived now.
				now := time.Now().UnixNano()
				p := buf[:n]
				for {
					k := bytes.Index(p, frameEnd)
					if k < 0 {
						break
					}
					id, ok := frameID(p[:k])
					p = p[k+len(frameEnd):]
					if !ok {
						continue // a keep-alive comment
					}
					if first { // the preamble: the stream is live
						first = false
						s.last.Store(id)
						ready.Done()
						continue
					}
					var lag time.Duration
					if id < maxIDs {
						if at := ackAt[id].Load(); at != 0 {
							lag = time.Duration(now - at)
						}
					}
					s.hist.add(lag)
					s.delivered++
					s.last.Store(id)
				}
				n = copy(buf, p)
				if n == len(buf) {
					buf = append(buf, make([]byte, len(buf))...)
				}
				if err != nil {
					if first {
						ready.Done()
					}
					return
				}
			}
		}()
	}
	ready.Wait()
	if b.Failed() {
		b.FailNow()
	}
	start := time.Now()
	cpu = cputime.Start()
	withN, withD := timed()
	head := env.Ledger.Head().ID
	// Let every subscriber reach the head.
	deadline := time.Now().Add(2 * time.Minute)
	for _, s := range states {
		for s.last.Load() < head {
			if time.Now().After(deadline) {
				b.Fatalf("a subscriber is stuck at %d of %d", s.last.Load(), head)
			}
			time.Sleep(time.Millisecond)
		}
	}
	deliveredD := time.Since(start)
	withCPU := cpu.PerOp(1) // µs, divided by the frames below
	cancel()
	done.Wait()

	var all lagHist
	var delivered int64
	for _, s := range states {
		all.merge(&s.hist)
		delivered += s.delivered
	}
	b.ReportMetric(aloneCPU, "cpu-us/append-alone")
	b.ReportMetric(withCPU/float64(delivered), "cpu-us/frame")
	// The fan-out's own share: the CPU of phase 2 less what its appends
	// would have cost alone, per frame. Noisier (a difference), but it
	// does not charge the producers' HTTP and SQLite work to the frames.
	b.ReportMetric((withCPU-aloneCPU*float64(withN))/float64(delivered), "cpu-us/frame-fanout")
	if want := withN * int64(subs); delivered < want {
		b.Fatalf("delivered %d frames, want at least %d", delivered, want)
	}
	aloneRate := float64(aloneN) / aloneD.Seconds()
	withRate := float64(withN) / withD.Seconds()
	b.ReportMetric(aloneRate, "appends/s-alone")
	b.ReportMetric(withRate, "appends/s-with-subs")
	b.ReportMetric(withRate/aloneRate, "append-ratio")
	b.ReportMetric(float64(delivered)/deliveredD.Seconds(), "delivered/s")
	b.ReportMetric(float64(delivered)/deliveredD.Seconds()/float64(subs), "events/s/sub")
	b.ReportMetric(float64(all.quantile(0.50))/1e6, "p50-lag-ms")
	b.ReportMetric(float64(all.quantile(0.99))/1e6, "p99-lag-ms")
	b.ReportMetric(float64(all.quantile(0.999))/1e6, "p999-lag-ms")
	b.ReportMetric(0, "ns/op")
}

var frameEnd = []byte("\n\n")

// frameID returns the id of an SSE frame (its "id: " line), false for a
// frame without one.
func frameID(f []byte) (int64, bool) {
	i := 0
	if !bytes.HasPrefix(f, []byte("id: ")) {
		i = bytes.Index(f, []byte("\nid: "))
		if i < 0 {
			return 0, false
		}
		i++
	}
	i += len("id: ")
	var id int64
	for ; i < len(f) && f[i] != '\n'; i++ {
		id = id*10 + int64(f[i]-'0')
	}
	return id, true
}
