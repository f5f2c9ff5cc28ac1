package faultstore_test

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/faultstore"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
	"github.com/audit-stream/audit-stream/internal/store/storetest"
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
