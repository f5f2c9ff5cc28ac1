package bench

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/cputime"
	"github.com/audit-stream/audit-stream/internal/loadgen"
)

var producerCounts = []int{1, 16, 64}

// bodies are pre-encoded request bodies, so the load generator spends as
// little as possible of the shared CPU.
func bodies(n int) [][]byte { return loadgen.Bodies(n) }

func loadClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		DisableCompression:  true,
	}}
}

// drive sends b.N POSTs from producers concurrent clients, each waiting for
// its answer before sending the next, and reports requests/s.
func drive(b *testing.B, url string, producers int, want int) {
	c := loadClient(producers)
	body := bodies(1024)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	cpu := cputime.Start()
	for range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				resp, err := c.Post(url, "application/json", bytes.NewReader(body[i%int64(len(body))]))
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	// CPU per request covers the server and the load generator alike.
	b.ReportMetric(cpu.PerOp(b.N), "cpu-µs/req")
}

// BenchmarkAppendHTTP is durable single-event appends over HTTP: each 201
// means the event is committed and fsynced. Compare with BenchmarkBareHandler
// from the same run.
func BenchmarkAppendHTTP(b *testing.B) {
	for _, p := range producerCounts {
		b.Run(fmt.Sprintf("producers=%d", p), func(b *testing.B) {
			env := apitest.Start(b, apitest.Options{})
			tx0, ev0 := env.Ledger.Commits()
			drive(b, env.URL+"/events", p, http.StatusCreated)
			// The group-commit size: how many events one fsync carried.
			tx, ev := env.Ledger.Commits()
			b.ReportMetric(float64(ev-ev0)/float64(max(tx-tx0, 1)), "events/commit")
		})
	}
}

// BenchmarkBareHandler is the baseline: a bare net/http handler that decodes
// the same JSON body and answers a small JSON object, with no storage
// (loadgen.BareHandler, the baseline of audit-stream bench too).
func BenchmarkBareHandler(b *testing.B) {
	h := loadgen.BareHandler()
	for _, p := range producerCounts {
		b.Run(fmt.Sprintf("producers=%d", p), func(b *testing.B) {
			srv := httptest.NewServer(h)
			defer srv.Close()
			drive(b, srv.URL, p, http.StatusCreated)
		})
	}
}
