package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/client"
	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/httpapi"
)

// collector runs a Tail in the background and keeps what it yields.
type collector struct {
	mu      sync.Mutex
	ids     []int64
	err     error
	retries []error
	done    chan struct{}
}

func startTail(t testing.TB, ctx context.Context, c *client.Client, opt client.TailOptions) *collector {
	col := &collector{done: make(chan struct{})}
	opt.OnRetry = func(err error, wait time.Duration) {
		col.mu.Lock()
		col.retries = append(col.retries, err)
		col.mu.Unlock()
	}
	go func() {
		defer close(col.done)
		for ev, err := range c.Tail(ctx, opt) {
			col.mu.Lock()
			if err != nil {
				col.err = err
			} else {
				if h, _ := ev.ComputeHash(nil); h != ev.Hash {
					col.err = fmt.Errorf("event %d does not re-hash", ev.ID)
				}
				col.ids = append(col.ids, ev.ID)
			}
			col.mu.Unlock()
		}
	}()
	return col
}

// waitFor waits until the tail has yielded n events.
func (col *collector) waitFor(t testing.TB, n int) []int64 {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		col.mu.Lock()
		ids, err, retries := slices.Clone(col.ids), col.err, slices.Clone(col.retries)
		col.mu.Unlock()
		if err != nil {
			t.Fatalf("tail failed after %d events: %v", len(ids), err)
		}
		if len(ids) >= n {
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("tail has %d of %d events; %d reconnects, the last ones: %v", len(ids), n, len(retries), retries[max(0, len(retries)-5):])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func seq(from, to int64) []int64 {
	var s []int64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func fastRetry(opt client.TailOptions) client.TailOptions {
	opt.MinBackoff, opt.MaxBackoff = 10*time.Millisecond, 200*time.Millisecond
	return opt
}

// producer appends until stop, riding out server restarts.
func producer(c *client.Client, stop <-chan struct{}, acked *atomic.Int64) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.Append(ctx, client.AppendRequest{Kind: "other", Source: "producer"})
		cancel()
		if err != nil {
			time.Sleep(10 * time.Millisecond) // the server is restarting
			continue
		}
		acked.Add(1)
	}
}

// The tail survives graceful restarts of the server, on the same address
// and data, while producers keep appending: nothing lost, nothing repeated.
func TestTailAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	env := apitest.Start(t, apitest.Options{Dir: dir})
	addr := env.HTTP.Listener.Addr().String()
	c := newClient(t, env.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	zero := int64(0)
	col := startTail(t, ctx, c, fastRetry(client.TailOptions{After: &zero}))

	var acked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { producer(c, stop, &acked) })
	}
	for range 3 {
		time.Sleep(150 * time.Millisecond)
		env.Stop()
		time.Sleep(50 * time.Millisecond)
		env = apitest.Start(t, apitest.Options{Dir: dir, Addr: addr})
	}
	time.Sleep(150 * time.Millisecond)
	close(stop)
	wg.Wait()
	head := env.Ledger.Head().ID
	if head < acked.Load() || acked.Load() == 0 {
		t.Fatalf("head %d, acknowledged %d", head, acked.Load())
	}
	if got := col.waitFor(t, int(head)); !slices.Equal(got, seq(1, head)) {
		t.Fatalf("tail yielded %d events, not exactly 1..%d", len(got), head)
	}
	col.mu.Lock()
	t.Logf("%d events, %d reconnects", head, len(col.retries))
	if len(col.retries) < 3 {
		t.Errorf("only %d reconnects across 3 restarts", len(col.retries))
	}
	col.mu.Unlock()
	// Nothing more arrives.
	time.Sleep(50 * time.Millisecond)
	if got := col.waitFor(t, 0); len(got) != int(head) {
		t.Fatalf("%d events after the end, want %d", len(got), head)
	}
}

// Tail from the head: only later events, and a disconnect before the first
// of them still resumes from where the tail started.
func TestTailFromHead(t *testing.T) {
	dir := t.TempDir()
	env := apitest.Start(t, apitest.Options{Dir: dir})
	addr := env.HTTP.Listener.Addr().String()
	c := newClient(t, env.URL)
	ctx := context.Background()
	for range 5 {
		c.Append(ctx, client.AppendRequest{Kind: "other", Source: "before"})
	}
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The first reconnect comes at least 250 ms after the disconnect: the
	// appends below happen before it.
	col := startTail(t, tctx, c, client.TailOptions{Sources: []string{"after"}, MinBackoff: 500 * time.Millisecond, MaxBackoff: time.Second})
	// Give the tail time to connect (it has nothing to yield yet), then
	// restart the server and append before the tail is back.
	time.Sleep(200 * time.Millisecond)
	env.Stop()
	env = apitest.Start(t, apitest.Options{Dir: dir, Addr: addr})
	for range 3 {
		if _, err := c.Append(ctx, client.AppendRequest{Kind: "other", Source: "after"}); err != nil {
			t.Fatal(err)
		}
	}
	if got := col.waitFor(t, 3); !slices.Equal(got, []int64{6, 7, 8}) {
		t.Fatalf("got %v", got)
	}
}

