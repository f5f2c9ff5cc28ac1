package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

// runTokens checks the store.Tokens contract.
func runTokens(t *testing.T, openStorage Open) {
	open := func(t *testing.T) store.Store { return openStorage(t).Store }
	ctx := context.Background()
	at := time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.UTC)
	tok := func(id string) store.Token {
		return store.Token{
			ID: id, Name: "name of " + id, Roles: []string{store.RoleProducer, store.RoleReader},
			Sources: []string{"billing", "a,b"}, Digest: sha256.Sum256([]byte("secret-" + id)),
			Created: at, Expires: at.Add(90 * 24 * time.Hour),
			SigningKey: "billing.example.com+1a2b3c4d+AW2lrGrRt1Hzfp8KhVx1JWYyzqIWMeYRlD+YVnB/V4ly",
		}
	}

	t.Run("CreateLookupList", func(t *testing.T) {
		st := open(t)
		if has, err := st.HasTokens(ctx); err != nil || has {
			t.Fatalf("HasTokens on a fresh store = %v, %v; want false", has, err)
		}
		want := tok("t1")
		if err := st.CreateToken(ctx, want); err != nil {
			t.Fatal(err)
		}
		admin := store.Token{ID: "t2", Roles: []string{store.RoleAdmin}, Digest: sha256.Sum256([]byte("x")), Created: at.Add(time.Second)}
		if err := st.CreateToken(ctx, admin); err != nil {
			t.Fatal(err)
		}
		if has, err := st.HasTokens(ctx); err != nil || !has {
			t.Fatalf("HasTokens = %v, %v; want true", has, err)
		}
		got, err := st.TokenByDigest(ctx, want.Digest)
		if err != nil {
			t.Fatal(err)
		}
		checkToken(t, got, want)
		if _, err := st.TokenByDigest(ctx, sha256.Sum256([]byte("unknown"))); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("TokenByDigest(unknown) err = %v, want ErrNotFound", err)
		}
		list, err := st.ListTokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 {
			t.Fatalf("ListTokens returned %d tokens, want 2", len(list))
		}
		checkToken(t, list[0], want)
		checkToken(t, list[1], admin)
		if len(list[1].Sources) != 0 || !list[1].Expires.IsZero() {
			t.Errorf("admin token read back with sources %q, expires %v", list[1].Sources, list[1].Expires)
		}
	})

	t.Run("DuplicatesRefused", func(t *testing.T) {
		st := open(t)
		if err := st.CreateToken(ctx, tok("t1")); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateToken(ctx, tok("t1")); err == nil {
			t.Error("a second token with the same id was accepted")
		}
		other := tok("t2")
		other.Digest = tok("t1").Digest
		if err := st.CreateToken(ctx, other); err == nil {
			t.Error("a second token with the same digest was accepted")
		}
		if err := st.CreateToken(ctx, tok("")); err == nil {
			t.Error("a token without an id was accepted")
		}
		if list, err := st.ListTokens(ctx); err != nil || len(list) != 1 {
			t.Errorf("after the refusals ListTokens = %d tokens, %v; want the first alone", len(list), err)
		}
	})

	t.Run("Revoke", func(t *testing.T) {
		st := open(t)
		want := tok("t1")
		if err := st.CreateToken(ctx, want); err != nil {
			t.Fatal(err)
		}
		if err := st.RevokeToken(ctx, "t1", at.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := st.RevokeToken(ctx, "t1", at.Add(2*time.Hour)); err != nil {
			t.Fatalf("revoking twice: %v", err)
		}
		got, err := st.TokenByDigest(ctx, want.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Revoked.Equal(at.Add(time.Hour)) {
			t.Errorf("revoked at %v, want the first revocation %v", got.Revoked, at.Add(time.Hour))
		}
		if why := got.Usable(at); why != "revoked" {
			t.Errorf("Usable = %q, want revoked", why)
		}
		if err := st.RevokeToken(ctx, "nope", at); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("revoking an unknown id: err = %v, want ErrNotFound", err)
		}
	})
}

func checkToken(t *testing.T, got, want store.Token) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || got.Digest != want.Digest ||
		!slices.Equal(got.Roles, want.Roles) || !slices.Equal(got.Sources, want.Sources) ||
		!got.Created.Equal(want.Created) || !got.Expires.Equal(want.Expires) || !got.Revoked.Equal(want.Revoked) ||
		got.SigningKey != want.SigningKey {
		t.Errorf("token read back as\n%+v\nwant\n%+v", got, want)
	}
}

