package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/pgtest"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/postgres"
	"github.com/audit-stream/audit-stream/internal/store/storetest"
)

func openURL(t *testing.T, url string) store.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Storage {
		url := pgtest.Schema(t)
		open := func() store.Store { return openURL(t, url) }
		// Every instance is a peer: any of them may append.
		return storetest.Storage{Store: open(), Reopen: open, Peer: open, PeerAppends: true}
	})
}

// TestConformanceCopy runs the suite again with every group's events
// written by COPY, which must store what the INSERT does (a NULL ts for a
// timestamp that does not parse, kind and source as bytes).
func TestConformanceCopy(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Storage {
		url := pgtest.Schema(t)
		open := func() store.Store {
			st := openURL(t, url)
			postgres.SetCopyMin(st.(*postgres.Store), 1)
			return st
		}
		return storetest.Storage{Store: open(), Reopen: open, Peer: open, PeerAppends: true}
	})
}

// The script DBAs apply by hand creates the schema the binary expects: a
// store opened on it runs no migration and works.
func TestMigrationSQL(t *testing.T) {
	url := pgtest.Schema(t)
	sql := postgres.MigrationSQL()
	if !strings.Contains(sql, "CREATE TABLE events") {
		t.Fatalf("migration script lacks the events table:\n%s", sql)
	}
	if err := postgres.Exec(context.Background(), url, sql); err != nil {
		t.Fatal(err)
	}
	st := openURL(t, url)
	if h, err := st.Head(context.Background()); err != nil || h.ID != 0 {
		t.Fatalf("Head on the hand-migrated schema = %+v, %v", h, err)
	}
}

// TestQueriesIndexed runs the query cases again with the payload paths they
// filter on indexed (expression indexes), so that both plans (index lookup,
// row-by-row check) meet the same expectations.
func TestQueriesIndexed(t *testing.T) {
	storetest.RunQueries(t, func(t *testing.T) storetest.Storage {
		st := openURL(t, pgtest.Schema(t))
		if err := st.(*postgres.Store).IndexPayload(context.Background(), storetest.QueryPayloadPaths); err != nil {
			t.Fatal(err)
		}
		return storetest.Storage{Store: st, PayloadIndexed: true}
	})
}

// TestIndexPayloadParallelBuild: PostgreSQL builds an index on a large
// table with parallel workers, and the payload key function catches errors
// in a subtransaction, which a parallel worker cannot start: the function
// must be marked parallel-unsafe, or --index-payload fails on every
// existing log large enough (parallel_workers forces the parallel plan on a
// small one).
func TestIndexPayloadParallelBuild(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Schema(t)
	st := openURL(t, url)
	led, err := ledger.Open(ctx, st, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var reqs []event.Request
	for i := range 500 {
		reqs = append(reqs, event.Request{Kind: "other", Source: "s", Payload: fmt.Appendf(nil, `{"decision_id":"DEC-%d"}`, i%7)})
	}
	if _, err := led.Append(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	led.Close(ctx)
	if err := postgres.Exec(ctx, url, "ALTER TABLE events SET (parallel_workers = 2)"); err != nil {
		t.Fatal(err)
	}
	if err := st.(*postgres.Store).IndexPayload(ctx, []string{"decision_id"}); err != nil {
		t.Fatal(err)
	}
	n := 0
	f := store.Filter{Payload: []store.PayloadMatch{{Path: []string{"decision_id"}, Values: []string{"DEC-3"}}}}
	if err := st.Scan(ctx, f, 0, func(*event.Event) error { n++; return nil }); err != nil || n != 500/7 {
		t.Fatalf("indexed query: %d events, %v; want %d", n, err, 500/7)
	}
}
