// Package storetest is the conformance suite every store.Store backend must
// pass. A backend's test calls Run with a function that opens a fresh, empty
// store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

// Storage is a fresh, empty store and the ways to reach the same storage
// again.
type Storage struct {
	Store store.Store
	// Reopen, if not nil, opens the same storage again after the test
	// closed Store, to check durability across restarts.
	Reopen func() store.Store
	// Peer, if not nil, opens a second store on the same storage while
	// Store stays open, as another instance or process would. A peer may
	// refuse Append (SQLite's token-administration store does: the data
	// directory has one sequencer); PeerAppends says whether it can.
	Peer        func() store.Store
	PeerAppends bool
	// PayloadIndexed says the QueryPayloadPaths are indexed, so that
	// equality on them must not count towards MaxScan.
	PayloadIndexed bool
}

// Open returns a fresh, empty storage; it registers its own cleanup.
type Open func(t *testing.T) Storage

// Run runs the whole suite: events, tree hashes, tokens, idempotency keys,
// meta and its compare-and-swap, head notifications, and, when the backend
// has peers, what several instances sharing the storage must see.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, Open)
	}{
		{"EmptyHead", testEmptyHead},
		{"AppendAndRead", testAppendAndRead},
		{"RejectsNonExtending", testRejectsNonExtending},
		{"BuildErrorWritesNothing", testBuildErrorWritesNothing},
		{"Filters", testFilters},
		{"ScanPagesAndLimit", testScanPagesAndLimit},
		{"ScanWholeEvents", testScanWholeEvents},
		{"TreeHashes", testTreeHashes},
		{"Meta", testMeta},
		{"SwapMeta", testSwapMeta},
		{"WatchHead", testWatchHead},
		{"Reopen", testReopen},
		{"ConcurrentReadersDuringAppends", testConcurrentReaders},
		{"Tokens", runTokens},
		{"Idempotency", runIdempotency},
		{"Provenance", runProvenance},
		{"Peers", runPeers},
		{"Queries", RunQueries},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

var kinds = []string{"request_allowed", "request_denied", "watch_created"}
var sources = []string{"svc-a", "svc-b"}

// buildRecords builds n valid records continuing head, with the tree hashes
// the ledger would compute, reading earlier hashes through r.
func buildRecords(head store.Head, n int, r tlog.HashReader) ([]store.Record, error) {
	return buildShaped(head, n, r, nil)
}

// buildShaped is buildRecords with shape, if not nil, changing each event's
// fields before it is hashed.
func buildShaped(head store.Head, n int, r tlog.HashReader, shape func(*event.Event)) ([]store.Record, error) {
	recs := make([]store.Record, 0, n)
	prev := head.Hash
	pending := map[int64]tlog.Hash{}
	hr := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		var miss []int64
		for _, x := range idx {
			if _, ok := pending[x]; !ok {
				miss = append(miss, x)
			}
		}
		if len(miss) > 0 {
			got, err := r.ReadHashes(miss)
			if err != nil {
				return nil, err
			}
			for i, x := range miss {
				pending[x] = got[i]
			}
		}
		for i, x := range idx {
			out[i] = pending[x]
		}
		return out, nil
	})
	for i := range n {
		id := head.ID + int64(i) + 1
		e := event.Event{
			ID:        id,
			Timestamp: fmt.Sprintf("2026-05-15T03:00:%02d.000000+00:00", id%60),
			Kind:      kinds[id%int64(len(kinds))],
			Source:    sources[id%int64(len(sources))],
			Payload:   []byte(fmt.Sprintf(`{"n":%d}`, id)),
			PrevHash:  prev,
		}
		if shape != nil {
			shape(&e)
		}
		e.Hash, _ = e.ComputeHash(nil)
		tree, err := tlog.StoredHashesForRecordHash(id-1, tlog.RecordHash(e.Hash[:]), hr)
		if err != nil {
			return nil, err
		}
		base := tlog.StoredHashIndex(0, id-1)
		for j, h := range tree {
			pending[base+int64(j)] = h
		}
		recs = append(recs, store.Record{Event: e, Tree: tree})
		prev = e.Hash
	}
	return recs, nil
}

