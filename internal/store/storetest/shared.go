package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

func testSwapMeta(t *testing.T, open Open) {
	st := open(t).Store
	ctx := context.Background()
	if err := st.SwapMeta(ctx, "cp", []byte("x"), []byte("a")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("swap of a missing key from a value: %v, want ErrConflict", err)
	}
	if err := st.SwapMeta(ctx, "cp", nil, []byte("a")); err != nil {
		t.Fatalf("first swap from nothing: %v", err)
	}
	if err := st.SwapMeta(ctx, "cp", nil, []byte("b")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("swap from nothing over a value: %v, want ErrConflict", err)
	}
	if err := st.SwapMeta(ctx, "cp", []byte("b"), []byte("c")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("swap from a stale value: %v, want ErrConflict", err)
	}
	if err := st.SwapMeta(ctx, "cp", []byte("a"), []byte("b")); err != nil {
		t.Fatalf("swap from the stored value: %v", err)
	}
	if v, err := st.Meta(ctx, "cp"); err != nil || string(v) != "b" {
		t.Fatalf("Meta after swaps = %q, %v; want b", v, err)
	}
	if err := st.SwapMeta(ctx, "other", nil, []byte("z")); err != nil {
		t.Fatalf("swap of another key: %v", err)
	}
	if v, _ := st.Meta(ctx, "cp"); string(v) != "b" {
		t.Fatalf("swapping another key changed cp to %q", v)
	}
	counter(t, []store.Store{st})
}

