package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
	"github.com/audit-stream/audit-stream/internal/store/storetest"
)

func TestConformance(t *testing.T) {
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

func TestSecondProcessRefused(t *testing.T) {
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
	for _, col := range []string{"prev_hash", "hash"} {
		t.Run(col, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			st, err := sqlite.Open(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			led, err := ledger.Open(ctx, st, ledger.Options{})
			if err != nil {
				t.Fatal(err)
			}
			reqs := make([]event.Request, 5)
			for i := range reqs {
				reqs[i] = event.Request{Kind: "other", Source: "s,1,2", Payload: []byte(`{"a":"1,2,3"}`)}
			}
			if _, err := led.Append(ctx, reqs); err != nil {
				t.Fatal(err)
			}
			led.Close(ctx)
			st.Close()
			db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec("UPDATE events SET " + col + " = substr(" + col + ", 1, 31) WHERE event_id = 3"); err != nil {
				t.Fatal(err)
			}
			db.Close()
			st, err = sqlite.Open(ctx, dir)
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
