package postgres

import (
	"context"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/pgtest"
	"github.com/audit-stream/audit-stream/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

// The right edge of the tree that Append reads with the head is exactly the
// hashes stored at the compact range's indexes, at every size (each set bit
// of the size is one hash), so a sequencer reloading it after another
// instance moved the head builds the same tree.
func TestAppendReadsEdgeWithHead(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, pgtest.Schema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for n := int64(0); n <= 70; n++ {
		var want []int64
		for level := 0; n>>level != 0; level++ {
			if n>>level&1 == 1 {
				want = append(want, tlog.StoredHashIndex(level, n>>level-1))
			}
		}
		stored, err := st.ReadHashes(ctx, want)
		if n > 0 && err != nil {
			t.Fatal(err)
		}
		st.ahead.Store(nil) // read the head under the lock, never assume it
		_, err = st.Append(ctx, func(tx store.Tx) ([]store.Record, error) {
			v := tx.(*txView)
			if v.head.ID != n || len(v.edge) != len(want) {
				t.Fatalf("at %d: head %d, edge of %d hashes, want %d", n, v.head.ID, len(v.edge), len(want))
			}
			for i, x := range want {
				if v.edge[x] != stored[i] {
					t.Fatalf("at %d: edge hash %d differs from the stored one", n, x)
				}
			}
			return oneRecord(tx)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// oneRecord builds the next record on the transaction's head.
func oneRecord(tx store.Tx) ([]store.Record, error) {
	h := tx.Head()
	e := event.Event{ID: h.ID + 1, Timestamp: "2026-05-15T03:00:00Z", Kind: "k", Source: "s", Payload: []byte("{}"), PrevHash: h.Hash}
	e.Hash, _ = e.ComputeHash(nil)
	tree, err := tlog.StoredHashesForRecordHash(h.ID, tlog.RecordHash(e.Hash[:]), tlog.HashReaderFunc(tx.ReadHashes))
	if err != nil {
		return nil, err
	}
	return []store.Record{{Event: e, Tree: tree}}, nil
}
