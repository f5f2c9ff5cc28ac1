package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/jackc/pgx/v5"
)

// CreateToken implements store.Tokens.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	if t.ID == "" {
		return errors.New("postgres: create token: empty id")
	}
	if s.isClosed() {
		return store.ErrClosed
	}
	row, err := t.Row()
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, "INSERT INTO tokens ("+store.TokenColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)", row.Args()...)
	if err != nil {
		return classify(fmt.Errorf("postgres: create token %s: %w", t.ID, err))
	}
	return nil
}

func scanToken(r pgx.Row) (store.Token, error) {
	var row store.TokenRow
	if err := r.Scan(row.Dest()...); err != nil {
		return store.Token{}, err
	}
	return row.Token()
}

// ListTokens implements store.Tokens.
func (s *Store) ListTokens(ctx context.Context) ([]store.Token, error) {
	if s.isClosed() {
		return nil, store.ErrClosed
	}
	rows, err := s.pool.Query(ctx, "SELECT "+store.TokenColumns+" FROM tokens ORDER BY created, id")
	if err != nil {
		return nil, classify(fmt.Errorf("postgres: list tokens: %w", err))
	}
	defer rows.Close()
	var out []store.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, classify(fmt.Errorf("postgres: list tokens: %w", err))
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("postgres: list tokens: %w", err))
	}
	return out, nil
}

// RevokeToken implements store.Tokens.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	if s.isClosed() {
		return store.ErrClosed
	}
	tag, err := s.pool.Exec(ctx, "UPDATE tokens SET revoked = coalesce(revoked, $1) WHERE id = $2", store.FormatTokenTime(at), id)
	if err != nil {
		return classify(fmt.Errorf("postgres: revoke token %s: %w", id, err))
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// TokenByDigest implements store.Tokens. It asks the database every call
// (in a batch with the calls that arrive at the same time, see tokenReads),
// so a revocation through any instance counts from the next request
// everywhere.
func (s *Store) TokenByDigest(ctx context.Context, digest [sha256.Size]byte) (store.Token, error) {
	if s.isClosed() {
		return store.Token{}, store.ErrClosed
	}
	b, err := s.tokenReads.lookup(ctx, &digest, false)
	if err != nil {
		return store.Token{}, err
	}
	t, ok := b.found[digest]
	if !ok {
		return t, store.ErrNotFound
	}
	return t, nil
}

// HasTokens implements store.Tokens.
func (s *Store) HasTokens(ctx context.Context) (bool, error) {
	if s.hasTokens.Load() {
		return true, nil
	}
	if s.isClosed() {
		return false, store.ErrClosed
	}
	b, err := s.tokenReads.lookup(ctx, nil, true)
	if err != nil {
		return false, err
	}
	if b.hasTokens {
		// Tokens are never deleted, only revoked: once there is one,
		// there always is, and the question costs no more queries.
		s.hasTokens.Store(true)
	}
	return b.hasTokens, nil
}

// Key implements store.Tx. Appends are serialised by the lock the
// transaction holds, so it sees every key committed before it.
func (v *txView) Key(scope, key string) (store.IdempotencyKey, error) {
	k := store.IdempotencyKey{Scope: scope, Key: key}
	if v.tx == nil {
		return k, errAhead
	}
	var digest []byte
	var created int64
	err := v.tx.QueryRow(v.ctx, "SELECT body_digest, first_id, count, created FROM idempotency_keys WHERE scope = $1 AND key = $2", scope, key).
		Scan(&digest, &k.FirstID, &k.Count, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return k, store.ErrNotFound
	}
	if err != nil {
		return k, classify(fmt.Errorf("postgres: idempotency key: %w", err))
	}
	if len(digest) != sha256.Size {
		return k, fmt.Errorf("postgres: idempotency key: digest of %d bytes", len(digest))
	}
	copy(k.BodyDigest[:], digest)
	k.Created = time.UnixMilli(created)
	return k, nil
}

// PutKey implements store.Tx.
func (v *txView) PutKey(k store.IdempotencyKey) error {
	if v.tx == nil {
		return errAhead
	}
	tag, err := v.tx.Exec(v.ctx, "INSERT INTO idempotency_keys (scope, key, body_digest, first_id, count, created) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (scope, key) DO NOTHING",
		k.Scope, k.Key, k.BodyDigest[:], k.FirstID, k.Count, k.Created.UnixMilli())
	if err != nil {
		return classify(fmt.Errorf("postgres: put idempotency key: %w", err))
	}
	if tag.RowsAffected() == 0 {
		return store.ErrKeyExists
	}
	return nil
}

// PruneKeys implements store.Idempotency, in small chunks so that no
// statement holds many row locks.
func (s *Store) PruneKeys(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		if s.isClosed() {
			return total, store.ErrClosed
		}
		tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE ctid IN (
			SELECT ctid FROM idempotency_keys WHERE created < $1 LIMIT 1000)`, before.UnixMilli())
		if err != nil {
			return total, classify(fmt.Errorf("postgres: prune idempotency keys: %w", err))
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < 1000 {
			return total, nil
		}
	}
}