// appendN appends n records and returns them.
func appendN(t testing.TB, st store.Store, n int) []store.Record {
	t.Helper()
	recs, err := st.Append(context.Background(), func(tx store.Tx) ([]store.Record, error) {
		return txRecords(tx, n)
	})
	if err != nil {
		t.Fatalf("append %d: %v", n, err)
	}
	return recs
}

func ids(evs []event.Event) []int64 {
	out := make([]int64, len(evs))
	for i := range evs {
		out[i] = evs[i].ID
	}
	return out
}

func testEmptyHead(t *testing.T, open Open) {
	st := open(t).Store
	ctx := context.Background()
	h, err := st.Head(ctx)
	if err != nil || h != (store.Head{}) {
		t.Fatalf("Head of empty store = %+v, %v; want zero", h, err)
	}
	if _, err := st.Get(ctx, 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(1) on empty store: %v, want ErrNotFound", err)
	}
	evs, err := st.Latest(ctx, store.Filter{}, 10)
	if err != nil || len(evs) != 0 {
		t.Fatalf("Latest on empty store = %v, %v", evs, err)
	}
}

func testAppendAndRead(t *testing.T, open Open) {
	st := open(t).Store
	ctx := context.Background()
	a := appendN(t, st, 3)
	b := appendN(t, st, 2)
	all := append(a, b...)
	h, err := st.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.ID != 5 || h.Hash != all[4].Hash {
		t.Fatalf("Head = %+v, want id 5 hash %s", h, all[4].Hash)
	}
	for _, r := range all {
		got, err := st.Get(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != r.ID || got.Timestamp != r.Timestamp || got.Kind != r.Kind || got.Source != r.Source ||
			string(got.Payload) != string(r.Payload) || got.PrevHash != r.PrevHash || got.Hash != r.Hash {
			t.Fatalf("Get(%d) = %+v, want %+v", r.ID, got, r.Event)
		}
	}
	if _, err := st.Get(ctx, 6); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(6): %v, want ErrNotFound", err)
	}
}

func testRejectsNonExtending(t *testing.T, open Open) {
	st := open(t).Store
	ctx := context.Background()
	appendN(t, st, 2)
	cases := map[string]func([]store.Record){
		"gap":           func(r []store.Record) { r[0].ID++ },
		"reused id":     func(r []store.Record) { r[0].ID-- },
		"wrong prev":    func(r []store.Record) { r[0].PrevHash[0] ^= 1 },
		"broken inside": func(r []store.Record) { r[1].PrevHash[0] ^= 1 },
	}
	for name, mutate := range cases {
		_, err := st.Append(ctx, func(tx store.Tx) ([]store.Record, error) {
			recs, err := txRecords(tx, 2)
			if err == nil {
				mutate(recs)
			}
			return recs, err
		})
		if err == nil {
			t.Errorf("%s: append accepted", name)
		}
		if h, _ := st.Head(ctx); h.ID != 2 {
			t.Fatalf("%s: head moved to %d", name, h.ID)
		}
	}
}