// runIdempotency checks the idempotency-key part of the contract: keys are
// written inside the append transaction, durable with it, discarded with
// it, and pruned by age.
func runIdempotency(t *testing.T, openStorage Open) {
	open := func(t *testing.T) store.Store { return openStorage(t).Store }
	ctx := context.Background()
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	key := func(k string, created time.Time) store.IdempotencyKey {
		return store.IdempotencyKey{Scope: "tok1", Key: k, BodyDigest: sha256.Sum256([]byte(k)), Count: 1, Created: created}
	}

	t.Run("WrittenWithEvents", func(t *testing.T) {
		st := open(t)
		k := key("k1", at)
		if _, err := st.Append(ctx, func(tx store.Tx) ([]store.Record, error) {
			if _, err := tx.Key(k.Scope, k.Key); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Key before any put: err = %v, want ErrNotFound", err)
			}
			recs, err := txRecords(tx, 2)
			k.FirstID, k.Count = recs[0].ID, 2
			if err == nil {
				err = tx.PutKey(k)
			}
			return recs, err
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, func(tx store.Tx) ([]store.Record, error) {
			again := k
			again.FirstID, again.BodyDigest = 99, sha256.Sum256([]byte("other"))
			if err := tx.PutKey(again); !errors.Is(err, store.ErrKeyExists) {
				t.Errorf("PutKey of a stored key: err = %v, want ErrKeyExists", err)
			}
			got, err := tx.Key(k.Scope, k.Key)
			if err != nil {
				t.Fatalf("Key after commit: %v", err)
			}
			if got.FirstID != 1 || got.Count != 2 || got.BodyDigest != k.BodyDigest || !got.Created.Equal(at) {
				t.Errorf("key read back as %+v, want %+v", got, k)
			}
			if _, err := tx.Key("tok2", k.Key); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("the same key in another scope: err = %v, want ErrNotFound", err)
			}
			return txRecords(tx, 1)
		}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("DiscardedWithFailedAppend", func(t *testing.T) {
		st := open(t)
		boom := errors.New("boom")
		if _, err := st.Append(ctx, func(tx store.Tx) ([]store.Record, error) {
			if err := tx.PutKey(key("k1", at)); err != nil {
				return nil, err
			}
			return nil, boom
		}); !errors.Is(err, boom) {
			t.Fatalf("Append err = %v, want the build error", err)
		}
		// A build whose records do not extend the head fails after the
		// key was put: the key must go with them.
		if _, err := st.Append(ctx, func(tx store.Tx) ([]store.Record, error) {
			if err := tx.PutKey(key("k2", at)); err != nil {
				return nil, err
			}
			recs, err := txRecords(tx, 1)
			recs[0].ID = 7
			return recs, err
		}); err == nil {
			t.Fatal("a record that does not extend the head was accepted")
		}
		if _, err := st.Append(ctx, func(tx store.Tx) ([]store.Record, error) {
			for _, k := range []string{"k1", "k2"} {
				if _, err := tx.Key("tok1", k); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("key %s of a failed append: err = %v, want ErrNotFound", k, err)
				}
			}
			return txRecords(tx, 1)
		}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Prune", func(t *testing.T) {
		st := open(t)
		if _, err := st.Append(ctx, func(tx store.Tx) ([]store.Record, error) {
			for i, k := range []string{"old1", "old2", "new"} {
				created := at.Add(-48 * time.Hour)
				if k == "new" {
					created = at
				}
				kk := key(k, created)
				kk.FirstID = int64(i + 1)
				if err := tx.PutKey(kk); err != nil {
					return nil, err
				}
			}
			return txRecords(tx, 3)
		}); err != nil {
			t.Fatal(err)
		}
		n, err := st.PruneKeys(ctx, at.Add(-24*time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("PruneKeys = %d, %v; want 2", n, err)
		}
		if _, err := st.Append(ctx, func(tx store.Tx) ([]store.Record, error) {
			if _, err := tx.Key("tok1", "old1"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("pruned key: err = %v, want ErrNotFound", err)
			}
			if _, err := tx.Key("tok1", "new"); err != nil {
				t.Errorf("young key was pruned: %v", err)
			}
			return txRecords(tx, 1)
		}); err != nil {
			t.Fatal(err)
		}
	})
}

// txRecords builds n valid records on top of the transaction's head.
func txRecords(tx store.Tx, n int) ([]store.Record, error) {
	return buildRecords(tx.Head(), n, tlog.HashReaderFunc(tx.ReadHashes))
}
