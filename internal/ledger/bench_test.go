package ledger_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/cputime"
	"github.com/audit-stream/audit-stream/internal/ledger"
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
