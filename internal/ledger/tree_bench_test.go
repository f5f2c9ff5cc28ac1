package ledger

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

// BenchmarkTreeCost measures durable append throughput (fsync per group
// commit, 64 concurrent producers) with the Merkle tree maintained as in
// production and with it skipped. The machine is shared and noisy, so the
// two modes alternate in short rounds within each iteration, each on its
// own store, and the benchmark reports both rates and the overhead.
// Run: go test -run X -bench TreeCost -benchtime 3x -count 3 ./internal/ledger
func BenchmarkTreeCost(b *testing.B) {
	const rounds, perRound, producers = 4, 8000, 64
	ctx := context.Background()
	ledgers := map[bool]*Ledger{}
	for _, skip := range []bool{false, true} {
		st, err := sqlite.Open(ctx, b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		l, err := Open(ctx, st, Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close(ctx)
		l.skipTree = skip
		ledgers[skip] = l
	}
	req := []event.Request{{Kind: "request_denied", Source: "bench", Payload: []byte(`{"note":"benchmark event","ratio":0.5,"seq":1}`)}}
	spent := map[bool]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			for _, skip := range []bool{r%2 == 1, r%2 == 0} {
				l := ledgers[skip]
				start := time.Now()
				var wg sync.WaitGroup
				for p := 0; p < producers; p++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for k := 0; k < perRound/producers; k++ {
							if _, err := l.Append(ctx, req); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				spent[skip] += time.Since(start)
			}
		}
	}
	events := float64(b.N * rounds * perRound)
	withTree, without := events/spent[false].Seconds(), events/spent[true].Seconds()
	b.ReportMetric(withTree, "tree-events/s")
	b.ReportMetric(without, "no-tree-events/s")
	b.ReportMetric(100*(1-withTree/without), "overhead-%")
}