// counter has goroutines increment a decimal counter with read-and-swap
// loops through the given stores: no increment may be lost, whichever store
// each went through.
func counter(t *testing.T, stores []store.Store) {
	t.Helper()
	ctx := context.Background()
	const workers, each = 6, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		st := stores[w%len(stores)]
		wg.Go(func() {
			for range each {
				for {
					old, err := st.Meta(ctx, "counter")
					if errors.Is(err, store.ErrNotFound) {
						old, err = nil, nil
					}
					if err != nil {
						errs <- err
						return
					}
					n, _ := strconv.Atoi(string(old))
					err = st.SwapMeta(ctx, "counter", old, []byte(strconv.Itoa(n+1)))
					if err == nil {
						break
					}
					if !errors.Is(err, store.ErrConflict) {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	v, err := stores[0].Meta(ctx, "counter")
	if err != nil || string(v) != strconv.Itoa(workers*each) {
		t.Fatalf("counter = %q, %v after %d swaps: an update was lost", v, err, workers*each)
	}
}

// waitHead reads heads from ch until one reaches id, checking they never go
// backwards.
func waitHead(t *testing.T, ch <-chan store.Head, id int64, hash event.Hash) {
	t.Helper()
	var last int64 = -1
	timeout := time.After(10 * time.Second)
	for {
		select {
		case h, ok := <-ch:
			if !ok {
				t.Fatalf("head channel closed before head %d", id)
			}
			if h.ID < last {
				t.Fatalf("head went backwards: %d after %d", h.ID, last)
			}
			last = h.ID
			if h.ID == id {
				if h.Hash != hash {
					t.Fatalf("head %d announced with hash %s, want %s", id, h.Hash, hash)
				}
				return
			}
			if h.ID > id {
				t.Fatalf("head %d announced, expected to see %d first", h.ID, id)
			}
		case <-timeout:
			t.Fatalf("head %d not announced within 10s (last %d)", id, last)
		}
	}
}

func testWatchHead(t *testing.T, open Open) {
	st := open(t).Store
	ctx, cancel := context.WithCancel(context.Background())
	ch := st.WatchHead(ctx)
	a := appendN(t, st, 3)
	waitHead(t, ch, 3, a[2].Hash)
	var last store.Record
	for range 20 {
		r := appendN(t, st, 2)
		last = r[1]
	}
	waitHead(t, ch, last.ID, last.Hash)
	cancel()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("head channel not closed after its context ended")
		}
	}
}

// runPeers checks what instances sharing the storage see of each other.
func runPeers(t *testing.T, open Open) {
	ctx := context.Background()
	peers := func(t *testing.T) (store.Store, store.Store, bool) {
		stg := open(t)
		if stg.Peer == nil {
			t.Skip("backend has no peers")
		}
		return stg.Store, stg.Peer(), stg.PeerAppends
	}
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

	t.Run("TokensOnTheNextCall", func(t *testing.T) {
		st, peer, _ := peers(t)
		d := sha256.Sum256([]byte("peer-secret"))
		// Warm whatever the backend caches.
		if has, err := st.HasTokens(ctx); err != nil || has {
			t.Fatalf("HasTokens = %v, %v on a fresh store", has, err)
		}
		if _, err := st.TokenByDigest(ctx, d); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("TokenByDigest before create: %v", err)
		}
		tok := store.Token{ID: "tp", Roles: []string{store.RoleReader}, Digest: d, Created: at}
		if err := peer.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if has, err := st.HasTokens(ctx); err != nil || !has {
			t.Fatalf("HasTokens after a peer created one = %v, %v", has, err)
		}
		got, err := st.TokenByDigest(ctx, d)
		if err != nil || got.ID != "tp" || !got.Revoked.IsZero() {
			t.Fatalf("token created by a peer: %+v, %v", got, err)
		}
		if err := peer.RevokeToken(ctx, "tp", at.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		got, err = st.TokenByDigest(ctx, d)
		if err != nil || got.Usable(at.Add(2*time.Hour)) != "revoked" {
			t.Fatalf("token revoked by a peer still reads %+v, %v", got, err)
		}
	})

	t.Run("SwapMeta", func(t *testing.T) {
		st, peer, _ := peers(t)
		if err := st.SwapMeta(ctx, "cp", nil, []byte("a")); err != nil {
			t.Fatal(err)
		}
		if err := peer.SwapMeta(ctx, "cp", nil, []byte("b")); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("peer swap from nothing over a value: %v, want ErrConflict", err)
		}
		if err := peer.SwapMeta(ctx, "cp", []byte("a"), []byte("b")); err != nil {
			t.Fatal(err)
		}
		if err := st.SwapMeta(ctx, "cp", []byte("a"), []byte("c")); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("swap over a peer's value: %v, want ErrConflict", err)
		}
		counter(t, []store.Store{st, peer})
	})

	t.Run("ConcurrentAppends", func(t *testing.T) {
		st, peer, appends := peers(t)
		if !appends {
			t.Skip("peers of this backend do not append")
		}
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		heads := st.WatchHead(wctx)
		const rounds = 40
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for i, s := range []store.Store{st, peer, st, peer} {
			wg.Go(func() {
				for r := range rounds {
					key := store.IdempotencyKey{Scope: "s", Key: fmt.Sprintf("w%d-%d", i, r), Count: 2, Created: at}
					_, err := s.Append(ctx, func(tx store.Tx) ([]store.Record, error) {
						recs, err := txRecords(tx, 2)
						if err != nil {
							return nil, err
						}
						key.FirstID = recs[0].ID
						return recs, tx.PutKey(key)
					})
					if err != nil {
						errs <- fmt.Errorf("writer %d round %d: %w", i, r, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		const total = 4 * rounds * 2
		h, err := peer.Head(ctx)
		if err != nil || h.ID != total {
			t.Fatalf("head after concurrent appends = %+v, %v; want %d", h, err, total)
		}
		waitHead(t, heads, total, h.Hash)
		checkChain(t, st, total)
		// A key claimed through one instance is seen through the other.
		if _, err := st.Append(ctx, func(tx store.Tx) ([]store.Record, error) {
			k, err := tx.Key("s", "w1-0")
			if err != nil {
				return nil, fmt.Errorf("key claimed through the peer: %w", err)
			}
			if k.Count != 2 {
				return nil, fmt.Errorf("key read back as %+v", k)
			}
			return txRecords(tx, 1)
		}); err != nil {
			t.Fatal(err)
		}
	})
}

// checkChain scans the whole log and checks ids, links and the tree root.
func checkChain(t *testing.T, st store.Store, n int64) {
	t.Helper()
	ctx := context.Background()
	var prev event.Hash
	var leaves []tlog.Hash
	want := int64(1)
	err := st.Scan(ctx, store.Filter{}, 0, func(e *event.Event) error {
		if e.ID != want || e.PrevHash != prev {
			return fmt.Errorf("event %d (want %d) does not extend the chain", e.ID, want)
		}
		if h, _ := e.ComputeHash(nil); h != e.Hash {
			return fmt.Errorf("event %d: stored hash is not the event's", e.ID)
		}
		prev, want = e.Hash, want+1
		leaves = append(leaves, tlog.RecordHash(e.Hash[:]))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want-1 != n {
		t.Fatalf("chain holds %d events, want %d", want-1, n)
	}
	root, err := tlog.TreeHash(n, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return st.ReadHashes(ctx, idx) }))
	if err != nil {
		t.Fatal(err)
	}
	if root != rootOf(leaves) {
		t.Fatal("stored tree root differs from the root of the chain's leaves")
	}
}