func TestTailFatalErrors(t *testing.T) {
	env := apitest.Start(t, apitest.Options{})
	c := newClient(t, env.URL)
	ctx := context.Background()
	c.Append(ctx, client.AppendRequest{Kind: "other", Source: "s"})
	ahead, neg := int64(5), int64(-1)
	for _, tc := range []struct {
		name   string
		opt    client.TailOptions
		status int
	}{
		{"unknown kind", client.TailOptions{Kinds: []string{"nope"}}, 422},
		{"empty source", client.TailOptions{Sources: []string{""}}, 422},
		{"ahead of the log", client.TailOptions{After: &ahead}, 400},
		{"negative after", client.TailOptions{After: &neg}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			var last error
			for _, err := range c.Tail(ctx, tc.opt) {
				n++
				last = err
			}
			var e *client.Error
			if n != 1 || last == nil {
				t.Fatalf("yielded %d values, last error %v", n, last)
			}
			if tc.status != 0 && (!errors.As(last, &e) || e.Status != tc.status || e.Detail == "") {
				t.Fatalf("got %v, want a %d *client.Error", last, tc.status)
			}
		})
	}
}

func TestTailContextAndBreak(t *testing.T) {
	env := apitest.Start(t, apitest.Options{API: httpapi.Options{MaxStreams: 1}})
	c := newClient(t, env.URL)
	ctx, cancel := context.WithCancel(context.Background())
	zero := int64(0)
	col := startTail(t, ctx, c, client.TailOptions{After: &zero})
	c.Append(context.Background(), client.AppendRequest{Kind: "other", Source: "s"})
	col.waitFor(t, 1)
	cancel()
	<-col.done
	if !errors.Is(col.err, context.Canceled) {
		t.Fatalf("ended with %v, want context.Canceled", col.err)
	}
	// Breaking out of the loop closes the stream: the only slot frees.
	for range 3 {
		for ev, err := range c.Tail(context.Background(), fastRetry(client.TailOptions{After: &zero})) {
			if err != nil || ev.ID != 1 {
				t.Fatalf("%+v %v", ev, err)
			}
			break
		}
	}
}

// At the stream limit the tail backs off (Retry-After capped by
// MaxBackoff) and gets in when a slot frees.
func TestTailStreamLimit(t *testing.T) {
	env := apitest.Start(t, apitest.Options{API: httpapi.Options{MaxStreams: 1}})
	c := newClient(t, env.URL)
	hold, cancelHold := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(hold, http.MethodGet, env.URL+"/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatal(resp, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	zero := int64(0)
	col := startTail(t, ctx, c, fastRetry(client.TailOptions{After: &zero}))
	deadline := time.Now().Add(10 * time.Second)
	for {
		col.mu.Lock()
		retries := slices.Clone(col.retries)
		col.mu.Unlock()
		n := len(retries)
		var e *client.Error
		if n > 1 && errors.As(retries[n-1], &e) && e.Status == 503 && e.RetryAfter > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 503 retries seen: %v", retries)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancelHold()
	resp.Body.Close()
	c.Append(context.Background(), client.AppendRequest{Kind: "other", Source: "s"})
	col.waitFor(t, 1)
}

// A connection on which nothing arrives for IdleTimeout is replaced; with
// the server's heartbeat shorter than it, none is. Either way the tail then
// gets every event.
func TestTailIdleTimeout(t *testing.T) {
	// tail follows a fresh server with the given heartbeat and idle
	// timeout, calls watch while the log is still empty, appends three
	// events that must arrive, and returns the reconnects seen.
	tail := func(heartbeat, idle time.Duration, watch func(col *collector)) []error {
		env := apitest.Start(t, apitest.Options{API: httpapi.Options{Heartbeat: heartbeat}})
		c := newClient(t, env.URL)
		ctx, cancel := context.WithCancel(context.Background())
		col := startTail(t, ctx, c, fastRetry(client.TailOptions{IdleTimeout: idle}))
		defer func() {
			cancel()
			<-col.done
		}()
		watch(col)
		for range 3 {
			if _, err := c.Append(context.Background(), client.AppendRequest{Kind: "other", Source: "s"}); err != nil {
				t.Fatal(err)
			}
		}
		if got := col.waitFor(t, 3); !slices.Equal(got, []int64{1, 2, 3}) {
			t.Fatalf("heartbeat %v, idle timeout %v: got %v", heartbeat, idle, got)
		}
		col.mu.Lock()
		defer col.mu.Unlock()
		return slices.Clone(col.retries)
	}

	// No heartbeat: the silent connection is replaced.
	tail(time.Hour, 300*time.Millisecond, func(col *collector) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			col.mu.Lock()
			retries := slices.Clone(col.retries)
			col.mu.Unlock()
			if len(retries) > 0 {
				if !strings.Contains(retries[0].Error(), "idle timeout") {
					t.Fatalf("no heartbeat: reconnected for %v, want the idle timeout", retries[0])
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("no heartbeat: the silent connection was never replaced")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	// A heartbeat every 20 ms: no reconnect while watching for twice the
	// idle timeout. A loaded machine can hold one back past a short idle
	// timeout, so a reconnect is tried again with a longer one; a client
	// that did not count heartbeats as data reconnects in every attempt.
	var seen [][]error
	for _, idle := range []time.Duration{300 * time.Millisecond, time.Second, 3 * time.Second} {
		retries := tail(20*time.Millisecond, idle, func(*collector) { time.Sleep(2 * idle) })
		if len(retries) == 0 {
			if len(seen) > 0 {
				t.Logf("heartbeat 20ms: reconnects with shorter idle timeouts first: %v", seen)
			}
			return
		}
		seen = append(seen, retries)
	}
	t.Fatalf("heartbeat 20ms: reconnects with every idle timeout tried: %v", seen)
}
