package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Series of the server's /metrics (Prometheus text format) the tool samples.
const (
	heapSeries       = "go_memstats_heap_alloc_bytes"
	rssSeries        = "process_resident_memory_bytes"
	fdSeries         = "process_open_fds"
	cpuSeries        = "process_cpu_seconds_total"
	goroutineSeries  = "go_goroutines"
	streamsSeries    = "audit_stream_streams_open"
	metricsInterval  = 500 * time.Millisecond
	metricsBodyLimit = 8 << 20
)

// scrape reads the named unlabelled series from the server's /metrics;
// a series the server does not export is absent from the map.
func scrape(ctx context.Context, t *target, names ...string) (map[string]float64, error) {
	body, err := do(t.hc, t.request(ctx, http.MethodGet, "/metrics", nil), http.StatusOK)
	if err != nil {
		return nil, err
	}
	out := make(map[string]float64, len(names))
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, metricsBodyLimit)
	for sc.Scan() {
		name, value, ok := bytes.Cut(sc.Bytes(), []byte{' '})
		if !ok {
			continue
		}
		for _, n := range names {
			if string(name) == n {
				if v, err := strconv.ParseFloat(string(value), 64); err == nil {
					out[n] = v
				}
			}
		}
	}
	return out, sc.Err()
}

// sampleMetrics scrapes the named series every metricsInterval until the
// returned function is called, which returns the largest value of each.
// A failed scrape is skipped: the figures are a side measurement.
func sampleMetrics(ctx context.Context, t *target, names ...string) func() map[string]float64 {
	ctx, cancel := context.WithCancel(ctx)
	peak := map[string]float64{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(metricsInterval)
		defer tick.Stop()
		for {
			if m, err := scrape(ctx, t, names...); err == nil {
				for k, v := range m {
					peak[k] = max(peak[k], v)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() map[string]float64 {
		cancel()
		wg.Wait()
		return peak
	}
}
