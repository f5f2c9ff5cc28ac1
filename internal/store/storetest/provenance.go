package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/provenance"
)

// runProvenance checks the provenance part of the contract: records and
// signatures are written inside the append transaction, durable and
// discarded with it, found by event, in ranges and by signature, and the
// chain head is the last record's.
func runProvenance(t *testing.T, openStorage Open) {
	ctx := context.Background()
	sig := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 64) }
	// appendWith appends n events and a record for them, signed when
	// sigs is set.
	appendWith := func(st store.Store, n int, signed bool) (provenance.Record, error) {
		var rec provenance.Record
		_, err := st.Append(ctx, func(tx store.Tx) ([]store.Record, error) {
			recs, err := txRecords(tx, n)
			if err != nil {
				return nil, err
			}
			prev, err := tx.ChainHead()
			if err != nil {
				return nil, err
			}
			rec = provenance.Record{
				FirstID: recs[0].ID, Count: int64(n), AppendedBy: "token:tok_1", ReceivedAt: "2026-05-15T03:14:15.123456+00:00",
				Flags: make(provenance.Flags, n), LastHash: recs[n-1].Hash,
			}
			rec.Flags[0] = provenance.FlagProducerTimestamp | provenance.FlagSkewed
			if signed {
				rec.KeyID = "billing.example.com+1a2b3c4d"
				for i := range n {
					rec.Sigs = append(rec.Sigs, sig(int(recs[i].ID)))
				}
			}
			rec.Chain = rec.ChainHash(prev)
			return recs, tx.PutProvenance(&rec)
		})
		return rec, err
	}

	t.Run("WriteAndRead", func(t *testing.T) {
		st := openStorage(t).Store
		if _, err := st.Provenance(ctx, 1); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Provenance on an empty store: %v, want ErrNotFound", err)
		}
		appendN(t, st, 2) // events without provenance, as imported ones
		a, err := appendWith(st, 1, false)
		if err != nil {
			t.Fatal(err)
		}
		b, err := appendWith(st, 3, true)
		if err != nil {
			t.Fatal(err)
		}
		if b.Chain != b.ChainHash(a.Chain) {
			t.Fatal("the second record's chain does not start from the first's: ChainHead did not return it")
		}
		for id, want := range map[int64]provenance.Record{3: a, 4: b, 5: b, 6: b} {
			got, err := st.Provenance(ctx, id)
			if err != nil {
				t.Fatalf("Provenance(%d): %v", id, err)
			}
			checkRecord(t, got, want)
		}
		for _, id := range []int64{1, 2, 7, 1 << 40} {
			if _, err := st.Provenance(ctx, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Provenance(%d) = %v, want ErrNotFound", id, err)
			}
		}
		if got, err := st.LastProvenance(ctx, 5); err != nil || got.FirstID != 4 {
			t.Fatalf("LastProvenance(5) = record at %d, %v; want the one at 4", got.FirstID, err)
		}
		if got, err := st.LastProvenance(ctx, 3); err != nil || got.FirstID != 3 {
			t.Fatalf("LastProvenance(3) = record at %d, %v; want the one at 3", got.FirstID, err)
		}
		if _, err := st.LastProvenance(ctx, 2); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("LastProvenance(2) = %v, want ErrNotFound", err)
		}
		var scanned []provenance.Record
		collect := func(r *provenance.Record) error { scanned = append(scanned, *r); return nil }
		if err := st.ScanProvenance(ctx, 0, 0, collect); err != nil || len(scanned) != 2 {
			t.Fatalf("ScanProvenance(0, 0): %d records, %v; want 2", len(scanned), err)
		}
		checkRecord(t, scanned[0], a)
		checkRecord(t, scanned[1], b)
		scanned = nil
		if err := st.ScanProvenance(ctx, 3, 4, collect); err != nil || len(scanned) != 1 || scanned[0].FirstID != 4 {
			t.Fatalf("ScanProvenance(3, 4) = %v, %v; want the record at 4", scanned, err)
		}
		scanned = nil
		if err := st.ScanProvenance(ctx, 0, 3, collect); err != nil || len(scanned) != 1 || scanned[0].FirstID != 3 {
			t.Fatalf("ScanProvenance(0, 3) = %v, %v; want the record at 3", scanned, err)
		}
		stop := errors.New("stop")
		if err := st.ScanProvenance(ctx, 0, 0, func(*provenance.Record) error { return stop }); !errors.Is(err, stop) {
			t.Fatalf("ScanProvenance's callback error: got %v", err)
		}
		// Signatures are found inside a later transaction.
		_, err = st.Append(ctx, func(tx store.Tx) ([]store.Record, error) {
			for _, c := range []struct {
				sigs [][]byte
				want int64
			}{
				{[][]byte{sig(99)}, 0},
				{[][]byte{sig(99), sig(5)}, 5},
				{[][]byte{sig(6), sig(4)}, 4},
			} {
				got, err := tx.SignatureOwner(c.sigs)
				if err != nil || got != c.want {
					return nil, fmt.Errorf("SignatureOwner = %d, %v; want %d", got, err, c.want)
				}
			}
			return nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ManyInOneTransaction", func(t *testing.T) {
		// A group of single appends: a record per event, more than a
		// backend writing them together puts in one statement, signed
		// and unsigned mixed.
		st := openStorage(t).Store
		const n = 150
		var want []provenance.Record
		_, err := st.Append(ctx, func(tx store.Tx) ([]store.Record, error) {
			want = want[:0]
			recs, err := txRecords(tx, n)
			if err != nil {
				return nil, err
			}
			var chain event.Hash
			for i := range recs {
				r := provenance.Record{FirstID: recs[i].ID, Count: 1, AppendedBy: fmt.Sprintf("token:tok_%d", i%7),
					ReceivedAt: "2026-05-15T03:14:15.123456+00:00", Flags: provenance.Flags{byte(i % 4)}, LastHash: recs[i].Hash}
				if i%3 == 0 {
					r.KeyID = "billing.example.com+1a2b3c4d"
					r.Sigs = [][]byte{sig(i + 1)}
				}
				r.Chain = r.ChainHash(chain)
				chain = r.Chain
				if err := tx.PutProvenance(&r); err != nil {
					return nil, err
				}
				want = append(want, r)
			}
			return recs, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.Append(ctx, func(tx store.Tx) ([]store.Record, error) {
			if h, err := tx.ChainHead(); h != want[n-1].Chain || err != nil {
				return nil, fmt.Errorf("ChainHead after a transaction of %d records: %x, %v; want the last record's %x", n, h, err, want[n-1].Chain)
			}
			return nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			got, err := st.Provenance(ctx, w.FirstID)
			if err != nil {
				t.Fatalf("Provenance(%d): %v", w.FirstID, err)
			}
			checkRecord(t, got, w)
		}
		i := 0
		err = st.ScanProvenance(ctx, 0, 0, func(got *provenance.Record) error {
			if i < len(want) {
				checkRecord(t, *got, want[i])
			}
			i++
			return nil
		})
		if err != nil || i != n {
			t.Fatalf("ScanProvenance: %d records, %v; want %d", i, err, n)
		}
	})

	t.Run("DiscardedWithItsTransaction", func(t *testing.T) {
		st := openStorage(t).Store
		failing := errors.New("refused after the provenance was put")
		_, err := st.Append(ctx, func(tx store.Tx) ([]store.Record, error) {
			recs, _ := txRecords(tx, 1)
			r := provenance.Record{FirstID: 1, Count: 1, AppendedBy: "open", ReceivedAt: "x", Flags: provenance.Flags{0},
				KeyID: "k+00000000", Sigs: [][]byte{sig(1)}, LastHash: recs[0].Hash}
			if err := tx.PutProvenance(&r); err != nil {
				return nil, err
			}
			return nil, failing
		})
		if !errors.Is(err, failing) {
			t.Fatalf("append: %v", err)
		}
		if _, err := st.LastProvenance(ctx, 1<<40); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a record of a failed append was kept: %v", err)
		}
		_, err = st.Append(ctx, func(tx store.Tx) ([]store.Record, error) {
			if id, err := tx.SignatureOwner([][]byte{sig(1)}); id != 0 || err != nil {
				return nil, fmt.Errorf("a signature of a failed append was kept: event %d, %v", id, err)
			}
			if h, err := tx.ChainHead(); h != (event.Hash{}) || err != nil {
				return nil, fmt.Errorf("chain head after a failed append: %v, %v", h, err)
			}
			return nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Durable", func(t *testing.T) {
		s := openStorage(t)
		if s.Reopen == nil {
			t.Skip("backend cannot reopen")
		}
		want, err := appendWith(s.Store, 2, true)
		if err != nil {
			t.Fatal(err)
		}
		s.Store.Close()
		st := s.Reopen()
		got, err := st.Provenance(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		checkRecord(t, got, want)
	})
}

func checkRecord(t *testing.T, got, want provenance.Record) {
	t.Helper()
	if got.FirstID != want.FirstID || got.Count != want.Count || got.AppendedBy != want.AppendedBy || got.ReceivedAt != want.ReceivedAt ||
		!bytes.Equal(got.Flags, want.Flags) || got.KeyID != want.KeyID || got.LastHash != want.LastHash || got.Chain != want.Chain ||
		!slices.EqualFunc(got.Sigs, want.Sigs, bytes.Equal) {
		t.Errorf("provenance record read back as\n%+v\nwant\n%+v", got, want)
	}
}
