package sqlite_test

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

// TestOpenAdmin: token administration works beside a running server (which
// holds the directory lock), sees the server's schema, and cannot append.
func TestOpenAdmin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	srv, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, err := sqlite.Open(ctx, dir); err == nil {
		t.Fatal("a second Open of a locked directory succeeded")
	}
	adm, err := sqlite.OpenAdmin(ctx, dir)
	if err != nil {
		t.Fatalf("OpenAdmin beside a running server: %v", err)
	}
	defer adm.Close()
	tok := store.Token{ID: "t1", Roles: []string{store.RoleAdmin}, Digest: sha256.Sum256([]byte("s")), Created: time.Now()}
	if err := adm.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.TokenByDigest(ctx, tok.Digest); err != nil {
		t.Fatalf("the server does not see the token created by the admin store: %v", err)
	}
	if err := adm.RevokeToken(ctx, "t1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if got, _ := srv.TokenByDigest(ctx, tok.Digest); got.Revoked.IsZero() {
		t.Fatal("the server does not see the revocation")
	}
	if _, err := adm.Append(ctx, func(store.Tx) ([]store.Record, error) { return nil, nil }); err == nil {
		t.Fatal("the admin store appended")
	}
}

// TestOpenAdminFresh: the first admin token can be made before the server
// ever started, and the server then opens the same database.
func TestOpenAdminFresh(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir() + "/data"
	adm, err := sqlite.OpenAdmin(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := adm.CreateToken(ctx, store.Token{ID: "t1", Roles: []string{store.RoleAdmin}, Digest: sha256.Sum256([]byte("s")), Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	adm.Close()
	srv, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if has, err := srv.HasTokens(ctx); err != nil || !has {
		t.Fatalf("HasTokens = %v, %v", has, err)
	}
}
