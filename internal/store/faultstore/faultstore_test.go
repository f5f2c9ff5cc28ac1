package faultstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/faultstore"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
	"github.com/audit-stream/audit-stream/internal/store/storetest"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/tlog"
)

// Unarmed, the wrapper is the store it wraps: it passes the whole
// conformance suite.
func TestConformanceUnarmed(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Storage {
		dir := t.TempDir()
		open := func() store.Store {
			st, err := sqlite.Open(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return faultstore.New(st)
		}
		return storetest.Storage{Store: open(), Reopen: open}
	})
}

func openLedger(t *testing.T) (*faultstore.Store, *ledger.Ledger) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fs := faultstore.New(st)
	led, err := ledger.Open(ctx, fs, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		led.Close(context.Background())
		st.Close()
	})
	return fs, led
}

func req() []event.Request {
	return []event.Request{{Kind: "request_denied", Source: "svc", Payload: []byte(`{}`)}}
}

func TestDiskFullIsRecognisable(t *testing.T) {
	err := faultstore.ErrDiskFull
	if !store.IsFull(err) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("ErrDiskFull = %v: not recognised as full", err)
	}
}

func TestAppendBeforeCommitWritesNothing(t *testing.T) {
	ctx := context.Background()
	fs, led := openLedger(t)
	fs.FailTimes(faultstore.AppendBeforeCommit, faultstore.ErrDiskFull, 1)
	if _, err := led.Append(ctx, req()); !store.IsFull(err) {
		t.Fatalf("append while full: err = %v, want a full-storage error", err)
	}
	if h, _ := fs.Head(ctx); h.ID != 0 {
		t.Fatalf("head after a failed append = %d, want 0", h.ID)
	}
	// Healed after one failure: the next append goes through.
	evs, err := led.Append(ctx, req())
	if err != nil || evs[0].ID != 1 {
		t.Fatalf("append after the fault: %v, %v", evs, err)
	}
	if got := fs.Failed(faultstore.AppendBeforeCommit); got != 1 {
		t.Fatalf("Failed = %d, want 1", got)
	}
}

func TestAppendAfterCommitIsDurable(t *testing.T) {
	ctx := context.Background()
	fs, led := openLedger(t)
	boom := errors.New("acknowledgement lost")
	fs.FailTimes(faultstore.AppendAfterCommit, boom, 1)
	if _, err := led.Append(ctx, req()); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	if h, _ := fs.Head(ctx); h.ID != 1 {
		t.Fatalf("stored head = %d, want 1: the commit happened before the error", h.ID)
	}
}

