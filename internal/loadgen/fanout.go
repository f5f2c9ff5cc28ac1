package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/audit-stream/audit-stream/internal/cputime"
)

// fanoutSource marks the fan-out run's events, so subscribers count only
// those even on a server that others append to.
const fanoutSource = "loadgen-fanout"

// fanout measures what subscribers cost producers. The producers first
// append alone for opt.Duration, then again for opt.Duration while
// opt.Subscribers follow /stream from a process of their own; the result
// is the second phase, with the first one's rate beside it. Each event
// carries the time it was sent; a subscriber's lag is the time from then
// until its read returned the event. The server's heap is sampled from its
// /metrics during both phases.
func fanout(ctx context.Context, t *target, opt Options) (Result, error) {
	c, err := t.client()
	if err != nil {
		return Result{}, err
	}
	produce := func(name string) Result {
		var period time.Duration
		if opt.Rate > 0 {
			period = time.Duration(float64(time.Second) * float64(opt.Producers) / float64(opt.Rate))
		}
		return pacedLoop(ctx, name, opt.Producers, opt.Duration, period, opt.Progress,
			func(ctx context.Context, w int, i int64) (int64, error) {
				body := fmt.Appendf(nil, `{"kind":"other","source":%q,"payload":{"at":"%d","i":%d,"producer":%d}}`,
					fanoutSource, time.Now().UnixNano(), i, w)
				_, err := do(t.hc, t.request(ctx, http.MethodPost, "/events", body), http.StatusCreated)
				return 1, err
			})
	}
	heap := sampleMetrics(ctx, t, heapSeries)
	alone := produce("fanout (no subscribers)")
	aloneHeap := heap()
	if ctx.Err() != nil || opt.Subscribers == 0 {
		alone.Workload = Fanout
		alone.HeapMaxMB = aloneHeap[heapSeries] / (1 << 20)
		return alone, ctx.Err()
	}

	st, err := c.Stats(ctx)
	if err != nil {
		return Result{}, err
	}
	subs, err := startSubscribers(ctx, opt, st.LastEventID)
	if err != nil {
		return Result{}, err
	}
	heap = sampleMetrics(ctx, t, heapSeries)
	cpu := cputime.Used()
	before, _ := scrape(ctx, t, cpuSeries)
	r := produce(string(Fanout))
	r.CPUSeconds = (cputime.Used() - cpu).Seconds()
	if after, err := scrape(ctx, t, cpuSeries); err == nil {
		r.ServerCPUSeconds = after[cpuSeries] - before[cpuSeries]
	}
	withHeap := heap()
	rep, err := subs.finish(r.Events)
	if err != nil {
		return Result{}, fmt.Errorf("fanout: %w", err)
	}
	r.Subscribers = opt.Subscribers
	r.SubscriberProcess = len(opt.Exec) > 0
	r.AloneEventsPerSec, r.AloneLatency, r.Rate = alone.EventsPerSec, &alone.Latency, opt.Rate
	if alone.EventsPerSec > 0 {
		r.ProducerRatio = r.EventsPerSec / alone.EventsPerSec
	}
	r.HeapMaxMB = max(aloneHeap[heapSeries], withHeap[heapSeries]) / (1 << 20)
	r.DeliveredPerSubMin = float64(rep.GotMin) / r.Seconds
	r.DeliveredPerSubMean = float64(rep.GotTotal) / float64(rep.Subscribers) / r.Seconds
	r.LagP50, r.LagP99 = rep.Lag.P50, rep.Lag.P99
	r.SubscriberCPUSeconds = rep.CPUSeconds
	if rep.FirstError != "" {
		return r, fmt.Errorf("fanout: a subscriber failed: %s", rep.FirstError)
	}
	return r, nil
}

// sentAt finds the send time the load tool's producers put first in a
// payload ({"at":"<unix nanos>", …}; "at" sorts first in canonical JSON
// too) without decoding the event. The key starts with '{', rare in an
// event's JSON: one starting with '"' made the search stop at every quote,
// and the subscriber process spent 40% of its CPU there.
func sentAt(payload []byte) (int64, bool) {
	const key = `{"at":"`
	i := bytes.Index(payload, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := payload[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return n, err == nil
}
