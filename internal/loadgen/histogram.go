package loadgen

import (
	"math/bits"
	"time"
)

// histogram records latencies in fixed log-linear buckets (32 per power of
// two, so a percentile is within about 3% of the true value) so a long run
// needs no memory proportional to its requests. Each worker owns one;
// they are merged at the end, so recording takes no lock.
type histogram struct {
	counts [2048]int64
	n      int64
	max    time.Duration
}

func bucketOf(d time.Duration) int {
	v := uint64(max(d, 0)) >> 10 // ~µs resolution
	if v < 64 {
		return int(v)
	}
	e := bits.Len64(v) - 6 // v>>e is in [32, 64)
	return e*32 + int(v>>e)
}

// bucketValue is the middle of bucket i.
func bucketValue(i int) time.Duration {
	if i < 64 {
		return time.Duration(uint64(i)<<10 + 512)
	}
	e := i/32 - 1
	m := uint64(i - e*32)
	return time.Duration((m<<e + (m+1)<<e) / 2 << 10)
}

func (h *histogram) record(d time.Duration) {
	h.counts[bucketOf(d)]++
	h.n++
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the latency below which a fraction q of the samples lie.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q >= 1 {
		return h.max
	}
	rank := int64(q*float64(h.n-1)) + 1
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(bucketValue(i), h.max)
		}
	}
	return h.max
}

// Latency is a summary of a histogram, in milliseconds.
type Latency struct {
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (h *histogram) summary() Latency {
	return Latency{P50: ms(h.quantile(0.50)), P99: ms(h.quantile(0.99)), Max: ms(h.max)}
}
