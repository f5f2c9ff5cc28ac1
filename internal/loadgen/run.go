package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/audit-stream/audit-stream/client"
)

// target is a server and the client that drives it.
type target struct {
	base  string
	token string
	hc    *http.Client
}

func newTarget(base, token string, conns int) *target {
	return &target{base: strings.TrimSuffix(base, "/"), token: token, hc: httpClient(conns)}
}

func (t *target) request(ctx context.Context, method, path string, body []byte) *http.Request {
	var rd *bytes.Reader
	var req *http.Request
	if body != nil {
		rd = bytes.NewReader(body)
		req, _ = http.NewRequestWithContext(ctx, method, t.base+path, rd)
		// The server refuses an append with another type (415).
		req.Header.Set("Content-Type", "application/json")
	} else {
		req, _ = http.NewRequestWithContext(ctx, method, t.base+path, nil)
	}
	if t.token != "" {
		req.Header.Set("Authorization", "Bearer "+t.token)
	}
	return req
}

func (t *target) client() (*client.Client, error) {
	opts := []client.Option{client.WithHTTPClient(t.hc)}
	if t.token != "" {
		opts = append(opts, client.WithToken(t.token))
	}
	return client.New(t.base, opts...)
}

// Run measures workload w against the server at opt.URL.
func Run(ctx context.Context, w Workload, opt Options) (Result, error) {
	if err := opt.Check(w); err != nil {
		return Result{}, err
	}
	if opt.URL == "" {
		return Result{}, errNoURL
	}
	t := newTarget(opt.URL, opt.Token, opt.Producers+opt.Subscribers+1)
	defer t.hc.CloseIdleConnections()
	var r Result
	var err error
	var heap func() map[string]float64 // the server's, while measuring
	switch w {
	case Append:
		heap = sampleMetrics(ctx, t, heapSeries)
		r = loop(ctx, string(w), opt.Producers, opt.Duration, opt.Progress, appendFn(t, "/events", Bodies(1024), 1))
	case Batch:
		heap = sampleMetrics(ctx, t, heapSeries)
		r = loop(ctx, string(w), opt.Producers, opt.Duration, opt.Progress, appendFn(t, "/events/batch", BatchBodies(8, opt.BatchSize), int64(opt.BatchSize)))
		r.BatchSize = opt.BatchSize
	case Fanout:
		r, err = fanout(ctx, t, opt)
	case Query, Proof, Verify:
		if err = fill(ctx, t, opt); err != nil {
			return Result{}, err
		}
		var fn requestFunc
		if fn, err = readFn(ctx, t, w); err != nil {
			return Result{}, err
		}
		heap = sampleMetrics(ctx, t, heapSeries)
		r = loop(ctx, string(w), opt.Producers, opt.Duration, opt.Progress, fn)
	}
	if heap != nil {
		r.HeapMaxMB = heap()[heapSeries] / (1 << 20)
	}
	if err != nil {
		return Result{}, err
	}
	r.Target = "audit-stream"
	if r.Requests == 0 && r.FirstError != "" {
		return r, fmt.Errorf("%s: no request succeeded; first error: %s", w, r.FirstError)
	}
	return r, ctx.Err()
}

// RunBaseline measures the same client against BareHandler: batches for
// the batch workload, single appends for every other one.
func RunBaseline(ctx context.Context, w Workload, opt Options) (Result, error) {
	if err := opt.Check(w); err != nil {
		return Result{}, err
	}
	url, stop, err := StartBaseline()
	if err != nil {
		return Result{}, err
	}
	defer stop()
	t := newTarget(url, "", opt.Producers)
	defer t.hc.CloseIdleConnections()
	var r Result
	if w == Batch {
		r = loop(ctx, "baseline", opt.Producers, opt.Duration, opt.Progress, appendFn(t, "/events/batch", BatchBodies(8, opt.BatchSize), int64(opt.BatchSize)))
		r.BatchSize = opt.BatchSize
	} else {
		r = loop(ctx, "baseline", opt.Producers, opt.Duration, opt.Progress, appendFn(t, "/events", Bodies(1024), 1))
	}
	r.Workload, r.Target = Append, "baseline"
	if w == Batch {
		r.Workload = Batch
	}
	if r.Requests == 0 && r.FirstError != "" {
		return r, fmt.Errorf("baseline: no request succeeded; first error: %s", r.FirstError)
	}
	return r, ctx.Err()
}