func testBuildErrorWritesNothing(t *testing.T, open Open) {
	st := open(t).Store
	ctx := context.Background()
	appendN(t, st, 1)
	boom := errors.New("boom")
	_, err := st.Append(ctx, func(tx store.Tx) ([]store.Record, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Append returned %v, want the build error", err)
	}
	if h, _ := st.Head(ctx); h.ID != 1 {
		t.Fatalf("head = %d after failed build", h.ID)
	}
	appendN(t, st, 1) // the store is still usable
}

func testFilters(t *testing.T, open Open) {
	st := open(t).Store
	ctx := context.Background()
	all := appendN(t, st, 30)
	match := func(f store.Filter) []int64 {
		var out []int64
		for _, r := range all {
			if (len(f.Kinds) == 0 || slices.Contains(f.Kinds, r.Kind)) &&
				(len(f.Sources) == 0 || slices.Contains(f.Sources, r.Source)) &&
				r.ID > f.After && (f.Until == 0 || r.ID <= f.Until) {
				out = append(out, r.ID)
			}
		}
		return out
	}
	filters := []store.Filter{
		{},
		{Kinds: []string{"request_denied"}},
		{Kinds: []string{"request_denied", "watch_created"}},
		{Sources: []string{"svc-a"}},
		{Kinds: []string{"request_allowed"}, Sources: []string{"svc-b"}},
		{Kinds: []string{"nothing_like_it"}},
		{After: 10, Until: 20},
		{Kinds: []string{"watch_created"}, After: 5, Until: 25},
	}
	for _, f := range filters {
		want := match(f)
		var got []int64
		if err := st.Scan(ctx, f, 0, func(e *event.Event) error { got = append(got, e.ID); return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Scan(%+v) = %v, want %v", f, got, want)
		}
		latest, err := st.Latest(ctx, f, 4)
		if err != nil {
			t.Fatal(err)
		}
		wantLatest := want[max(0, len(want)-4):]
		if !slices.Equal(ids(latest), wantLatest) {
			t.Errorf("Latest(%+v, 4) = %v, want %v", f, ids(latest), wantLatest)
		}
	}
}

func testScanPagesAndLimit(t *testing.T, open Open) {
	st := open(t).Store
	ctx := context.Background()
	appendN(t, st, 5000) // more than one internal page in every backend we have
	var got []int64
	err := st.Scan(ctx, store.Filter{After: 100}, 4500, func(e *event.Event) error {
		got = append(got, e.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4500 || got[0] != 101 || got[4499] != 4600 {
		t.Fatalf("Scan after 100 limit 4500: %d events, %v..%v", len(got), got[0], got[len(got)-1])
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("Scan out of order at %d: %d after %d", i, got[i], got[i-1])
		}
	}
	for _, workers := range []int{1, 2, 3} {
		var par []int64
		err := store.ScanParallel(ctx, st, store.Filter{After: 7, Until: 4999}, workers, 700, func(e *event.Event) error {
			par = append(par, e.ID)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(par) != 4992 || par[0] != 8 || par[len(par)-1] != 4999 {
			t.Fatalf("ScanParallel(7, 4999] with %d workers: %d events", workers, len(par))
		}
		for i := 1; i < len(par); i++ {
			if par[i] != par[i-1]+1 {
				t.Fatalf("ScanParallel out of order at %d: %d after %d", i, par[i], par[i-1])
			}
		}
	}
	stop := errors.New("stop")
	n := 0
	err = st.Scan(ctx, store.Filter{}, 0, func(*event.Event) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 10 {
		t.Fatalf("Scan did not stop on callback error: n=%d err=%v", n, err)
	}
}

// testScanWholeEvents checks that Scan and ScanParallel deliver every field
// as stored, including unusual ones (very long, non-ASCII, NUL bytes, an
// empty payload), and that a kept Payload is the event's own: appending to
// it changes no other event.
func testScanWholeEvents(t *testing.T, open Open) {
	st := open(t).Store
	ctx := context.Background()
	long := strings.Repeat("k", 2<<20+1) // over any packing a backend may use
	shapes := []func(*event.Event){
		func(e *event.Event) { e.Kind = long },
		func(e *event.Event) { e.Source = "quelle-ü-\x00-" + long[:300] },
		func(e *event.Event) { e.Payload = []byte(`{"s":"` + strings.Repeat("p", 70<<10) + `"}`) },
		func(e *event.Event) { e.Payload = nil },
		func(e *event.Event) { e.Timestamp = "2026-05-15T03:00:00Z" },
		func(e *event.Event) { e.Payload = []byte(`{"nul":"\u0000","x":"\u00e9"}`) },
	}
	var want []store.Record
	for range 3 {
		recs, err := st.Append(ctx, func(tx store.Tx) ([]store.Record, error) {
			i := 0
			return buildShaped(tx.Head(), 700, tlog.HashReaderFunc(tx.ReadHashes), func(e *event.Event) {
				if i%97 < len(shapes) {
					shapes[i%97](e)
				}
				i++
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, recs...)
	}
	check := func(name string, got []event.Event) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d events, want %d", name, len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i].Event
			if g.ID != w.ID || g.Timestamp != w.Timestamp || g.Kind != w.Kind || g.Source != w.Source ||
				string(g.Payload) != string(w.Payload) || g.PrevHash != w.PrevHash || g.Hash != w.Hash {
				t.Fatalf("%s: event %d differs from what was appended: got %.200q, want %.200q", name, w.ID, fmt.Sprint(g), fmt.Sprint(w))
			}
		}
	}
	keep := func(into *[]event.Event) func(*event.Event) error {
		return func(e *event.Event) error {
			*into = append(*into, *e)
			return nil
		}
	}
	var got []event.Event
	if err := st.Scan(ctx, store.Filter{}, 0, keep(&got)); err != nil {
		t.Fatal(err)
	}
	check("Scan", got)
	for i := range got {
		got[i].Payload = append(got[i].Payload, "garbage"...)
	}
	for i := range got {
		got[i].Payload = got[i].Payload[:len(got[i].Payload)-len("garbage")]
	}
	check("Scan after appending to every kept payload", got)
	var par []event.Event
	if err := store.ScanParallel(ctx, st, store.Filter{Until: int64(len(want))}, 3, 500, keep(&par)); err != nil {
		t.Fatal(err)
	}
	check("ScanParallel", par)
}

func testTreeHashes(t *testing.T, open Open) {
	st := open(t).Store
	ctx := context.Background()
	var all []store.Record
	for _, n := range []int{1, 2, 5, 8, 13, 100} {
		all = append(all, appendN(t, st, n)...)
	}
	hr := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return st.ReadHashes(ctx, idx) })
	for _, size := range []int64{1, 2, 3, 7, 8, 29, int64(len(all))} {
		got, err := tlog.TreeHash(size, hr)
		if err != nil {
			t.Fatalf("TreeHash(%d): %v", size, err)
		}
		// Recompute the root from the leaves alone, independently.
		var leaves []tlog.Hash
		for _, r := range all[:size] {
			leaves = append(leaves, tlog.RecordHash(r.Hash[:]))
		}
		if want := rootOf(leaves); got != want {
			t.Fatalf("tree size %d: stored root %x, recomputed %x", size, got, want)
		}
		p, err := tlog.ProveRecord(size, size-1, hr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckRecord(p, size, got, size-1, leaves[size-1]); err != nil {
			t.Fatalf("inclusion proof of last leaf in tree %d: %v", size, err)
		}
	}
	if _, err := st.ReadHashes(ctx, []int64{tlog.StoredHashIndex(0, int64(len(all)))}); err == nil {
		t.Fatal("ReadHashes beyond the tree succeeded")
	}
}

// rootOf is RFC 6962's MTH, written from the definition.
func rootOf(leaves []tlog.Hash) tlog.Hash {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	return tlog.NodeHash(rootOf(leaves[:k]), rootOf(leaves[k:]))
}

func testMeta(t *testing.T, open Open) {
	st := open(t).Store
	ctx := context.Background()
	if _, err := st.Meta(ctx, "log_id"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Meta of missing key: %v", err)
	}
	for _, v := range []string{"one", "two"} {
		if err := st.SetMeta(ctx, "log_id", []byte(v)); err != nil {
			t.Fatal(err)
		}
		got, err := st.Meta(ctx, "log_id")
		if err != nil || string(got) != v {
			t.Fatalf("Meta = %q, %v; want %q", got, err, v)
		}
	}
}

func testReopen(t *testing.T, open Open) {
	stg := open(t)
	st, reopen := stg.Store, stg.Reopen
	if reopen == nil {
		t.Skip("backend cannot reopen")
	}
	ctx := context.Background()
	a := appendN(t, st, 7)
	st.SetMeta(ctx, "k", []byte("v"))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = reopen()
	h, err := st.Head(ctx)
	if err != nil || h.ID != 7 || h.Hash != a[6].Hash {
		t.Fatalf("Head after reopen = %+v, %v", h, err)
	}
	b := appendN(t, st, 2) // the tree continues from the persisted edge
	if b[0].PrevHash != a[6].Hash {
		t.Fatal("chain did not continue across reopen")
	}
	if v, err := st.Meta(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("meta lost across reopen: %q, %v", v, err)
	}
}

func testConcurrentReaders(t *testing.T, open Open) {
	st := open(t).Store
	ctx := context.Background()
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				h, err := st.Head(ctx)
				if err != nil {
					errs <- err
					return
				}
				if h.ID == 0 {
					continue // Until 0 would mean "no bound"
				}
				prev := int64(0)
				err = st.Scan(ctx, store.Filter{Until: h.ID}, 0, func(e *event.Event) error {
					if e.ID != prev+1 {
						return fmt.Errorf("reader saw %d after %d", e.ID, prev)
					}
					prev = e.ID
					return nil
				})
				if err == nil && prev != h.ID {
					err = fmt.Errorf("reader saw up to %d, head was %d", prev, h.ID)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range 50 {
		appendN(t, st, 20)
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
