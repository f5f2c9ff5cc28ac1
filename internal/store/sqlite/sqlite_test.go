package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
	"github.com/audit-stream/audit-stream/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) storetest.Storage {
		dir := t.TempDir()
		open := func(f func(context.Context, string) (*sqlite.Store, error)) func() store.Store {
			return func() store.Store {
				st, err := f(context.Background(), dir)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				return st
			}
		}
		// The token command's store is the peer: the data directory has
		// one sequencer, but tokens and meta are shared.
		return storetest.Storage{Store: open(sqlite.Open)(), Reopen: open(sqlite.Open), Peer: open(sqlite.OpenAdmin)}
	})
}

// writeLog appends reqs in one request to a new store in dir through a
// ledger, as a server would, and closes both: the data directory is then the
// test's to alter and open again.
func writeLog(t *testing.T, dir string, reqs []event.Request) []event.Event {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	led, err := ledger.Open(ctx, st, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close(ctx)
	evs, err := led.Append(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestSecondProcessRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st2, err := sqlite.Open(context.Background(), dir); err == nil {
		st2.Close()
		t.Fatal("a second Open of the same data directory succeeded")
	}
}

// A hash that is not 32 bytes can only come from a damaged or hand-edited
// file: Scan must deliver the events before it and then fail naming it,
// never hand on a misread event.
func TestScanReportsDamagedHash(t *testing.T) {
	t.Parallel()
	for _, col := range []string{"prev_hash", "hash"} {
		t.Run(col, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			reqs := make([]event.Request, 5)
			for i := range reqs {
				reqs[i] = event.Request{Kind: "other", Source: "s,1,2", Payload: []byte(`{"a":"1,2,3"}`)}
			}
			writeLog(t, dir, reqs)
			db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec("UPDATE events SET " + col + " = substr(" + col + ", 1, 31) WHERE event_id = 3"); err != nil {
				t.Fatal(err)
			}
			db.Close()
			st, err := sqlite.Open(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var got []int64
			err = st.Scan(ctx, store.Filter{}, 0, func(e *event.Event) error {
				if e.Source != "s,1,2" || string(e.Payload) != `{"a":"1,2,3"}` {
					t.Errorf("event %d misread: %+v", e.ID, e)
				}
				got = append(got, e.ID)
				return nil
			})
			if err == nil || !strings.Contains(err.Error(), "event 3 "+col+": stored hash is not 32 bytes") || !slices.Equal(got, []int64{1, 2}) {
				t.Fatalf("Scan over a damaged %s: %v after %v", col, err, got)
			}
		})
	}
}

// TestQueriesIndexed runs the query cases again with the payload paths they
// filter on indexed, so that both plans (index lookup, row-by-row check) meet
// the same expectations.
func TestQueriesIndexed(t *testing.T) {
	t.Parallel()
	storetest.RunQueries(t, func(t *testing.T) storetest.Storage {
		st, err := sqlite.Open(context.Background(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if err := st.IndexPayload(context.Background(), storetest.QueryPayloadPaths); err != nil {
			t.Fatal(err)
		}
		return storetest.Storage{Store: st}
	})
}

// TestQueriesSmallTimeBlocks runs the query cases with the time map's
// blocks 5 ids wide, so that time ranges over the back-filled and late
// timestamps of the fixture cross many block boundaries, and the map grows
// block by block as the log is appended to between queries.
func TestQueriesSmallTimeBlocks(t *testing.T) {
	t.Parallel()
	storetest.RunQueries(t, func(t *testing.T) storetest.Storage {
		st, err := sqlite.Open(context.Background(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		sqlite.SetTimeBlock(st, 5)
		return storetest.Storage{Store: st}
	})
}

// TestUpgradeQueryIndexes: a data directory written with the kind and
// source indexes of schema version 1 opens in place with each rebuilt to
// carry the other column, its schema version unchanged, and kind and source queries find what they found before.
func TestUpgradeQueryIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	var reqs []event.Request
	for i := range 300 {
		reqs = append(reqs, event.Request{Kind: []string{"other", "request_denied", "watch_drifted"}[i%3], Source: []string{"a", "b", "c", "d"}[i%4], Payload: []byte(`{}`)})
	}
	all := writeLog(t, dir, reqs)

	// Put the indexes back as an older binary left them.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	var versionBefore int
	if err := db.QueryRow("PRAGMA user_version").Scan(&versionBefore); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"DROP INDEX events_kind", "DROP INDEX events_source",
		"CREATE INDEX events_kind ON events(kind, event_id)", "CREATE INDEX events_source ON events(source, event_id)"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, f := range []store.Filter{
		{Kinds: []string{"request_denied"}, Sources: []string{"b"}},
		{Kinds: []string{"request_denied", "other"}, Sources: []string{"a", "d"}, After: 20, Until: 250},
		{Kinds: []string{"watch_drifted"}, Desc: true},
	} {
		var want []int64
		for i := range all {
			if f.Matches(&all[i]) {
				want = append(want, all[i].ID)
			}
		}
		if f.Desc {
			slices.Reverse(want)
		}
		var got []int64
		if err := st.Scan(ctx, f, 0, func(e *event.Event) error {
			got = append(got, e.ID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Fatalf("%+v after the upgrade: %v, want %v", f, got, want)
		}
	}
	db, err = sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var def string
	var version int
	if err := db.QueryRow("SELECT group_concat(sql, ';') FROM sqlite_master WHERE name IN ('events_kind', 'events_source')").Scan(&def); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(def, "(kind, event_id, source)") || !strings.Contains(def, "(source, event_id, kind)") || version != versionBefore {
		t.Fatalf("after the upgrade: schema version %d (was %d), indexes %q", version, versionBefore, def)
	}
}

// TestMigrateTimeColumn: a data directory written before the time column
// existed opens in place, its events get their instants, and time ranges
// find them.
func TestMigrateTimeColumn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	stamps := []string{"2026-05-15T03:00:00Z", "2026-05-15T05:00:00+02:00", "2026-05-15T04:00:00.5+00:00", "2026-05-15T01:00:00-03:00"}
	var reqs []event.Request
	for _, ts := range stamps {
		reqs = append(reqs, event.Request{Kind: "other", Source: "s", Timestamp: ts, Payload: []byte(`{}`)})
	}
	writeLog(t, dir, reqs)

	// Take the file back to schema version 2, as an older binary left it
	// (undoing migration 4 too).
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"DROP TABLE provenance", "DROP TABLE signatures", "ALTER TABLE tokens DROP COLUMN signing_key",
		"DROP INDEX events_ts", "ALTER TABLE events DROP COLUMN ts", "PRAGMA user_version = 2"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	from, _ := time.Parse(time.RFC3339, "2026-05-15T03:00:00Z")
	to, _ := time.Parse(time.RFC3339, "2026-05-15T04:00:00.5Z")
	evs, err := st.Latest(ctx, store.Filter{TimeFrom: from, TimeTo: to}, 10)
	if err != nil {
		t.Fatal(err)
	}
	// 03:00Z, 05:00+02:00 (= 03:00Z) and 01:00-03:00 (= 04:00Z); 04:00:00.5Z is the
	// exclusive upper bound.
	if got := idsOf(evs); !slices.Equal(got, []int64{1, 2, 4}) {
		t.Fatalf("time range after migration: %v, want [1 2 4]", got)
	}
}

func idsOf(evs []event.Event) []int64 {
	var out []int64
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

// A data directory whose name holds the characters a file: URI gives a
// meaning ('?', '#', '%') opens the database inside it, not another file.
func TestOddDirectoryName(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	for _, name := range []string{"a#b", "c?d", "e%41f", "g%23h"} {
		dir := filepath.Join(parent, name)
		st, err := sqlite.Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.SetMeta(ctx, "probe", []byte(name)); err != nil {
			t.Fatal(err)
		}
		st.Close()
		if _, err := os.Stat(filepath.Join(dir, sqlite.FileName)); err != nil {
			t.Fatalf("%q: the database is not in its directory: %v", name, err)
		}
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 4 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("files beside the data directories: %v", names)
	}
	for _, name := range []string{"a#b", "c?d", "e%41f", "g%23h"} {
		st, err := sqlite.Open(ctx, filepath.Join(parent, name))
		if err != nil {
			t.Fatal(err)
		}
		v, err := st.Meta(ctx, "probe")
		st.Close()
		if err != nil || string(v) != name {
			t.Fatalf("%q holds %q, %v", name, v, err)
		}
	}
}

// database/sql drops the writer's connection when a cancelled context
// interrupts a statement on it; the insert statements prepared on that
// connection go with it, and appends carry on with the next one. (They once
// outlived it, and closing the store crashed finalizing them.)
func TestAppendsAfterWriterInterrupted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	led, err := ledger.Open(ctx, st, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	batch := func(n int) []event.Request {
		reqs := make([]event.Request, n)
		for i := range reqs {
			reqs[i] = event.Request{Kind: "other", Source: "s", Payload: []byte(`{"user":"u-` + strings.Repeat("x", i%50) + `","n":1}`)}
		}
		return reqs
	}
	for range 20 {
		if _, err := led.Append(ctx, batch(1000)); err != nil {
			t.Fatal(err)
		}
	}
	// Building a payload index over 20,000 events takes far longer than a
	// millisecond: the deadline interrupts it on the writer's connection.
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if err := st.IndexPayload(short, []string{"user"}); err == nil {
		t.Skip("the index was built before the deadline: nothing was interrupted")
	}
	if _, err := led.Append(ctx, batch(77)); err != nil {
		t.Fatalf("append after an interrupted write: %v", err)
	}
	if err := led.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if h, err := st.Head(ctx); err != nil || h.ID != 20077 {
		t.Fatalf("head after reopening: %+v, %v; want event 20077", h, err)
	}
}
