package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/pgtest"
	"github.com/audit-stream/audit-stream/internal/store"
)

// Token lookups are answered in batches, yet each sees every change
// committed before it was called: while other lookups keep batches in
// flight, a token revoked (or created) through a peer reads revoked (or
// present) on every call made after the change returned, and a batch
// answers each caller with its own token.
func TestTokenLookupsBatchedYetFresh(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Schema(t)
	st, peer := openURL(t, url), openURL(t, url)
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	const n = 12
	digest := func(i int) [sha256.Size]byte { return sha256.Sum256([]byte(fmt.Sprint("secret-", i))) }
	for i := range n {
		if err := peer.CreateToken(ctx, store.Token{ID: fmt.Sprint("t", i), Roles: []string{store.RoleReader}, Digest: digest(i), Created: at}); err != nil {
			t.Fatal(err)
		}
	}
	// Background load: lookups of every token and of unknown digests.
	stop := make(chan struct{})
	var bg sync.WaitGroup
	var lookups atomic.Int64
	for g := range 16 {
		bg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := (g + i) % (n + 1)
				got, err := st.TokenByDigest(ctx, digest(k))
				switch {
				case k == n && !errors.Is(err, store.ErrNotFound):
					t.Errorf("unknown digest: %+v, %v", got, err)
				case k < n && (err != nil || got.ID != fmt.Sprint("t", k)):
					t.Errorf("token %d: %+v, %v", k, got, err)
				}
				lookups.Add(1)
			}
		})
	}
	for i := range n {
		if err := peer.RevokeToken(ctx, fmt.Sprint("t", i), at.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				got, err := st.TokenByDigest(ctx, digest(i))
				if err != nil || got.Revoked.IsZero() {
					t.Errorf("token %d revoked by a peer still reads %+v, %v", i, got, err)
				}
			})
		}
		wg.Wait()
	}
	close(stop)
	bg.Wait()
	if lookups.Load() == 0 {
		t.Fatal("no background lookups ran")
	}
}

// HasTokens asked by many callers at once while a peer creates the first
// token: every call made after the creation returned answers true.
func TestHasTokensBatchedYetFresh(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Schema(t)
	st, peer := openURL(t, url), openURL(t, url)
	stop := make(chan struct{})
	var bg sync.WaitGroup
	for range 8 {
		bg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := st.HasTokens(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	d := sha256.Sum256([]byte("first"))
	if err := peer.CreateToken(ctx, store.Token{ID: "first", Roles: []string{store.RoleAdmin}, Digest: d, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if has, err := st.HasTokens(ctx); err != nil || !has {
				t.Errorf("HasTokens after a peer created the first token = %v, %v", has, err)
			}
		})
	}
	wg.Wait()
	close(stop)
	bg.Wait()
}
