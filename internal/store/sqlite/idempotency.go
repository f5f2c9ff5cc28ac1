package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/audit-stream/audit-stream/internal/store"
)

var _ store.Idempotency = (*Store)(nil)

// Key implements store.Tx: a primary-key probe on the writer's own
// transaction, so it sees exactly what is committed plus this transaction.
func (v *txView) Key(scope, key string) (store.IdempotencyKey, error) {
	k := store.IdempotencyKey{Scope: scope, Key: key}
	var digest []byte
	var created int64
	sel, err := v.prepare(&v.keySel, "SELECT body_digest, first_id, count, created FROM idempotency_keys WHERE scope = ? AND key = ?")
	if err != nil {
		return k, err
	}
	err = sel.QueryRowContext(v.ctx, scope, key).Scan(&digest, &k.FirstID, &k.Count, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return k, store.ErrNotFound
	}
	if err != nil {
		return k, fmt.Errorf("sqlite: idempotency key: %w", err)
	}
	if len(digest) != sha256.Size {
		return k, fmt.Errorf("sqlite: idempotency key: digest of %d bytes", len(digest))
	}
	copy(k.BodyDigest[:], digest)
	k.Created = time.UnixMilli(created)
	return k, nil
}

// PutKey implements store.Tx. The row is written in the transaction that
// writes the events, so a key is durable exactly when its events are.
func (v *txView) PutKey(k store.IdempotencyKey) error {
	ins, err := v.prepare(&v.keyIns, "INSERT INTO idempotency_keys (scope, key, body_digest, first_id, count, created) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (scope, key) DO NOTHING")
	var res sql.Result
	if err == nil {
		res, err = ins.ExecContext(v.ctx, k.Scope, k.Key, k.BodyDigest[:], k.FirstID, k.Count, k.Created.UnixMilli())
	}
	var n int64
	if err == nil {
		n, err = res.RowsAffected()
	}
	if err != nil {
		return fmt.Errorf("sqlite: put idempotency key: %w", err)
	}
	if n == 0 {
		return store.ErrKeyExists
	}
	return nil
}

// PruneKeys implements store.Idempotency. It deletes in small chunks so
// that it never holds the write lock long enough to delay the sequencer.
func (s *Store) PruneKeys(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		n, err := s.pruneChunk(ctx, before.UnixMilli())
		total += n
		if err != nil || n < pruneChunk {
			return total, err
		}
	}
}

const pruneChunk = 1000

func (s *Store) pruneChunk(ctx context.Context, before int64) (int64, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return 0, store.ErrClosed
	}
	res, err := s.w.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE (scope, key) IN (
		SELECT scope, key FROM idempotency_keys WHERE created < ? LIMIT ?)`, before, pruneChunk)
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune idempotency keys: %w", err)
	}
	return res.RowsAffected()
}

// prepare returns *stmt, preparing it on the transaction the first time: a
// group of many keyed appends prepares each statement once.
func (v *txView) prepare(stmt **sql.Stmt, query string) (*sql.Stmt, error) {
	if *stmt == nil {
		st, err := v.tx.PrepareContext(v.ctx, query)
		if err != nil {
			return nil, fmt.Errorf("sqlite: prepare: %w", err)
		}
		*stmt = st
	}
	return *stmt, nil
}
