package bench

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/cputime"
	"github.com/audit-stream/audit-stream/internal/loadgen"
	"github.com/audit-stream/audit-stream/internal/pgtest"
	"github.com/audit-stream/audit-stream/internal/store/postgres"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/tlog"
)

// BenchmarkClusterCeiling is what PostgreSQL alone commits of the rows
// BenchmarkClusterAppend writes, with nothing of audit-stream in between:
// writers connections (one per instance) each looping over transactions
// of group events (and a provenance row per request of perReq events)
// under the log's advisory lock, in one pipeline per transaction
// (roundtrips=1) or, as the store does when another instance moved the
// head, one to take the lock and read the head and one to write and
// commit (roundtrips=2); groups of 1,000 also with the events sent by COPY
// (copy). No HTTP, no hashing: the ceiling the appends are measured
// against, in the same run.
func BenchmarkClusterCeiling(b *testing.B) {
	for _, c := range []struct{ writers, group, perReq int }{
		{1, 32, 1}, {2, 16, 1}, {3, 11, 1},
		{1, 1000, 1000}, {2, 1000, 1000}, {3, 1000, 1000},
	} {
		for _, rt := range []int{1, 2} {
			b.Run(fmt.Sprintf("writers=%d/group=%d/roundtrips=%d", c.writers, c.group, rt), func(b *testing.B) {
				bareWrite(b, c.writers, c.group, c.perReq, rt)
			})
		}
		if c.group >= 1000 {
			// COPY (binary) instead of the unnest INSERT: a round
			// trip of its own, pgx cannot pipeline it.
			b.Run(fmt.Sprintf("writers=%d/group=%d/copy", c.writers, c.group), func(b *testing.B) {
				bareWrite(b, c.writers, c.group, c.perReq, copyEvents)
			})
		}
	}
}

func bareWrite(b *testing.B, writers, group, perReq, roundtrips int) {
	url := pgtest.Schema(b)
	ctx := context.Background()
	st, err := postgres.Open(ctx, url, postgres.Options{}) // the schema
	if err != nil {
		b.Fatal(err)
	}
	st.Close()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	var schema string
	if err := pool.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		b.Fatal(err)
	}
	const lockKey = 4242
	channel := "audit_stream_head." + schema
	// The store analyzes the table once the log passes a thousand events
	// (its statistics say empty after the migrations): so does the loop,
	// before it is timed, or the head read under the lock would keep a
	// plan that reads the whole table.
	const prefill = 2000
	if err := bareCommit(ctx, pool, lockKey, channel, 1, prefill, 1, 1); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "ANALYZE events"); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64 // ids are claimed before the lock: unique, not in commit order
	next.Store(prefill)
	var done atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	cpu := cputime.Start()
	for range writers {
		wg.Go(func() {
			for done.Add(int64(group))-int64(group) < int64(b.N) {
				first := next.Add(int64(group)) - int64(group) + 1
				if err := bareCommit(ctx, pool, lockKey, channel, first, group, perReq, roundtrips); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	n := next.Load() - prefill
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(cpu.PerOp(int(n)), "cpu-µs/event")
}

// copyEvents as bareCommit's roundtrips: lock, COPY of the events, the rest.
const copyEvents = 3

// bareCommit writes events first… first+group-1 as the store does: an
// unnest INSERT per table, NOTIFY, COMMIT.
func bareCommit(ctx context.Context, pool *pgxpool.Pool, lockKey int64, channel string, first int64, group, perReq, roundtrips int) error {
	ids, stamps := make([]int64, group), make([]string, group)
	kinds, sources, payloads := make([][]byte, group), make([][]byte, group), make([]string, group)
	prevs, hashes, trees, ts := make([][]byte, group), make([][]byte, group), make([][]byte, group), make([]int64, group)
	var pFirst, pCount []int64
	var pBy, pAt []string
	var pFlags, pLast, pChain [][]byte
	prev := make([]byte, 32)
	for i := range group {
		id := first + int64(i)
		r := loadgen.SampleRequest(int(id))
		h := sha256.Sum256(r.Payload)
		ids[i], stamps[i], kinds[i], sources[i], payloads[i] = id, "2026-05-15T03:14:15.123456+00:00", []byte(r.Kind), []byte(r.Source), string(r.Payload)
		prevs[i], hashes[i], ts[i] = prev, h[:], 1778814855123456
		trees[i] = make([]byte, 32*tlog.StoredHashCount(id)-32*tlog.StoredHashCount(id-1))
		prev = h[:]
		if i%perReq == perReq-1 {
			pFirst, pCount = append(pFirst, id-int64(perReq)+1), append(pCount, int64(perReq))
			pBy, pAt = append(pBy, "open"), append(pAt, stamps[i])
			pFlags, pLast, pChain = append(pFlags, make([]byte, perReq)), append(pLast, h[:]), append(pChain, h[:])
		}
	}
	c, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	bt := &pgx.Batch{}
	bt.Queue("BEGIN")
	bt.Queue("SELECT pg_advisory_xact_lock($1)", lockKey)
	if roundtrips == 2 {
		bt.Queue("SELECT event_id, hash FROM events ORDER BY event_id DESC LIMIT 1")
	}
	if roundtrips >= 2 {
		if err := c.SendBatch(ctx, bt).Close(); err != nil {
			return err
		}
		bt = &pgx.Batch{}
	}
	if roundtrips == copyEvents {
		rows := make([][]any, group)
		for i := range rows {
			rows[i] = []any{ids[i], stamps[i], kinds[i], sources[i], payloads[i], prevs[i], hashes[i], trees[i], ts[i]}
		}
		if _, err := c.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"event_id", "timestamp", "kind", "source", "payload", "prev_hash", "hash", "tree", "ts"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
	}
	bt.Queue("INSERT INTO provenance (first_id, count, appended_by, received_at, flags, last_hash, chain) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bytea[], $6::bytea[], $7::bytea[])",
		pFirst, pCount, pBy, pAt, pFlags, pLast, pChain)
	if roundtrips != copyEvents {
		bt.Queue("INSERT INTO events (event_id, timestamp, kind, source, payload, prev_hash, hash, tree, ts) SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::bytea[], $5::text[], $6::bytea[], $7::bytea[], $8::bytea[], $9::bigint[])",
			ids, stamps, kinds, sources, payloads, prevs, hashes, trees, ts)
	}
	bt.Queue("SELECT pg_notify($1, $2)", channel, fmt.Sprintf("%d %x", ids[group-1], hashes[group-1]))
	bt.Queue("COMMIT")
	return c.SendBatch(ctx, bt).Close()
}