// Ratio is r's rate over the baseline's: events/s for appends, requests/s
// for reads (the baseline then being the client's single-append ceiling).
func Ratio(r, baseline Result) float64 {
	switch r.Workload {
	case Append, Batch, Fanout:
		if baseline.EventsPerSec > 0 {
			return r.EventsPerSec / baseline.EventsPerSec
		}
	default:
		if baseline.RequestsPerSec > 0 {
			return r.RequestsPerSec / baseline.RequestsPerSec
		}
	}
	return 0
}

func appendFn(t *target, path string, bodies [][]byte, events int64) requestFunc {
	return func(ctx context.Context, w int, i int64) (int64, error) {
		body := bodies[(int64(w)*31+i)%int64(len(bodies))]
		_, err := do(t.hc, t.request(ctx, http.MethodPost, path, body), http.StatusCreated)
		return events, err
	}
}

// fill appends batches of 1,000 until the log holds opt.Fill events.
func fill(ctx context.Context, t *target, opt Options) error {
	c, err := t.client()
	if err != nil {
		return err
	}
	st, err := c.Stats(ctx)
	if err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	missing := int64(opt.Fill) - st.Count
	if missing <= 0 {
		return nil
	}
	const size = 1000
	batches := (missing + size - 1) / size
	bodies := BatchBodies(8, size)
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next, done atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	stopProgress := startProgress(opt.Progress, "fill", time.Now(), 0, &done, new(atomic.Int64))
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < batches && fctx.Err() == nil; i = next.Add(1) - 1 {
				req := t.request(fctx, http.MethodPost, "/events/batch", bodies[i%int64(len(bodies))])
				if _, err := do(t.hc, req, http.StatusCreated); err != nil {
					once.Do(func() { firstErr = err })
					cancel()
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	stopProgress()
	if firstErr != nil && ctx.Err() == nil {
		return fmt.Errorf("fill: %w", firstErr)
	}
	return ctx.Err()
}

// readFn returns the request of a read workload on a filled log.
func readFn(ctx context.Context, t *target, w Workload) (requestFunc, error) {
	c, err := t.client()
	if err != nil {
		return nil, err
	}
	switch w {
	case Query:
		return func(ctx context.Context, _ int, i int64) (int64, error) {
			path := "/events?limit=100&kind=" + SampleKinds[i%int64(len(SampleKinds))]
			body, err := do(t.hc, t.request(ctx, http.MethodGet, path, nil), http.StatusOK)
			if err != nil {
				return 0, err
			}
			var evs []json.RawMessage
			if err := json.Unmarshal(body, &evs); err != nil {
				return 0, err
			}
			return int64(len(evs)), nil
		}, nil
	case Proof:
		size, err := checkpointSize(ctx, t, c)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, _ int, _ int64) (int64, error) {
			path := "/events/" + strconv.FormatInt(1+rand.Int64N(size), 10) + "/proof"
			_, err := do(t.hc, t.request(ctx, http.MethodGet, path, nil), http.StatusOK)
			return 0, err
		}, nil
	default: // Verify
		return func(ctx context.Context, _ int, _ int64) (int64, error) {
			rep, err := c.Verify(ctx)
			if err != nil {
				return 0, err
			}
			if !rep.Valid {
				return 0, fmt.Errorf("verify: the chain is broken: %+v", rep)
			}
			return rep.Checked, nil
		}, nil
	}
}

// checkpointSize waits (up to 30 s) for the signed checkpoint to cover the
// whole log, so every proof asked for exists, and returns its size.
func checkpointSize(ctx context.Context, t *target, c *client.Client) (int64, error) {
	st, err := c.Stats(ctx)
	if err != nil {
		return 0, err
	}
	if st.Count == 0 {
		return 0, errors.New("proof: the log is empty; use --fill")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		body, err := do(t.hc, t.request(ctx, http.MethodGet, "/checkpoint", nil), http.StatusOK)
		if err != nil {
			return 0, fmt.Errorf("proof: GET /checkpoint: %w", err)
		}
		// A C2SP checkpoint's second line is the tree size.
		lines := strings.SplitN(string(body), "\n", 3)
		if len(lines) < 3 {
			return 0, fmt.Errorf("proof: GET /checkpoint: not a checkpoint: %q", body)
		}
		size, err := strconv.ParseInt(lines[1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proof: GET /checkpoint: bad size %q", lines[1])
		}
		if size >= st.Count || time.Now().After(deadline) {
			if size == 0 {
				return 0, errors.New("proof: no checkpoint covers any event yet")
			}
			return size, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
