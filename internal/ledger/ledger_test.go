package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/tlog"
)

func open(t testing.TB, dir string, opt ledger.Options) (*sqlite.Store, *ledger.Ledger) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(context.Background(), st, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Close(context.Background())
		st.Close()
	})
	return st, l
}

func req(i int) event.Request {
	return event.Request{Kind: "other", Source: fmt.Sprintf("s%d", i%3), Payload: fmt.Appendf(nil, `{"i":%d}`, i)}
}

// mth is RFC 6962's Merkle tree hash, written from the definition, over the
// leaves SHA-256(0x00 ‖ event hash).
func mth(leaves []tlog.Hash) tlog.Hash {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	return tlog.NodeHash(mth(leaves[:k]), mth(leaves[k:]))
}

// checkLog re-verifies the whole log: the chain, and the stored Merkle tree
// against a root recomputed from the event hashes alone, at every size.
func checkLog(t *testing.T, st store.Store) int64 {
	t.Helper()
	ctx := context.Background()
	var leaves []tlog.Hash
	rep, err := verify.Stream(ctx, func(ctx context.Context, fn func(*event.Event) error) error {
		return st.Scan(ctx, store.Filter{}, 0, fn)
	}, verify.StreamOptions{Visit: func(e *event.Event) error {
		leaves = append(leaves, tlog.RecordHash(e.Hash[:]))
		return nil
	}})
	if err != nil || !rep.Valid {
		t.Fatalf("chain: %+v %v", rep, err)
	}
	hr := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return st.ReadHashes(ctx, idx) })
	for size := int64(1); size <= int64(len(leaves)); size++ {
		got, err := tlog.TreeHash(size, hr)
		if err != nil {
			t.Fatalf("stored tree at size %d: %v", size, err)
		}
		if want := mth(leaves[:size]); got != want {
			t.Fatalf("stored tree at size %d: root %x, recomputed %x", size, got, want)
		}
	}
	return int64(len(leaves))
}

// Concurrent appends of random sizes are grouped into shared transactions;
// whatever the grouping, ids are consecutive per request and the stored tree
// is exactly the RFC 6962 tree of the chain, also after a restart reloads
// the tree's right edge.
func TestGroupCommitKeepsChainAndTree(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, l := open(t, dir, ledger.Options{MaxGroup: 50})
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 20 {
				n := 1 + r.IntN(7)
				reqs := make([]event.Request, n)
				for i := range reqs {
					reqs[i] = req(i)
				}
				evs, err := l.Append(context.Background(), reqs)
				if err != nil {
					t.Error(err)
					return
				}
				for i := 1; i < len(evs); i++ {
					if evs[i].ID != evs[i-1].ID+1 {
						t.Errorf("request's events not consecutive: %d after %d", evs[i].ID, evs[i-1].ID)
					}
				}
				mu.Lock()
				total += n
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if n := checkLog(t, st); n != int64(total) {
		t.Fatalf("log holds %d events, %d were appended", n, total)
	}
	l.Close(context.Background())
	st.Close()

	st, l = open(t, dir, ledger.Options{})
	for i := range 37 {
		if _, err := l.Append(context.Background(), []event.Request{req(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := checkLog(t, st); n != int64(total)+37 {
		t.Fatalf("after restart the log holds %d events, want %d", n, total+37)
	}
}

// An append whose context ends before it is sequenced writes nothing.
func TestCancelledBeforeSequencingWritesNothing(t *testing.T) {
	t.Parallel()
	st, l := open(t, t.TempDir(), ledger.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Append(ctx, []event.Request{req(1)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a cancelled context: %v", err)
	}
	if h, _ := st.Head(context.Background()); h.ID != 0 {
		t.Fatalf("head %d after a cancelled append", h.ID)
	}
}

// Close answers every append already queued, then refuses new ones; the
// feed closes after the last event.
func TestCloseDrains(t *testing.T) {
	t.Parallel()
	st, l := open(t, t.TempDir(), ledger.Options{})
	var wg sync.WaitGroup
	var ok, refused sync.Map
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			evs, err := l.Append(context.Background(), []event.Request{req(i)})
			switch {
			case err == nil:
				ok.Store(evs[0].ID, true)
			case errors.Is(err, ledger.ErrClosed):
				refused.Store(i, true)
			default:
				t.Errorf("append: %v", err)
			}
		}()
	}
	time.Sleep(time.Millisecond)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	n := checkLog(t, st)
	acked := 0
	ok.Range(func(k, v any) bool { acked++; return true })
	if int64(acked) != n {
		t.Fatalf("%d appends answered, %d events in the log", acked, n)
	}
	if !l.Feed().Closed() || l.Feed().Head() != n {
		t.Fatalf("feed closed=%v head=%d, want closed at %d", l.Feed().Closed(), l.Feed().Head(), n)
	}
	if _, err := l.Append(context.Background(), []event.Request{req(0)}); !errors.Is(err, ledger.ErrClosed) {
		t.Fatalf("append after Close: %v", err)
	}
}
