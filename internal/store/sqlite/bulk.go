package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/audit-stream/audit-stream/internal/store"
)

// Bulk loading. An import fills an empty store with a log that already has
// its ids and hashes; appending it event by event through the WAL, with an
// fsync per transaction and three indexes kept up to date, is most of the
// cost. A Loader instead writes a new database file beside the store's,
// without a journal and without syncs, with the secondary indexes built once
// the rows are in (one sorted pass each). Only when the file is complete is
// it synced and renamed over the store's database, in one atomic step: a
// crash before the rename leaves the store exactly as it was (and the
// half-written file, which the next Open removes); after it, the store holds
// the whole import.

// importSuffix names the database file being loaded, beside FileName.
const importSuffix = ".import"

// Loader writes an import into a new database file for Store s, which must
// hold no events. Its methods are not safe for concurrent use.
type Loader struct {
	s       *Store
	path    string
	db      *sql.DB
	conn    *sql.Conn
	head    store.Head
	indexes []string // CREATE INDEX statements, run once the rows are in
	done    bool
}

// removeStaleImport deletes a database file left by an import that did not
// finish. Only the holder of the directory's lock may call it: no import
// runs then.
func removeStaleImport(dir string) error {
	err := os.Remove(filepath.Join(dir, FileName+importSuffix))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Loader starts a bulk load. The store must hold no events and must stay
// unused by others while the load runs: Commit replaces its database file.
func (s *Store) Loader(ctx context.Context) (*Loader, error) {
	if s.lock == nil {
		return nil, errAdmin
	}
	head, err := readHead(ctx, s.w)
	if err != nil {
		return nil, err
	}
	if head.ID != 0 {
		return nil, fmt.Errorf("sqlite: bulk load needs an empty store; it holds %d events", head.ID)
	}
	if err := removeStaleImport(s.dir); err != nil {
		return nil, fmt.Errorf("sqlite: remove an unfinished import: %w", err)
	}
	l := &Loader{s: s, path: filepath.Join(s.dir, FileName+importSuffix)}
	if err := l.start(ctx); err != nil {
		l.Abort()
		return nil, err
	}
	return l, nil
}

func (l *Loader) start(ctx context.Context) error {
	// No journal and no syncs: the file is not the store until Commit
	// renames it, so a crash can only lose a file nobody reads. An
	// exclusive lock spares a lock/unlock system call pair per
	// transaction.
	// The same page size and schema as a store Open creates; the page
	// size takes because the file is new.
	q := "file:" + l.path + "?_pragma=page_size(16384)&_pragma=journal_mode(OFF)&_pragma=synchronous(OFF)&_pragma=locking_mode(EXCLUSIVE)&_pragma=cache_size(-8192)"
	var err error
	if l.db, err = sqlOpen(q); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", l.path, err)
	}
	l.db.SetMaxOpenConns(1)
	if err := migrate(ctx, l.db); err != nil {
		return err
	}
	if l.conn, err = l.db.Conn(ctx); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", l.path, err)
	}
	// The events indexes are dropped now and built after the load from
	// the store's own definitions (which include any payload index).
	rows, err := l.conn.QueryContext(ctx, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL")
	if err != nil {
		return fmt.Errorf("sqlite: list indexes: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, n := range names {
		if _, err := l.conn.ExecContext(ctx, `DROP INDEX "`+n+`"`); err != nil {
			return fmt.Errorf("sqlite: drop index %s: %w", n, err)
		}
	}
	return nil
}

// Append writes recs, which must continue what was appended before, in one
// transaction.
func (l *Loader) Append(ctx context.Context, recs []store.Record) (err error) {
	defer func() { err = wrapFull(err) }()
	if l.done {
		return errors.New("sqlite: loader already finished")
	}
	if err := store.CheckExtends(l.head, recs); err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	// The rows go in through the driver's connection (see rowWriter).
	err = func() error {
		tx, err := l.conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if err := withWriter(l.conn, func(w *rowWriter) error { return w.insert(ctx, recs) }); err != nil {
			return err
		}
		return tx.Commit()
	}()
	if err != nil {
		return fmt.Errorf("sqlite: load events %d-%d: %w", recs[0].ID, recs[len(recs)-1].ID, err)
	}
	l.head = store.Head{ID: recs[len(recs)-1].ID, Hash: recs[len(recs)-1].Hash}
	return nil
}

// Commit builds the indexes, copies the store's other tables (meta,
// tokens, ...) into the new file, syncs it, and renames it over the store's
// database. It closes s: open the store again to use it. If Commit fails
// before the rename, the store is as it was.
func (l *Loader) Commit(ctx context.Context) (err error) {
	defer func() { err = wrapFull(err) }()
	if l.done {
		return errors.New("sqlite: loader already finished")
	}
	defer func() {
		if err != nil {
			l.Abort()
		}
	}()
	s := l.s
	old := filepath.Join(s.dir, FileName)
	// The indexes are built by sorting; a helper thread sorts while the
	// connection merges, on a core the load no longer uses.
	if _, err := l.conn.ExecContext(ctx, "PRAGMA threads = 1"); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	// Reading the store's file through a second connection sees what its
	// own connections committed, WAL included; in the normal locking mode,
	// which a database attached now takes from the connection, since the
	// store's connections hold the file open.
	if _, err := l.conn.ExecContext(ctx, "PRAGMA locking_mode = NORMAL"); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	if _, err := l.conn.ExecContext(ctx, "ATTACH DATABASE ? AS old", "file:"+old+"?mode=ro"); err != nil {
		return fmt.Errorf("sqlite: attach the store: %w", err)
	}
	var stmts []string
	rows, err := l.conn.QueryContext(ctx, `SELECT type, name, sql FROM old.sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' AND
		((type = 'index' AND tbl_name = 'events') OR (type = 'table' AND name != 'events'))`)
	if err != nil {
		return fmt.Errorf("sqlite: read the store's schema: %w", err)
	}
	for rows.Next() {
		var typ, name, def string
		if err := rows.Scan(&typ, &name, &def); err != nil {
			rows.Close()
			return err
		}
		if typ == "index" {
			stmts = append(stmts, def)
		} else {
			stmts = append(stmts, `INSERT INTO main."`+name+`" SELECT * FROM old."`+name+`"`)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, q := range stmts {
		if _, err := l.conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("sqlite: %s: %w", q, err)
		}
	}
	if _, err := l.conn.ExecContext(ctx, "DETACH DATABASE old"); err != nil {
		return fmt.Errorf("sqlite: detach the store: %w", err)
	}
	if err := errors.Join(l.conn.Close(), l.db.Close()); err != nil {
		return fmt.Errorf("sqlite: close %s: %w", l.path, err)
	}
	l.conn, l.db = nil, nil
	if err := syncFile(l.path); err != nil {
		return err
	}

	// The store's own connections go before the rename: once the file is
	// replaced they would write to the old one. Closing the last one
	// checkpoints its WAL into the old file; what is left of the WAL and
	// its index belongs to the old file and must not be applied to the
	// new one.
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.closed = true
	s.heads.Close()
	defer func() {
		if s.lock != nil {
			s.lock.Close()
		}
	}()
	if err := errors.Join(s.r.Close(), s.w.Close()); err != nil {
		return fmt.Errorf("sqlite: close the store: %w", err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(old + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sqlite: %w", err)
		}
	}
	if err := os.Rename(l.path, old); err != nil {
		return fmt.Errorf("sqlite: move the import into place: %w", err)
	}
	l.done = true
	// The rename is durable once the directory is.
	return syncFile(s.dir)
}

// Abort discards the load: the store is as it was.
func (l *Loader) Abort() error {
	if l.done {
		return nil
	}
	l.done = true
	var errs []error
	if l.conn != nil {
		errs = append(errs, l.conn.Close())
	}
	if l.db != nil {
		errs = append(errs, l.db.Close())
	}
	if err := os.Remove(l.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("sqlite: sync %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sqlite: sync %s: %w", path, err)
	}
	return nil
}
