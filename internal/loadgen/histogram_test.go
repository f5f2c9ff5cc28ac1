package loadgen

import (
	"testing"
	"time"
)

// Percentiles from the buckets stay within the promised 3% of the exact
// ones, and the max is exact.
func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * 10 * time.Microsecond) // 10 µs .. 100 ms
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {0.01, 1 * time.Millisecond}} {
		got := h.quantile(tc.q)
		if diff := float64(got-tc.want) / float64(tc.want); diff < -0.03 || diff > 0.03 {
			t.Errorf("q%.2f = %v, want %v ± 3%%", tc.q, got, tc.want)
		}
	}
	if h.max != 100*time.Millisecond || h.n != 10000 {
		t.Fatalf("max %v n %d", h.max, h.n)
	}
	var other histogram
	other.record(2 * time.Second)
	h.merge(&other)
	if h.quantile(1) != 2*time.Second || h.n != 10001 {
		t.Fatalf("after merge: q1 %v n %d", h.quantile(1), h.n)
	}
	var empty histogram
	if empty.quantile(0.5) != 0 {
		t.Fatal("empty histogram")
	}
}

func TestCheckLoopback(t *testing.T) {
	for url, ok := range map[string]bool{
		"http://127.0.0.1:8093": true, "https://localhost": true, "http://[::1]:1/prefix": true, "http://127.3.4.5": true,
		"http://10.0.0.1:8093": false, "http://example.com": false, "ftp://127.0.0.1": false, "127.0.0.1:80": false, "http://": false,
	} {
		if err := CheckLoopback(url); (err == nil) != ok {
			t.Errorf("%s: %v", url, err)
		}
	}
}
