package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
	"golang.org/x/mod/sumdb/tlog"
)

// BenchmarkTreeCost measures what keeping the Merkle tree costs durable
// appends. In each round, 64 concurrent producers append through the ledger
// as in production (fsync per group commit), and then the same number of
// events has its tree hashes computed the way build does, on the in-memory
// right edge of the tree, pruned every treeGroup events as after a commit.
// The sequencer does that work on its one goroutine, inside the write
// transaction, so its share of the append time is what the tree costs; the
// extra rows it stores are inside the append time and not counted
// separately. The two alternate in short rounds because the machine is
// shared and noisy.
// Run: go test -run X -bench TreeCost -benchtime 3x -count 3 ./internal/ledger
func BenchmarkTreeCost(b *testing.B) {
	const rounds, perRound, producers, treeGroup = 4, 8000, 64, 64
	ctx := context.Background()
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
	req := []event.Request{{Kind: "request_denied", Source: "bench", Payload: []byte(`{"note":"benchmark event","ratio":0.5,"seq":1}`)}}

	hr := &edgeReader{edge: make(map[int64]tlog.Hash, 64)}
	var leaves int64
	treeHashes := func(n int) {
		for range n {
			var rec [8]byte
			binary.BigEndian.PutUint64(rec[:], uint64(leaves))
			h := sha256.Sum256(rec[:]) // stands for the event hash
			hashes, err := tlog.StoredHashesForRecordHash(leaves, tlog.RecordHash(h[:]), hr)
			if err != nil {
				b.Fatal(err)
			}
			base := tlog.StoredHashIndex(0, leaves)
			for i, x := range hashes {
				hr.edge[base+int64(i)] = x
			}
			if leaves++; leaves%treeGroup == 0 {
				hr.edge = pruneEdge(hr.edge, leaves)
			}
		}
	}

	var appending, hashing time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for range rounds {
			start := time.Now()
			var wg sync.WaitGroup
			for range producers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range perRound / producers {
						if _, err := l.Append(ctx, req); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			appending += time.Since(start)
			start = time.Now()
			treeHashes(perRound)
			hashing += time.Since(start)
		}
	}
	events := float64(b.N * rounds * perRound)
	b.ReportMetric(events/appending.Seconds(), "events/s")
	b.ReportMetric(100*hashing.Seconds()/appending.Seconds(), "overhead-%")
}
