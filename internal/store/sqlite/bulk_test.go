package sqlite_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/tlog"
)

// appendedLog writes n events through a ledger, as a server would, and
// returns them with the directory.
func appendedLog(t *testing.T, n int) (string, []event.Event) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.IndexPayload(ctx, []string{"user"}); err != nil {
		t.Fatal(err)
	}
	led, err := ledger.Open(ctx, st, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var reqs []event.Request
	for i := range n {
		ts := fmt.Sprintf("2026-05-15T03:%02d:%02d+00:00", i/60%60, i%60)
		if i%7 == 0 {
			ts = "2026-05-15 03:14:15" // naive, as Python writes it
		}
		reqs = append(reqs, event.Request{Kind: []string{"other", "request_denied"}[i%2], Source: fmt.Sprintf("s%d", i%5),
			Timestamp: ts, Payload: []byte(fmt.Sprintf(`{"user":"u%d","n":%d}`, i%3, i))})
	}
	for len(reqs) > 0 {
		k := min(len(reqs), 37)
		if _, err := led.Append(ctx, reqs[:k]); err != nil {
			t.Fatal(err)
		}
		reqs = reqs[k:]
	}
	led.Close(ctx)
	var evs []event.Event
	for id := int64(1); id <= int64(n); id++ {
		e, err := st.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
	return dir, evs
}

// records gives evs their stored tree hashes, as an import computes them.
func records(t *testing.T, evs []event.Event) []store.Record {
	var tree verify.Tree
	var recs []store.Record
	for _, e := range evs {
		hs, err := tree.AppendStored(nil, e.Hash)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, store.Record{Event: e, Tree: hs})
	}
	return recs
}

// dump reads everything a SQLite file holds that the store's behaviour
// depends on: schema, version, page size and every row of every table.
func dump(t *testing.T, dir string) map[string]any {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]any{}
	query := func(name, q string) {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		var all [][]any
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			all = append(all, vals)
		}
		out[name] = all
	}
	query("schema", "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name")
	query("version", "PRAGMA user_version")
	query("page_size", "PRAGMA page_size")
	query("journal", "PRAGMA journal_mode")
	query("events", "SELECT *, typeof(payload), typeof(ts) FROM events ORDER BY event_id")
	query("tokens", "SELECT * FROM tokens ORDER BY id")
	return out
}

// A bulk load makes the same database file as appending the same events
// through the ledger (rows, tree hashes, schema, indexes), keeps what the
// empty store held (meta, tokens, payload indexes), and serves proofs.
func TestLoaderMatchesAppends(t *testing.T) {
	ctx := context.Background()
	want, evs := appendedLog(t, 300)

	dir := t.TempDir()
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.IndexPayload(ctx, []string{"user"}); err != nil {
		t.Fatal(err)
	}
	tok := store.Token{ID: "t1", Name: "admin", Roles: []string{store.RoleAdmin}, Digest: sha256.Sum256([]byte("s")), Created: time.Unix(1778814855, 0)}
	if err := st.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := st.SetMeta(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	ld, err := st.Loader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recs := records(t, evs)
	// Uneven batches: full multi-row statements and a remainder.
	for _, cut := range [][2]int{{0, 1}, {1, 130}, {130, 300}} {
		if err := ld.Append(ctx, recs[cut[0]:cut[1]]); err != nil {
			t.Fatal(err)
		}
	}
	if err := ld.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, sqlite.FileName+".import")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the import file is still there: %v", err)
	}

	st2, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	got := dump(t, dir)
	wantDump := dump(t, want)
	for _, k := range []string{"schema", "version", "page_size", "journal", "events"} {
		if !reflect.DeepEqual(got[k], wantDump[k]) {
			t.Errorf("%s differs from a store appended to:\n got %v\nwant %v", k, got[k], wantDump[k])
		}
	}
	if v, err := st2.Meta(ctx, "k"); err != nil || string(v) != "v" {
		t.Errorf("meta after the load: %q, %v", v, err)
	}
	if toks, err := st2.ListTokens(ctx); err != nil || len(toks) != 1 || toks[0].ID != "t1" {
		t.Errorf("tokens after the load: %v, %v", toks, err)
	}
	// The tree serves a proof that checks against the root.
	var tree verify.Tree
	for _, e := range evs {
		tree.Add(e.Hash)
	}
	p, err := tlog.ProveRecord(300, 122, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return st2.ReadHashes(ctx, idx) }))
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.CheckRecord(p, 300, tree.Root(), 122, verify.LeafHash(evs[122].Hash)); err != nil {
		t.Fatalf("proof from the loaded tree: %v", err)
	}
	// The log goes on from where the load left it.
	led, err := ledger.Open(ctx, st2, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close(ctx)
	acks, err := led.Append(ctx, []event.Request{{Kind: "other", Source: "s", Payload: []byte(`{}`)}})
	if err != nil || acks[0].ID != 301 {
		t.Fatalf("append after the load: %v, %v", acks, err)
	}
}

// Abort, a refused batch, or a crash (an import file left behind) never
// change the store; a store with events refuses a load.
func TestLoaderLeavesStoreAlone(t *testing.T) {
	ctx := context.Background()
	_, evs := appendedLog(t, 10)
	recs := records(t, evs)
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetMeta(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	before := dump(t, dir)
	importFile := filepath.Join(dir, sqlite.FileName+".import")

	ld, err := st.Loader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ld.Append(ctx, recs[:5]); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]store.Record{
		"gap":          recs[6:8],
		"repeat":       recs[4:6],
		"wrong parent": append([]store.Record{{Event: event.Event{ID: 6, Hash: recs[5].Hash}}}, recs[6:7]...),
	} {
		var seq *store.SequenceError
		if err := ld.Append(ctx, bad); !errors.As(err, &seq) {
			t.Errorf("%s: %v, want a sequence error", name, err)
		}
	}
	if _, err := os.Stat(importFile); err != nil {
		t.Fatalf("no import file while loading: %v", err)
	}
	if err := ld.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(importFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("import file after Abort: %v", err)
	}
	if got := dump(t, dir); !reflect.DeepEqual(got, before) {
		t.Fatalf("the store changed after an aborted load:\n got %v\nwant %v", got, before)
	}

	// A crash mid-load leaves the import file; the store is as it was,
	// and the next Open (the lock says no load runs) removes the file.
	ld, err = st.Loader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ld.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	st.Close() // the process dies: the Loader is never finished
	if _, err := os.Stat(importFile); err != nil {
		t.Fatalf("no import file after the crash: %v", err)
	}
	st, err = sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := os.Stat(importFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open left the unfinished import file: %v", err)
	}
	if h, err := st.Head(ctx); err != nil || h.ID != 0 {
		t.Fatalf("head after a crashed load: %v, %v", h, err)
	}

	// A store with events refuses.
	led, err := ledger.Open(ctx, st, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := led.Append(ctx, []event.Request{{Kind: "other", Source: "s", Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	led.Close(ctx)
	if ld, err := st.Loader(ctx); err == nil {
		ld.Abort()
		t.Fatal("Loader on a store with events")
	}
}
