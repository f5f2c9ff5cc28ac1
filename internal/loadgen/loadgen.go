// Package loadgen drives an audit-stream server over HTTP and measures it:
// single and batch appends, fan-out to SSE subscribers, queries, proofs
// and verification, each against the same client's rate on a bare
// net/http handler (the baseline) measured in the same run. It backs the
// `audit-stream bench` command and the whole-system benchmarks.
//
// Every loop is bounded by its duration (or a request count) and by the
// context; the tool only talks to loopback addresses.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/audit-stream/audit-stream/event"
)

// Workload names what a run measures.
type Workload string

const (
	Append Workload = "append" // single events, one per request
	Batch  Workload = "batch"  // BatchSize events per request
	Fanout Workload = "fanout" // single appends while Subscribers follow /stream
	Query  Workload = "query"  // GET /events?limit=100 on a filled store
	Proof  Workload = "proof"  // GET /events/{id}/proof on a filled store
	Verify Workload = "verify" // GET /verify on a filled store
)

// Workloads lists every workload, in the order the help shows them.
var Workloads = []Workload{Append, Batch, Fanout, Query, Proof, Verify}

// Limits on the options, so that a typo cannot start a run that takes the
// machine down.
const (
	MaxProducers   = 10000
	MaxSubscribers = 20000
	MaxDuration    = 24 * time.Hour
	MaxBatch       = event.MaxBatch // the server's own limit
	MaxFill        = 100_000_000
)

// Options configures a run.
type Options struct {
	// URL is the server's base URL; it must be a loopback address.
	URL   string
	Token string
	// Producers is the number of concurrent clients, each sending its
	// next request once the previous one is answered.
	Producers int
	Duration  time.Duration
	// BatchSize is the events per request of the batch workload.
	BatchSize int
	// Subscribers follow /stream during the fanout workload.
	Subscribers int
	// Rate, if positive, paces the fanout's producers to this many events
	// a second together, as producers emitting at their own pace do; 0
	// sends each request as soon as the last is answered.
	Rate int
	// Fill makes sure the log holds at least this many events before a
	// query, proof or verify run, appending batches of 1,000 if not.
	Fill int
	// Progress, if set, receives a live progress line about every second.
	Progress io.Writer
	// Exec is the command line of this program (its path and any leading
	// arguments): the fan-out runs its subscribers as "Exec bench subscribe
	// …", a process of their own. Without it they run in this process.
	Exec []string
	// SubscriberProfile, if set, is where the subscriber process writes
	// its CPU profile.
	SubscriberProfile string
}

// Check validates the options a workload uses; its errors name the flag.
func (o Options) Check(w Workload) error {
	known := false
	for _, k := range Workloads {
		known = known || k == w
	}
	switch {
	case !known:
		return fmt.Errorf("unknown workload %q", w)
	case o.Producers < 1 || o.Producers > MaxProducers:
		return fmt.Errorf("--producers must be between 1 and %d, got %d", MaxProducers, o.Producers)
	case o.Duration <= 0 || o.Duration > MaxDuration:
		return fmt.Errorf("--duration must be positive and at most %v, got %v", MaxDuration, o.Duration)
	case o.BatchSize < 1 || o.BatchSize > MaxBatch:
		return fmt.Errorf("--size must be between 1 and %d, got %d", MaxBatch, o.BatchSize)
	case o.Subscribers < 0 || o.Subscribers > MaxSubscribers:
		return fmt.Errorf("--subscribers must be between 0 and %d, got %d", MaxSubscribers, o.Subscribers)
	case o.Rate < 0 || o.Rate > MaxSoakRate:
		return fmt.Errorf("--rate must be between 0 and %d, got %d", MaxSoakRate, o.Rate)
	case o.Fill < 0 || o.Fill > MaxFill:
		return fmt.Errorf("--fill must be between 0 and %d, got %d", MaxFill, o.Fill)
	}
	if o.URL != "" {
		return CheckLoopback(o.URL)
	}
	return nil
}

// CheckLoopback refuses a URL that is not http(s) to a loopback address: a
// load generator pointed at someone else's server is an attack.
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--url %q: want http(s)://host:port", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--url %q: the load tool only drives loopback servers (127.0.0.1, ::1, localhost)", raw)
}

// Result is what one run measured.
type Result struct {
	Workload    Workload `json:"workload"`
	Target      string   `json:"target"` // "audit-stream" or "baseline"
	Producers   int      `json:"producers"`
	BatchSize   int      `json:"batch_size,omitempty"`
	Subscribers int      `json:"subscribers,omitempty"`
	Seconds     float64  `json:"seconds"`
	Requests    int64    `json:"requests"`
	Errors      int64    `json:"errors"`
	// Events is events appended (append, batch, fanout), returned
	// (query) or checked (verify); 0 for proofs.
	Events         int64   `json:"events"`
	RequestsPerSec float64 `json:"requests_per_sec"`
	EventsPerSec   float64 `json:"events_per_sec"`
	Latency        Latency `json:"latency"`
	// Fan-out only: events each subscriber received per second (the
	// slowest and the mean) and the p99 delay from a producer sending an
	// event to a subscriber receiving it.
	DeliveredPerSubMin  float64 `json:"delivered_per_subscriber_min,omitempty"`
	DeliveredPerSubMean float64 `json:"delivered_per_subscriber_mean,omitempty"`
	LagP50              float64 `json:"lag_p50_ms,omitempty"`
	LagP99              float64 `json:"lag_p99_ms,omitempty"`
	// SubscriberProcess reports that the subscribers ran in a process of
	// their own (Options.Exec).
	SubscriberProcess bool `json:"subscriber_process,omitempty"`
	// AloneEventsPerSec is the same producers' rate with no subscriber,
	// measured just before, and ProducerRatio this run's rate over it.
	AloneEventsPerSec float64  `json:"alone_events_per_sec,omitempty"`
	AloneLatency      *Latency `json:"alone_latency,omitempty"`
	ProducerRatio     float64  `json:"producer_ratio,omitempty"`
	// Rate is the paced producers' target in events/s (0: unpaced).
	Rate int `json:"rate,omitempty"`
	// HeapMaxMB is the largest heap the server's /metrics reported
	// during the run (go_memstats_heap_alloc_bytes), in MiB.
	HeapMaxMB float64 `json:"server_heap_max_mib,omitempty"`
	// CPU seconds the load tool's process used during the run (with no
	// --url, the server's too) and, for the fan-out, the subscriber
	// process's: with the run's length they say how the cores were shared.
	CPUSeconds           float64 `json:"cpu_seconds,omitempty"`
	SubscriberCPUSeconds float64 `json:"subscriber_cpu_seconds,omitempty"`
	// ServerCPUSeconds is the server process's CPU during the run, from
	// its /metrics (the same process as the tool's without --url).
	ServerCPUSeconds float64 `json:"server_cpu_seconds,omitempty"`
	// FirstError is the first failed request, if any.
	FirstError string `json:"first_error,omitempty"`
}

