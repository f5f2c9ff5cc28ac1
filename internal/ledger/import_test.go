package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/tlog"
)

// chain makes n events chained as the server would, encoded one a line.
func chain(n int) (lines [][]byte, evs []event.Event) {
	var prev event.Hash
	for i := 1; i <= n; i++ {
		e := event.Event{ID: int64(i), Timestamp: "2026-05-15T03:14:15+00:00", Kind: "other", Source: "s",
			Payload: []byte(fmt.Sprintf(`{"i":%d}`, i)), PrevHash: prev}
		e.Hash, _ = e.ComputeHash(nil)
		prev = e.Hash
		evs = append(evs, e)
		lines = append(lines, e.AppendJSON(nil))
	}
	return lines, evs
}

func source(lines [][]byte) verify.RawSource {
	return func(ctx context.Context, fn func([]byte) error) error {
		for _, l := range lines {
			if err := fn(l); err != nil {
				return err
			}
		}
		return nil
	}
}

// Import hands Write every event in order, in batches, each with the tree
// hashes tlog would store for it, and reports the chain's root.
func TestImportRecords(t *testing.T) {
	n := 2*ledger.ImportBatch + 17
	lines, evs := chain(n)
	var got []store.Record
	var mem []tlog.Hash
	var progress []int64
	rep, err := ledger.Import(context.Background(), source(lines), event.ParseStored, ledger.ImportOptions{
		Write: func(ctx context.Context, recs []store.Record) error {
			for _, r := range recs {
				r.Tree = append([]tlog.Hash(nil), r.Tree...)
				r.Payload = bytes.Clone(r.Payload)
				got = append(got, r)
			}
			return nil
		},
		Progress: func(n int64) { progress = append(progress, n) },
	})
	if err != nil || !rep.Valid || rep.Checked != int64(n) {
		t.Fatalf("report %+v, %v", rep, err)
	}
	if len(got) != n {
		t.Fatalf("%d records written, want %d", len(got), n)
	}
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = mem[x]
		}
		return out, nil
	})
	for i, r := range got {
		if r.ID != evs[i].ID || r.Hash != evs[i].Hash || !bytes.Equal(r.Payload, evs[i].Payload) || r.Timestamp != evs[i].Timestamp {
			t.Fatalf("record %d: %+v, want %+v", i, r.Event, evs[i])
		}
		want, err := tlog.StoredHashesForRecordHash(int64(i), tlog.RecordHash(r.Hash[:]), reader)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(r.Tree) != fmt.Sprint(want) {
			t.Fatalf("record %d tree %x, want %x", i, r.Tree, want)
		}
		mem = append(mem, want...)
	}
	root, _ := tlog.TreeHash(int64(n), reader)
	if rep.RootHash != event.Hash(root).String() || rep.TreeSize != int64(n) {
		t.Fatalf("root %s size %d, want %x %d", rep.RootHash, rep.TreeSize, root, n)
	}
	if fmt.Sprint(progress) != fmt.Sprint([]int64{ledger.ImportBatch, 2 * ledger.ImportBatch, int64(n)}) {
		t.Fatalf("progress %v", progress)
	}
}

// A break or an undecodable event is a report, not an error; a Write error
// stops the walk and is returned.
func TestImportRefusals(t *testing.T) {
	lines, _ := chain(10)
	broken := append([][]byte(nil), lines...)
	broken[6] = bytes.Replace(broken[6], []byte(`"i":7`), []byte(`"i":8`), 1)
	garbage := append(append([][]byte(nil), lines[:4]...), []byte("garbage"))
	for _, tt := range []struct {
		name  string
		lines [][]byte
		at    int64
	}{{"changed payload", broken, 7}, {"not JSON", garbage, 5}} {
		rep, err := ledger.Import(context.Background(), source(tt.lines), event.ParseStored, ledger.ImportOptions{})
		if err != nil || rep.Valid || rep.FirstBreakAt == nil || *rep.FirstBreakAt != tt.at {
			t.Errorf("%s: report %+v, %v; want broken at %d", tt.name, rep, err, tt.at)
		}
	}
	boom := errors.New("disk on fire")
	big, _ := chain(3 * ledger.ImportBatch)
	calls := 0
	_, err := ledger.Import(context.Background(), source(big), event.ParseStored, ledger.ImportOptions{
		Write: func(context.Context, []store.Record) error { calls++; return boom },
	})
	if !errors.Is(err, boom) || calls != 1 {
		t.Fatalf("write error: %v after %d writes", err, calls)
	}
}
