package ledger_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/cputime"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/provenance"
)

// BenchmarkAppendGroup is the durable write path without HTTP: one Append of
// `group` events per transaction and fsync (ids, hashes, Merkle tree, insert,
// commit). It shows the storage ceiling that the HTTP benchmarks approach.
func BenchmarkAppendGroup(b *testing.B) {
	for _, group := range []int{1, 64, 1000} {
		b.Run(fmt.Sprintf("group=%d", group), func(b *testing.B) {
			_, l := open(b, b.TempDir(), ledger.Options{})
			reqs := make([]event.Request, group)
			for i := range reqs {
				reqs[i] = event.Request{Kind: "request_denied", Source: "policy-engine",
					Payload: fmt.Appendf(nil, `{"actor":"agent-%d","decision_id":"DEC-%08d","reason":"policy matched rule 42 of bundle prod-2026-05","resource":"s3://ledger/objects/%d","score":0.5}`, i, i, i)}
			}
			b.ResetTimer()
			cpu := cputime.Start()
			for range b.N {
				if _, err := l.Append(context.Background(), reqs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*group)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(cpu.PerOp(b.N*group), "cpu-µs/event")
		})
	}
}

// BenchmarkSingles is single-event appends from concurrent callers, each
// with the provenance record an HTTP append writes, without HTTP: the
// ceiling of durable single appends over HTTP on the same cores, and the
// group sizes the sequencer forms from them.
func BenchmarkSingles(b *testing.B) {
	for _, callers := range []int{64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			_, l := open(b, b.TempDir(), ledger.Options{})
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			cpu := cputime.Start()
			for c := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						req := []event.Request{{Kind: "request_denied", Source: fmt.Sprintf("service-%d", c%10),
							Payload: fmt.Appendf(nil, `{"actor":"agent-%d","decision_id":"DEC-%08d","score":0.5}`, c, i)}}
						st := &ledger.Stamp{AppendedBy: "open", ReceivedAt: "2026-12-01T00:00:00.000000Z", Flags: make(provenance.Flags, 1)}
						if _, _, err := l.AppendWith(context.Background(), req, ledger.AppendOptions{Stamp: st}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			tx, ev := l.Commits()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(cpu.PerOp(b.N), "cpu-µs/event")
			b.ReportMetric(float64(ev)/float64(max(tx, 1)), "events/commit")
		})
	}
}