// httpClient is a client with a connection per producer, kept alive, as a
// real producer pool would be.
func httpClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		DisableCompression:  true,
		IdleConnTimeout:     90 * time.Second,
	}, Timeout: requestTimeout}
}

// requestTimeout bounds one request, so that a stalled server ends a run
// with errors rather than hanging it. /verify of a large log is the
// slowest request: minutes at 100,000,000 events.
const requestTimeout = 10 * time.Minute

// requestFunc sends worker w's i-th request and returns how many events it
// carried (or returned, or checked).
type requestFunc func(ctx context.Context, w int, i int64) (events int64, err error)

// loop runs fn from n workers for d (or until ctx ends) and measures it.
func loop(ctx context.Context, name string, n int, d time.Duration, progress io.Writer, fn requestFunc) Result {
	return pacedLoop(ctx, name, n, d, 0, progress, fn)
}

// pacedLoop is loop with each worker starting a request every period at
// most (0: as soon as the last one is answered). A worker that falls behind
// its schedule sends at once; latency counts from the send.
func pacedLoop(ctx context.Context, name string, n int, d, period time.Duration, progress io.Writer, fn requestFunc) Result {
	// Requests in flight at the deadline finish and count: cutting them
	// off would make the server log write errors and the last latencies
	// meaningless. Only ctx (an interrupt) cancels them.
	deadline := time.Now().Add(d)
	var reqs, events, errs atomic.Int64
	var firstErr atomic.Value
	hists := make([]histogram, n)
	var wg sync.WaitGroup
	start := time.Now()
	stopProgress := startProgress(progress, name, start, d, &reqs, &events)
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := &hists[w]
			next := time.Now().Add(time.Duration(rand.Int64N(int64(period) + 1))) // spread the workers
			// Every worker sends at least once, however late it starts:
			// on a loaded machine a short run's deadline can pass before
			// a worker runs, and a run of no request would measure
			// nothing and hide a server that refuses every one.
			for i := int64(0); ctx.Err() == nil && (i == 0 || time.Now().Before(deadline)); i++ {
				if period > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(time.Until(next)):
					}
					next = next.Add(period)
				}
				t0 := time.Now()
				ev, err := fn(ctx, w, i)
				if err != nil {
					if ctx.Err() != nil {
						return // interrupted: not the server's error
					}
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				h.record(time.Since(t0))
				reqs.Add(1)
				events.Add(ev)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()
	var all histogram
	for i := range hists {
		all.merge(&hists[i])
	}
	r := Result{
		Workload: Workload(name), Producers: n, Seconds: elapsed.Seconds(),
		Requests: reqs.Load(), Events: events.Load(), Errors: errs.Load(),
		Latency: all.summary(),
	}
	r.RequestsPerSec = float64(r.Requests) / r.Seconds
	r.EventsPerSec = float64(r.Events) / r.Seconds
	if s, ok := firstErr.Load().(string); ok {
		r.FirstError = s
	}
	return r
}

// startProgress prints "\r<name> 3.0/10s  12,345 req  4,115 req/s" to w
// every second until the returned function is called.
func startProgress(w io.Writer, name string, start time.Time, d time.Duration, reqs, events *atomic.Int64) func() {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var lastReqs, lastEvents int64
		last := start
		for {
			select {
			case <-done:
				fmt.Fprintf(w, "\r\033[K")
				return
			case now := <-t.C:
				r, e := reqs.Load(), events.Load()
				dt := now.Sub(last).Seconds()
				of := ""
				if d > 0 {
					of = fmt.Sprintf("/%.0f", d.Seconds())
				}
				fmt.Fprintf(w, "\r\033[K%s %.0f%ss  %d requests  %.0f req/s  %.0f events/s",
					name, now.Sub(start).Seconds(), of, r, float64(r-lastReqs)/dt, float64(e-lastEvents)/dt)
				lastReqs, lastEvents, last = r, e, now
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// statusError is an answer with an unexpected status.
type statusError struct {
	status int
	body   string
}

func (e *statusError) Error() string { return fmt.Sprintf("status %d: %s", e.status, e.body) }

// do sends req and reads the whole answer, failing unless it has status
// want.
func do(c *http.Client, req *http.Request, want int) ([]byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		if len(body) > 200 {
			body = body[:200]
		}
		return nil, &statusError{resp.StatusCode, string(body)}
	}
	return body, nil
}

var errNoURL = errors.New("loadgen: no server URL")
