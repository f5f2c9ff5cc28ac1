package httpapi_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/apitest"
)

// BenchmarkProofs1M measures inclusion and consistency proofs through HTTP
// (real listener, real SQLite file) on a log of 1,000,000 events, and
// reports the p50 and p99 latency of each. The log is built once by
// apitest.BenchDir; it only runs with -bench.
func BenchmarkProofs1M(b *testing.B) {
	const n = 1_000_000
	dir := apitest.BenchDir(b, n)
	env := apitest.Start(b, apitest.Options{Dir: dir})
	if env.Checkpoints.Latest().Size != n {
		b.Fatalf("checkpoint covers %d", env.Checkpoints.Latest().Size)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	r := rand.New(rand.NewPCG(7, 8))
	for _, kind := range []string{"inclusion", "consistency"} {
		b.Run(kind, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var url string
				if kind == "inclusion" {
					url = fmt.Sprintf("%s/events/%d/proof", env.URL, 1+r.Int64N(n))
				} else {
					url = fmt.Sprintf("%s/proof/consistency?from=%d", env.URL, 1+r.Int64N(n-1))
				}
				t0 := time.Now()
				resp, err := client.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("GET %s: %s", url, resp.Status)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
