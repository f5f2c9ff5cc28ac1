package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/checkpoint"
	"github.com/audit-stream/audit-stream/internal/cputime"
	"github.com/audit-stream/audit-stream/internal/pgtest"
)

// cluster starts n in-process instances on one fresh PostgreSQL schema
// (AUDIT_STREAM_TEST_POSTGRES), signing with one key.
func cluster(b *testing.B, n int) []*apitest.Env {
	url := pgtest.Schema(b)
	_, key, err := checkpoint.GenerateKey("audit-stream/test")
	if err != nil {
		b.Fatal(err)
	}
	var envs []*apitest.Env
	for range n {
		envs = append(envs, apitest.Start(b, apitest.Options{Store: url, Key: key}))
	}
	return envs
}

// reportGroups reports the group commit the instances achieved: events per
// transaction, over all of them.
func reportGroups(b *testing.B, envs []*apitest.Env) {
	var txs, events int64
	for _, e := range envs {
		t, n := e.Ledger.Commits()
		txs, events = txs+t, events+n
	}
	if txs > 0 {
		b.ReportMetric(float64(events)/float64(txs), "events/commit")
	}
}

// driveMany is drive with the producers spread over several instances and
// a body per request from body(i).
func driveMany(b *testing.B, urls []string, producers, perReq int, body func(i int64) []byte) {
	c := loadClient(producers)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	cpu := cputime.Start()
	for p := range producers {
		wg.Go(func() {
			url := urls[p%len(urls)]
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				resp, err := c.Post(url, "application/json", bytes.NewReader(body(i)))
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N*perReq)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(cpu.PerOp(b.N*perReq), "cpu-µs/event")
}

// BenchmarkClusterAppend is durable appends with 1, 2 and 3 instances
// sharing one PostgreSQL database, 64 producers spread over them, single
// events and batches of 1,000 (4 clients); sqlite is the single-machine
// store in the same run, for the ratio.
func BenchmarkClusterAppend(b *testing.B) {
	single := bodies(1024)
	var batch []byte
	{
		var sb strings.Builder
		sb.WriteByte('[')
		for i, s := range bodies(1000) {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.Write(s)
		}
		sb.WriteByte(']')
		batch = []byte(sb.String())
	}
	for _, n := range []int{0, 1, 2, 3} {
		name := fmt.Sprintf("postgres-instances=%d", n)
		start := func(b *testing.B) []*apitest.Env { return cluster(b, n) }
		if n == 0 {
			name = "sqlite"
			start = func(b *testing.B) []*apitest.Env { return []*apitest.Env{apitest.Start(b, apitest.Options{})} }
		}
		b.Run(name+"/single-producers=64", func(b *testing.B) {
			envs := start(b)
			var urls []string
			for _, e := range envs {
				urls = append(urls, e.URL+"/events")
			}
			driveMany(b, urls, 64, 1, func(i int64) []byte { return single[i%int64(len(single))] })
			reportGroups(b, envs)
		})
		b.Run(name+"/batch1000-clients=4", func(b *testing.B) {
			envs := start(b)
			var urls []string
			for _, e := range envs {
				urls = append(urls, e.URL+"/events/batch")
			}
			driveMany(b, urls, 4, 1000, func(int64) []byte { return batch })
			reportGroups(b, envs)
		})
	}
}

// BenchmarkClusterLag is how long after its 201 from instance A an event
// reaches a subscriber of instance B, with 16 producers appending to A.
func BenchmarkClusterLag(b *testing.B) {
	var urls []string
	for _, e := range cluster(b, 2) {
		urls = append(urls, e.URL)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var acked sync.Map // event id -> time of the 201
	type arrival struct {
		id int64
		at time.Time
	}
	arrivals := make(chan arrival, 1<<20)
	req, _ := http.NewRequestWithContext(ctx, "GET", urls[1]+"/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if id, ok := bytes.CutPrefix(sc.Bytes(), []byte("id: ")); ok {
				var n int64
				fmt.Sscan(string(id), &n)
				arrivals <- arrival{n, time.Now()}
			}
		}
	}()
	c := loadClient(16)
	body := bodies(1024)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range 16 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				resp, err := c.Post(urls[0]+"/events", "application/json", bytes.NewReader(body[i%1024]))
				if err != nil {
					b.Error(err)
					return
				}
				var a struct {
					ID int64 `json:"event_id"`
				}
				json.NewDecoder(resp.Body).Decode(&a)
				resp.Body.Close()
				acked.Store(a.ID, time.Now())
			}
		})
	}
	wg.Wait()
	var lags []time.Duration
	timeout := time.After(30 * time.Second)
	for len(lags) < b.N {
		select {
		case a := <-arrivals:
			if a.id == 0 {
				continue // the stream's opening position
			}
			for {
				if t, ok := acked.Load(a.id); ok {
					// An arrival before the 201 is read counts as no lag.
					lags = append(lags, max(0, a.at.Sub(t.(time.Time))))
					break
				}
				time.Sleep(time.Millisecond)
			}
		case <-timeout:
			b.Fatalf("subscriber of B saw %d of %d events", len(lags), b.N)
		}
	}
	b.StopTimer()
	slices.Sort(lags)
	b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds())/1000, "p99-ms")
}
