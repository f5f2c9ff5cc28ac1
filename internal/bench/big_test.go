package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/cputime"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

// BenchmarkVerify1M re-walks and re-hashes the 1,000,000-event chain through
// GET /verify, and reports events/s.
func BenchmarkVerify1M(b *testing.B) {
	dir := bigStore(b)
	env := apitest.Start(b, apitest.Options{Dir: dir})
	b.ResetTimer()
	cpu := cputime.Start()
	for range b.N {
		resp, err := http.Get(env.URL + "/verify")
		if err != nil {
			b.Fatal(err)
		}
		var rep struct {
			Valid   bool  `json:"valid"`
			Checked int64 `json:"checked"`
		}
		json.NewDecoder(resp.Body).Decode(&rep)
		resp.Body.Close()
		if !rep.Valid || rep.Checked != bigSize {
			b.Fatalf("verify: %+v", rep)
		}
	}
	b.ReportMetric(float64(bigSize)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(cpu.PerOp(bigSize*b.N), "cpu-µs/event")
}

// BenchmarkQueryKind1M is GET /events?kind=…&limit=1000 on 1,000,000 events;
// it reports the median and p99 latency.
func BenchmarkQueryKind1M(b *testing.B) {
	env := apitest.Start(b, bigTarget(b))
	// One query per kind first: the latency we report is the steady state,
	// not the first read of each kind's pages from disk.
	for _, k := range benchKinds {
		resp, err := http.Get(env.URL + "/events?kind=" + k + "&limit=1000")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	cpu := cputime.Start()
	for i := range b.N {
		start := time.Now()
		resp, err := http.Get(env.URL + "/events?kind=" + benchKinds[i%len(benchKinds)] + "&limit=1000")
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n < 100000 {
			b.Fatalf("query: %d, %d bytes", resp.StatusCode, n)
		}
		lat = append(lat, time.Since(start))
	}
	reportLatency(b, lat, cpu)
}

// reportLatency reports the median and p99 of lat, and the process's CPU
// time per operation since cpu started (server and client together): on a
// shared machine the percentiles include waiting for a core, the CPU time
// does not.
func reportLatency(b *testing.B, lat []time.Duration, cpu cputime.Meter) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(cpu.PerOp(len(lat))/1000, "cpu-ms/op")
}

// BenchmarkStartup1M opens the 1,000,000-event store and its sequencer:
// start-up reads only the chain head and the tree's right edge.
func BenchmarkStartup1M(b *testing.B) {
	dir := bigStore(b)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		st, err := sqlite.Open(ctx, dir)
		if err != nil {
			b.Fatal(err)
		}
		led, err := ledger.Open(ctx, st, ledger.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if led.Head().ID != bigSize {
			b.Fatalf("head %d", led.Head().ID)
		}
		led.Close(ctx)
		st.Close()
	}
}

// BenchmarkScan1M reads the 1,000,000-event store with one store.Scan, no
// HTTP and no hashing: the per-row cost of the SQLite read path alone.
func BenchmarkScan1M(b *testing.B) {
	dir := bigStore(b)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	b.ResetTimer()
	cpu := cputime.Start()
	for range b.N {
		n := 0
		err := st.Scan(ctx, store.Filter{}, 0, func(e *event.Event) error {
			n++
			return nil
		})
		if err != nil || n != bigSize {
			b.Fatalf("scan: %d events, %v", n, err)
		}
	}
	b.ReportMetric(float64(bigSize)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(cpu.PerOp(bigSize*b.N), "cpu-µs/event")
}

// BenchmarkUpgradeIndexes1M opens the 1,000,000-event store as an older
// binary left it (the kind and source indexes without each other's column):
// what rebuilding them costs, once, at the first start.
func BenchmarkUpgradeIndexes1M(b *testing.B) {
	dir := bigStore(b)
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
		if err != nil {
			b.Fatal(err)
		}
		for _, q := range []string{"DROP INDEX events_kind", "DROP INDEX events_source",
			"CREATE INDEX events_kind ON events(kind, event_id)", "CREATE INDEX events_source ON events(source, event_id)"} {
			if _, err := db.Exec(q); err != nil {
				b.Fatalf("%s: %v", q, err)
			}
		}
		db.Close()
		b.StartTimer()
		st, err := sqlite.Open(ctx, dir)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		st.Close()
		b.StartTimer()
	}
}
