package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/audit-stream/audit-stream/internal/store"
)

var _ store.Tokens = (*Store)(nil)

// CreateToken implements store.Tokens.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	if t.ID == "" {
		return errors.New("sqlite: create token: empty id")
	}
	row, err := t.Row()
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	_, err = s.w.ExecContext(ctx, "INSERT INTO tokens ("+store.TokenColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row.Args()...)
	if err != nil {
		return fmt.Errorf("sqlite: create token %s: %w", t.ID, err)
	}
	return s.tokensChanged()
}

func scanToken(r interface{ Scan(dest ...any) error }) (store.Token, error) {
	var row store.TokenRow
	if err := r.Scan(row.Dest()...); err != nil {
		return store.Token{}, err
	}
	return row.Token()
}

// ListTokens implements store.Tokens.
func (s *Store) ListTokens(ctx context.Context) ([]store.Token, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+store.TokenColumns+" FROM tokens ORDER BY created, id")
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
	res, err := s.w.ExecContext(ctx, "UPDATE tokens SET revoked = coalesce(revoked, ?) WHERE id = ?", store.FormatTokenTime(at), id)
	if err != nil {
		return fmt.Errorf("sqlite: revoke token %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: revoke token %s: %w", id, err)
	} else if n == 0 {
		return store.ErrNotFound
	}
	return s.tokensChanged()
}

// TokenByDigest implements store.Tokens. The digest is the table's unique
// key, so a lookup is one index probe, and the secret itself never reaches
// the database. Found tokens are cached until the token table changes.
func (s *Store) TokenByDigest(ctx context.Context, digest [sha256.Size]byte) (store.Token, error) {
	gen := s.tokens.sync(s.dir)
	if t, ok := s.tokens.get(digest); ok {
		return t, nil
	}
	t, err := scanToken(s.r.QueryRowContext(ctx, "SELECT "+store.TokenColumns+" FROM tokens WHERE digest = ?", digest[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return t, store.ErrNotFound
	}
	if err != nil {
		return t, fmt.Errorf("sqlite: token lookup: %w", err)
	}
	s.tokens.put(gen, t)
	return t, nil
}

// HasTokens implements store.Tokens.
func (s *Store) HasTokens(ctx context.Context) (bool, error) {
	gen := s.tokens.sync(s.dir)
	if has, ok := s.tokens.hasTokens(); ok {
		return has, nil
	}
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM tokens)").Scan(&n); err != nil {
		return false, fmt.Errorf("sqlite: has tokens: %w", err)
	}
	s.tokens.setHas(gen, n == 1)
	return n == 1, nil
}

// tokensSignal is a file in the data directory that every token change
// replaces, from any process (the server, or the token command while the
// server runs). Checking it costs one stat per request, where asking the
// database cost a query, and a change is still seen on the next request.
// Token changes made behind audit-stream's back (the sqlite3 shell) are not
// signalled: restart the server after such an edit.
const tokensSignal = "tokens.changed"

// tokensChanged replaces the signal file, giving it a new identity.
func (s *Store) tokensChanged() error {
	path := filepath.Join(s.dir, tokensSignal)
	tmp, err := os.CreateTemp(s.dir, tokensSignal+".*")
	if err != nil {
		return fmt.Errorf("sqlite: signal token change: %w", err)
	}
	fmt.Fprintf(tmp, "%d\n", time.Now().UnixNano())
	tmp.Close()
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("sqlite: signal token change: %w", err)
	}
	s.tokens.invalidate()
	return nil
}

// fileID identifies one version of the signal file.
type fileID struct {
	dev, ino uint64
	mtime    int64
	size     int64
}

func statID(path string) fileID {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}
	}
	id := fileID{mtime: fi.ModTime().UnixNano(), size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), st.Ino
	}
	return id
}

// tokenCache holds what was read from the token table since the signal
// file last changed. Only tokens that exist are cached, so presenting
// random secrets cannot grow it.
type tokenCache struct {
	mu       sync.Mutex
	sig      fileID
	gen      uint64 // bumped on every invalidation
	has      int8   // 0 unknown, 1 no tokens, 2 some
	byDigest map[[sha256.Size]byte]store.Token
}

// sync drops the cache if the signal file changed, and returns the
// generation that a value read from the database now may be cached under.
func (c *tokenCache) sync(dir string) uint64 {
	id := statID(filepath.Join(dir, tokensSignal))
	c.mu.Lock()
	defer c.mu.Unlock()
	if id != c.sig {
		c.sig = id
		c.reset()
	}
	return c.gen
}

func (c *tokenCache) reset() {
	c.gen++
	c.has = 0
	c.byDigest = nil
}

func (c *tokenCache) invalidate() {
	c.mu.Lock()
	c.reset()
	c.mu.Unlock()
}

func (c *tokenCache) get(d [sha256.Size]byte) (store.Token, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.byDigest[d]
	return t, ok
}

// put caches t if nothing changed since gen was taken.
func (c *tokenCache) put(gen uint64, t store.Token) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.byDigest == nil {
		c.byDigest = map[[sha256.Size]byte]store.Token{}
	}
	c.byDigest[t.Digest] = t
}

func (c *tokenCache) hasTokens() (has, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.has == 2, c.has != 0
}

func (c *tokenCache) setHas(gen uint64, has bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	c.has = 1
	if has {
		c.has = 2
	}
}