func TestSetMeta(t *testing.T) {
	ctx := context.Background()
	fs, _ := openLedger(t)
	fs.Fail(faultstore.SetMeta, faultstore.ErrDiskFull)
	if err := fs.SetMeta(ctx, "k", []byte("v")); !store.IsFull(err) {
		t.Fatalf("SetMeta err = %v", err)
	}
	if _, err := fs.Meta(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a failed SetMeta wrote: %v", err)
	}
	fs.Heal(faultstore.SetMeta)
	if err := fs.SetMeta(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
}

func TestScanFailsAtEvent(t *testing.T) {
	ctx := context.Background()
	fs, led := openLedger(t)
	for range 10 {
		if _, err := led.Append(ctx, req()); err != nil {
			t.Fatal(err)
		}
	}
	boom := errors.New("read error")
	fs.FailScanAt(4, boom)
	var got []int64
	err := fs.Scan(ctx, store.Filter{}, 0, func(e *event.Event) error {
		got = append(got, e.ID)
		return nil
	})
	if !errors.Is(err, boom) || len(got) != 3 || got[2] != 3 {
		t.Fatalf("scan delivered %v, err %v; want 1..3 then %v", got, err, boom)
	}
	fs.HealAll()
	got = got[:0]
	if err := fs.Scan(ctx, store.Filter{}, 0, func(e *event.Event) error { got = append(got, e.ID); return nil }); err != nil || len(got) != 10 {
		t.Fatalf("healed scan: %v, %v", got, err)
	}
}

// An append whose acknowledgement is lost was committed all the same: the
// ledger must not reuse its id, and the events must still reach the feed's
// subscribers, through the head the store announces.
func TestLedgerContinuesAfterLostAcknowledgement(t *testing.T) {
	ctx := context.Background()
	fs, led := openLedger(t)
	fs.FailTimes(faultstore.AppendAfterCommit, errors.New("acknowledgement lost"), 1)
	if _, err := led.Append(ctx, req()); err == nil {
		t.Fatal("the failed append succeeded")
	}
	evs, err := led.Append(ctx, req())
	if err != nil || evs[0].ID != 2 {
		t.Fatalf("append after a lost acknowledgement: %v, %v; want event 2", evs, err)
	}
	got, _, err := led.Feed().Read(ctx, store.Filter{}, 10)
	if err != nil || len(got) != 2 || got[0].ID != 1 || got[1].PrevHash != got[0].Hash {
		t.Fatalf("feed after a lost acknowledgement: %v, %v; want events 1 and 2 chained", got, err)
	}
}

type storeHashes struct {
	ctx context.Context
	st  store.Store
}

func (r storeHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) { return r.st.ReadHashes(r.ctx, idx) }

// Many producers at once, while commits fail before and after they are
// written: the sequencer builds each batch on the tip the batch before will
// leave, so a failure (or a commit whose acknowledgement is lost) leaves the
// batch built on it wrong, and the committer must build it again in its
// transaction. Every acknowledged event must be stored as acknowledged, and
// the chain and the stored Merkle tree must verify.
func TestPipelinedBatchesSurviveFailedCommits(t *testing.T) {
	ctx := context.Background()
	fs, led := openLedger(t)
	const producers, each = 16, 60
	hiccup, lost := errors.New("disk hiccup"), errors.New("acknowledgement lost")
	acked := make(chan event.Event, producers*each)
	var refused atomic.Int64
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if p == 0 && i%6 == 3 {
					// Arm both faults while the others keep appending.
					fs.FailTimes(faultstore.AppendBeforeCommit, hiccup, 1)
					fs.FailTimes(faultstore.AppendAfterCommit, lost, 1)
				}
				evs, err := led.Append(ctx, []event.Request{{Kind: "other", Source: fmt.Sprintf("p%d", p), Payload: fmt.Appendf(nil, `{"i":%d}`, i)}})
				if err != nil {
					// Only the faults injected: never a batch
					// refused for not extending the head.
					if !errors.Is(err, hiccup) && !errors.Is(err, lost) {
						t.Errorf("append failed: %v", err)
					}
					refused.Add(1)
					continue
				}
				acked <- evs[0]
			}
		}()
	}
	wg.Wait()
	close(acked)
	failed := fs.Failed(faultstore.AppendBeforeCommit) + fs.Failed(faultstore.AppendAfterCommit)
	if fs.Failed(faultstore.AppendBeforeCommit) == 0 || fs.Failed(faultstore.AppendAfterCommit) == 0 {
		t.Fatal("no commit failed: the test tested nothing")
	}
	// Only the appends in a failed commit fail (a batch holds at most one
	// append per producer): the batches built on a failed one are built
	// again and written.
	if got := refused.Load(); got > int64(failed*producers) {
		t.Fatalf("%d appends failed in %d failed commits of at most %d appends", got, failed, producers)
	}
	n := 0
	for e := range acked {
		n++
		got, err := fs.Get(ctx, e.ID)
		if err != nil || got.Hash != e.Hash || got.PrevHash != e.PrevHash || string(got.Payload) != string(e.Payload) {
			t.Fatalf("acknowledged event %d: stored %+v, %v", e.ID, got, err)
		}
	}
	head, err := fs.Head(ctx)
	if err != nil || head.ID < int64(n) {
		t.Fatalf("head %+v, %v after %d acknowledged events", head, err, n)
	}
	src := func(ctx context.Context, fn func(*event.Event) error) error {
		return fs.Scan(ctx, store.Filter{}, 0, fn)
	}
	want := &verify.Target{Size: head.ID, What: "the stored tree", Root: func() (tlog.Hash, error) {
		return tlog.TreeHash(head.ID, storeHashes{ctx, fs})
	}}
	rep, err := verify.CheckTree(ctx, src, want, verify.StreamOptions{})
	if err != nil || !rep.Valid || rep.Checked != head.ID {
		t.Fatalf("verify after failed commits: %+v, %v", rep, err)
	}
	if evs, err := led.Append(ctx, req()); err != nil || evs[0].ID != head.ID+1 {
		t.Fatalf("append after the faults: %v, %v; want event %d", evs, err, head.ID+1)
	}
}
