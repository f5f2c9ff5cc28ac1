package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/audit-stream/audit-stream/internal/store"
)

var _ store.Tokens = (*Store)(nil)

// Times are stored as RFC 3339 UTC text with nanoseconds, readable in the
// sqlite3 shell.
const timeLayout = time.RFC3339Nano

func formatTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(timeLayout)
}

func parseTime(s sql.NullString) (time.Time, error) {
	if !s.Valid {
		return time.Time{}, nil
	}
	return time.Parse(timeLayout, s.String)
}

// CreateToken implements store.Tokens.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	if t.ID == "" {
		return errors.New("sqlite: create token: empty id")
	}
	sources, err := json.Marshal(t.Sources)
	if err != nil {
		return err
	}
	if t.Sources == nil {
		sources = []byte("[]")
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO tokens (id, name, roles, sources, digest, created, expires, revoked)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Name, strings.Join(t.Roles, ","), string(sources), t.Digest[:],
		formatTime(t.Created), formatTime(t.Expires), formatTime(t.Revoked))
	if err != nil {
		return fmt.Errorf("sqlite: create token %s: %w", t.ID, err)
	}
	return nil
}

const tokenColumns = "id, name, roles, sources, digest, created, expires, revoked"

type rowScanner interface{ Scan(dest ...any) error }

func scanToken(r rowScanner) (store.Token, error) {
	var (
		t                         store.Token
		roles, sources            string
		digest                    []byte
		created, expires, revoked sql.NullString
	)
	if err := r.Scan(&t.ID, &t.Name, &roles, &sources, &digest, &created, &expires, &revoked); err != nil {
		return t, err
	}
	if roles != "" {
		t.Roles = strings.Split(roles, ",")
	}
	if err := json.Unmarshal([]byte(sources), &t.Sources); err != nil {
		return t, fmt.Errorf("token %s sources: %w", t.ID, err)
	}
	if len(digest) != sha256.Size {
		return t, fmt.Errorf("token %s: digest of %d bytes", t.ID, len(digest))
	}
	copy(t.Digest[:], digest)
	var err error
	if t.Created, err = parseTime(created); err != nil {
		return t, fmt.Errorf("token %s created: %w", t.ID, err)
	}
	if t.Expires, err = parseTime(expires); err != nil {
		return t, fmt.Errorf("token %s expires: %w", t.ID, err)
	}
	if t.Revoked, err = parseTime(revoked); err != nil {
		return t, fmt.Errorf("token %s revoked: %w", t.ID, err)
	}
	return t, nil
}

// ListTokens implements store.Tokens.
func (s *Store) ListTokens(ctx context.Context) ([]store.Token, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+tokenColumns+" FROM tokens ORDER BY created, id")
	if err != nil {
		return nil, fmt.Errorf("sqlite: list tokens: %w", err)
	}
	defer rows.Close()
	var out []store.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken implements store.Tokens.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	res, err := s.w.ExecContext(ctx, "UPDATE tokens SET revoked = coalesce(revoked, ?) WHERE id = ?", formatTime(at), id)
	if err != nil {
		return fmt.Errorf("sqlite: revoke token %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: revoke token %s: %w", id, err)
	} else if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// TokenByDigest implements store.Tokens. The digest is the table's unique
// key, so the lookup is one index probe; the secret itself never reaches
// the database.
func (s *Store) TokenByDigest(ctx context.Context, digest [sha256.Size]byte) (store.Token, error) {
	t, err := scanToken(s.r.QueryRowContext(ctx, "SELECT "+tokenColumns+" FROM tokens WHERE digest = ?", digest[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return t, store.ErrNotFound
	}
	if err != nil {
		return t, fmt.Errorf("sqlite: token lookup: %w", err)
	}
	return t, nil
}

// HasTokens implements store.Tokens.
func (s *Store) HasTokens(ctx context.Context) (bool, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM tokens)").Scan(&n); err != nil {
		return false, fmt.Errorf("sqlite: has tokens: %w", err)
	}
	return n == 1, nil
}
