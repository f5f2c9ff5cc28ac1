package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/pgtest"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/provenance"
	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"
)

// An append built ahead of the lock on the head this instance last left is
// written in one pipeline when that head holds; when another instance moved
// the head, or the head is behind it, the pipeline writes nothing (no
// event, no provenance record, no notification) and the append is built
// again on the head read under the lock. The same holds when the events
// are written by COPY (a group of at least copyMin), whose transaction
// checks the head before it.
func TestAppendAheadChecksTheHead(t *testing.T) {
	t.Run("insert", func(t *testing.T) { testAppendAheadChecksTheHead(t, defaultCopyMin) })
	t.Run("copy", func(t *testing.T) { testAppendAheadChecksTheHead(t, 1) })
}

func testAppendAheadChecksTheHead(t *testing.T, copyMin int) {
	ctx := context.Background()
	url := pgtest.Schema(t)
	a, b := openTest(t, url), openTest(t, url)
	a.copyMin, b.copyMin = copyMin, copyMin
	listener, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(ctx)
	if _, err := listener.Exec(ctx, "LISTEN "+pgx.Identifier{a.channel}.Sanitize()); err != nil {
		t.Fatal(err)
	}

	// appendOne appends one event with its provenance record through st
	// and returns the heads its build ran on, ahead of the lock or under it.
	type call struct {
		head  int64
		ahead bool
	}
	appendOne := func(st *Store) []call {
		t.Helper()
		var calls []call
		var err error
		// A failed pipeline that left the lock held would stall the
		// next append of another instance: give up rather than hang.
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err = st.Append(actx, func(tx store.Tx) ([]store.Record, error) {
			calls = append(calls, call{tx.Head().ID, tx.(*txView).tx == nil})
			// The hashes come from the store, as a ledger's come from
			// its memory: the build ahead of the lock reads none.
			h := tx.Head()
			r := store.Record{Event: event.Event{ID: h.ID + 1, Timestamp: "2026-05-15T03:00:00Z", Kind: "k", Source: "s", Payload: []byte("{}"), PrevHash: h.Hash}}
			r.Hash, _ = r.ComputeHash(nil)
			r.Tree, err = tlog.StoredHashesForRecordHash(h.ID, tlog.RecordHash(r.Hash[:]), tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
				return st.ReadHashes(ctx, idx)
			}))
			if err != nil {
				return nil, err
			}
			recs := []store.Record{r}
			p := provenance.Record{FirstID: r.ID, Count: 1, AppendedBy: "open", ReceivedAt: r.Timestamp, Flags: provenance.Flags{0}, LastHash: r.Hash}
			p.Chain = p.ChainHash(event.Hash{})
			return recs, tx.PutProvenance(&p)
		})
		if err != nil {
			t.Fatal(err)
		}
		return calls
	}

	// The first appends read the head under the lock; once the head is
	// where a's own last append left it, a assumes it.
	for range 4 {
		appendOne(a)
	}
	if got := appendOne(a); len(got) != 1 || !got[0].ahead || got[0].head != 4 {
		t.Fatalf("uncontended append: builds %+v, want one ahead of the lock on head 4", got)
	}

	// Another instance moves the head: once a's listener has heard of
	// it, a reads the head under the lock.
	appendOne(b)
	for deadline := time.Now().Add(10 * time.Second); a.foreign.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a never heard of b's head")
		}
	}
	// And for a while after, though a was the last to append since.
	a.quiet = time.Hour
	for head := int64(6); head <= 8; head++ {
		if got := appendOne(a); len(got) != 1 || got[0].ahead || got[0].head != head {
			t.Fatalf("right after another instance appended: builds %+v, want one under the lock on %d", got, head)
		}
	}
	// Another instance moves the head before a's listener tells it
	// (forced): a assumes its own head and the lock proves it wrong.
	appendOne(b)
	stale := store.Head{ID: 9}
	copyHash(t, a, 9, &stale)
	a.ahead.Store(&stale)
	a.quiet = 0
	if got := appendOne(a); len(got) != 2 || !got[0].ahead || got[0].head != 9 || got[1].ahead || got[1].head != 10 {
		t.Fatalf("head moved by another instance: builds %+v, want ahead on 9, then under the lock on 10", got)
	}

	appendOne(b) // the failed pipeline holds no lock
	a.quiet = time.Hour
	if got := appendOne(a); len(got) != 1 || got[0].ahead {
		t.Fatalf("right after the lock proved a's head wrong: builds %+v, want one under the lock", got)
	}
	a.quiet = 0

	// A head behind the assumed one (a database restored to an older
	// state): nothing is written on top of the missing events.
	ghost := store.Head{ID: 14, Hash: event.Hash{14}}
	a.ahead.Store(&ghost)
	if got := appendOne(a); len(got) != 2 || !got[0].ahead || got[0].head != 14 || got[1].ahead || got[1].head != 13 {
		t.Fatalf("head behind the assumed one: builds %+v, want ahead on 14, then under the lock on 13", got)
	}

	var events, provs, maxProv int64
	if err := a.pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM provenance), (SELECT max(first_id) FROM provenance)").Scan(&events, &provs, &maxProv); err != nil {
		t.Fatal(err)
	}
	if events != 14 || provs != 14 || maxProv != 14 {
		t.Fatalf("%d events, %d provenance records up to %d; want 14, 14, 14", events, provs, maxProv)
	}
	checkChain(t, a, 14)
	for {
		wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		n, err := listener.WaitForNotification(wctx)
		cancel()
		if err != nil {
			break
		}
		if h, _ := parseHead(n.Payload); h.ID > 14 {
			t.Fatalf("notified head %d, beyond the log", h.ID)
		}
	}
}

func copyHash(t *testing.T, st *Store, id int64, h *store.Head) {
	t.Helper()
	e, err := st.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	h.Hash = e.Hash
}

// checkChain checks that events 1…n link by prev_hash and hash as stored.
func checkChain(t *testing.T, st *Store, n int64) {
	t.Helper()
	var prev event.Hash
	for id := int64(1); id <= n; id++ {
		e, err := st.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if e.PrevHash != prev {
			t.Fatalf("event %d does not follow event %d", id, id-1)
		}
		if h, _ := e.ComputeHash(nil); h != e.Hash {
			t.Fatalf("event %d: stored hash is not its hash", id)
		}
		prev = e.Hash
	}
}
