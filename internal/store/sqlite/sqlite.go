// Package sqlite is the embedded SQLite backend of the store: one database
// file in the data directory, readable with the sqlite3 shell.
//
// Durability: the database runs in WAL mode with synchronous=FULL, so every
// commit is fsynced before Append returns. One connection writes; a pool of
// read-only connections serves queries concurrently with it.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/provenance"
	"golang.org/x/mod/sumdb/tlog"
)

// FileName is the database file inside the data directory.
const FileName = "audit-stream.db"

// lockName guards the data directory against a second server process: two
// sequencers on one file would each believe they own the head.
const lockName = "audit-stream.lock"

// scanPage bounds how many rows one read statement returns, so that a long
// export never pins a WAL snapshot (which would stop checkpoints and let the
// WAL grow without bound).
const scanPage = 2048

// Store is the SQLite implementation of store.Store.
type Store struct {
	w    *sql.DB  // exactly one connection: the only writer
	r    *sql.DB  // read-only pool
	lock *os.File // nil when opened with OpenAdmin
	dir  string

	tokens tokenCache
	heads  store.HeadWatchers

	times store.TimeMap // query.go: time ranges to id ranges

	imu            sync.RWMutex
	payloadIndexes []string // dotted payload paths with an expression index

	wmu    sync.Mutex
	closed bool
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the store in dir. It fails if another
// process has the directory open.
func Open(ctx context.Context, dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: create data directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open lock file: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("sqlite: data directory %s is in use by another process: %w", dir, err)
	}
	// The lock says no import runs: a database file one left is from an
	// import that never finished, and is not the store.
	if err := removeStaleImport(dir); err != nil {
		lock.Close()
		return nil, fmt.Errorf("sqlite: remove an unfinished import: %w", err)
	}
	s, err := open(ctx, dir)
	if err != nil {
		lock.Close()
		return nil, err
	}
	s.lock = lock
	return s, nil
}

func open(ctx context.Context, dir string) (*Store, error) {
	path := filepath.Join(dir, FileName)
	s := &Store{dir: dir}
	var err error
	if s.w, err = openDB(path, false); err != nil {
		return nil, err
	}
	s.w.SetMaxOpenConns(1)
	// The page size only takes on a new file, and only before it enters
	// WAL mode (the driver runs DSN pragmas sorted by name, so they cannot
	// order these two). 16 KiB pages: a scan or an insert touches a
	// quarter of the pages it would at 4 KiB, and per-page work dominated
	// both. WAL mode is persistent, so the readers inherit it.
	for _, p := range []string{"PRAGMA page_size = 16384", "PRAGMA journal_mode = WAL"} {
		if _, err := s.w.ExecContext(ctx, p); err != nil {
			s.w.Close()
			return nil, fmt.Errorf("sqlite: %s: %w", p, err)
		}
	}
	if err := migrate(ctx, s.w); err != nil {
		s.w.Close()
		return nil, err
	}
	if err := upgradeQueryIndexes(ctx, s.w); err != nil {
		s.w.Close()
		return nil, err
	}
	if s.r, err = openDB(path, true); err != nil {
		s.w.Close()
		return nil, err
	}
	s.r.SetMaxOpenConns(8)
	s.r.SetMaxIdleConns(8)
	return s, nil
}

var uriPath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

func openDB(path string, readOnly bool) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	// Reads through a memory map skip a system call per page, which is
	// most of the cost of streaming the log for verification and export.
	q.Add("_pragma", "mmap_size(1073741824)")
	if readOnly {
		q.Add("_pragma", "query_only(ON)")
	} else {
		// Take the write lock at BEGIN, not at the first write, so that
		// a transaction never fails half-way with SQLITE_BUSY.
		q.Set("_txlock", "immediate")
	}
	// In a file: URI, '?' starts the parameters and '#' a fragment: a data
	// directory named with either would open another file. SQLite decodes
	// %HH escapes in the path.
	db, err := sqlOpen("file:" + uriPath.Replace(path) + "?" + q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return db, nil
}

// A migration is SQL, then optionally Go code, in one transaction.
type migration struct {
	sql  string
	fill func(ctx context.Context, tx *sql.Tx) error
}

// migrations run in order; user_version records how many have run. Append
// only: a released migration never changes.
var migrations = []migration{
	{sql: `CREATE TABLE events (
		event_id  INTEGER PRIMARY KEY,
		timestamp TEXT NOT NULL,
		kind      TEXT NOT NULL,
		source    TEXT NOT NULL,
		payload   TEXT NOT NULL,
		prev_hash BLOB NOT NULL,
		hash      BLOB NOT NULL,
		tree      BLOB NOT NULL
	);
	-- Hashes are stored as 32 raw bytes (half the size, and no hex
	-- decoding on the verify path); this view shows them as the API does.
	CREATE VIEW events_hex AS
		SELECT event_id, timestamp, kind, source, payload,
		       lower(hex(prev_hash)) AS prev_hash, lower(hex(hash)) AS hash
		FROM events;
	CREATE INDEX events_kind ON events(kind, event_id);
	CREATE INDEX events_source ON events(source, event_id);
	CREATE TABLE meta (
		key   TEXT PRIMARY KEY,
		value BLOB NOT NULL
	);`},
	// 2: API tokens (only the SHA-256 digest of each secret) and
	// idempotency keys, written in the transaction of their events.
	{sql: `CREATE TABLE tokens (
		id      TEXT PRIMARY KEY,
		name    TEXT NOT NULL,
		roles   TEXT NOT NULL,
		sources TEXT NOT NULL,
		digest  BLOB NOT NULL UNIQUE,
		created TEXT NOT NULL,
		expires TEXT,
		revoked TEXT
	);
	CREATE TABLE idempotency_keys (
		scope       TEXT NOT NULL,
		key         TEXT NOT NULL,
		body_digest BLOB NOT NULL,
		first_id    INTEGER NOT NULL,
		count       INTEGER NOT NULL,
		created     INTEGER NOT NULL,
		PRIMARY KEY (scope, key)
	) WITHOUT ROWID;
	CREATE INDEX idempotency_keys_created ON idempotency_keys(created);`},
	// 3: the event time as Unix microseconds, for time-range queries. The
	// timestamp column keeps the text as sent (the hash covers it); ts is
	// its instant, NULL if it does not parse. Existing rows are filled in
	// place.
	{sql: `ALTER TABLE events ADD COLUMN ts INTEGER;
	CREATE INDEX events_ts ON events(ts);`, fill: fillTimes},
	// 4: producer keys on tokens, and provenance: one record per append
	// request (provenance.go), and every producer signature once, so that
	// a replayed signed request is found by one probe.
	{sql: provenanceSchema},
}

// fillTimes sets ts for every row that lacks it, in batches so that memory
// stays bounded on a large log.
func fillTimes(ctx context.Context, tx *sql.Tx) error {
	upd, err := tx.PrepareContext(ctx, "UPDATE events SET ts = ? WHERE event_id = ?")
	if err != nil {
		return err
	}
	defer upd.Close()
	type row struct {
		id int64
		ts string
	}
	batch := make([]row, 0, 10000)
	for after := int64(0); ; {
		rows, err := tx.QueryContext(ctx, "SELECT event_id, timestamp FROM events WHERE event_id > ? ORDER BY event_id LIMIT ?", after, cap(batch))
		if err != nil {
			return err
		}
		batch = batch[:0]
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.ts); err != nil {
				rows.Close()
				return err
			}
			batch = append(batch, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range batch {
			if t, ok := store.TimeOf(r.ts); ok {
				if _, err := upd.ExecContext(ctx, t, r.id); err != nil {
					return err
				}
			}
		}
		if len(batch) < cap(batch) {
			return nil
		}
		after = batch[len(batch)-1].id
	}
}

func migrate(ctx context.Context, db *sql.DB) error {
	for {
		// Each step reads the version inside its write transaction: a
		// token-admin process (OpenAdmin) may migrate the same file at
		// the same moment as the server.
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		var i int
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&i); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlite: read schema version: %w", err)
		}
		if i > len(migrations) {
			tx.Rollback()
			return fmt.Errorf("sqlite: database schema version %d is newer than this binary knows (%d)", i, len(migrations))
		}
		if i == len(migrations) {
			return tx.Rollback()
		}
		if _, err := tx.ExecContext(ctx, migrations[i].sql); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlite: migration %d: %w", i+1, err)
		}
		if fill := migrations[i].fill; fill != nil {
			if err := fill(ctx, tx); err != nil {
				tx.Rollback()
				return fmt.Errorf("sqlite: migration %d: %w", i+1, err)
			}
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1)); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("sqlite: migration %d: %w", i+1, err)
		}
	}
}

// Close closes the database and releases the data directory.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.heads.Close()
	err := errors.Join(s.r.Close(), s.w.Close())
	if s.lock != nil {
		s.lock.Close()
	}
	return err
}

// querier is what the reads below need of a connection: *sql.DB, *sql.Conn
// and *sql.Tx all serve, so the same read runs inside a write transaction
// and outside.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// headQuery reads the head: the row with the largest id.
const headQuery = "SELECT event_id, hash FROM events ORDER BY event_id DESC LIMIT 1"

// head reads the head through the driver's connection, with the statement
// kept prepared: database/sql's preparing and converting the row cost as
// much as the read, once per commit.
func (w *rowWriter) head() (store.Head, error) {
	var h store.Head
	st, err := w.prepared(headQuery)
	if err != nil {
		return h, fmt.Errorf("sqlite: read head: %w", err)
	}
	q, ok := st.(driver.StmtQueryContext)
	if !ok {
		return h, fmt.Errorf("sqlite: statement %T cannot query with a context", st)
	}
	rows, err := q.QueryContext(context.Background(), nil)
	if err != nil {
		return h, fmt.Errorf("sqlite: read head: %w", err)
	}
	defer rows.Close()
	var dest [2]driver.Value
	switch err := rows.Next(dest[:]); {
	case errors.Is(err, io.EOF):
		return h, nil
	case err != nil:
		return h, fmt.Errorf("sqlite: read head: %w", err)
	}
	id, ok := dest[0].(int64)
	hash, _ := dest[1].([]byte)
	if !ok {
		return h, fmt.Errorf("sqlite: read head: event_id %T", dest[0])
	}
	h.ID = id
	if err := setHash(&h.Hash, hash); err != nil {
		return h, fmt.Errorf("sqlite: head event %d: %w", h.ID, err)
	}
	return h, nil
}

func readHead(ctx context.Context, q querier) (store.Head, error) {
	var h store.Head
	var hash []byte
	err := q.QueryRowContext(ctx, headQuery).Scan(&h.ID, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Head{}, nil
	}
	if err != nil {
		return h, fmt.Errorf("sqlite: read head: %w", err)
	}
	if err := setHash(&h.Hash, hash); err != nil {
		return h, fmt.Errorf("sqlite: head event %d: %w", h.ID, err)
	}
	return h, nil
}

// Head implements store.Store.
func (s *Store) Head(ctx context.Context) (store.Head, error) {
	return readHead(ctx, s.r)
}

type txView struct {
	ctx  context.Context
	tx   *sql.Tx
	head store.Head

	conn *sql.Conn // the writer, for rowWriter

	keySel, keyIns *sql.Stmt // idempotency.go; closed with the transaction
	sigIns         *sql.Stmt // provenance.go
	// provs are the provenance records put and not yet written.
	provs []provenance.Record
}

func (v *txView) Head() store.Head { return v.head }

func (v *txView) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	return readHashes(v.ctx, v.tx, indexes)
}

// Append implements store.Store.
func (s *Store) Append(ctx context.Context, build store.BuildFunc) (_ []store.Record, err error) {
	defer func() { err = wrapFull(err) }()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	if s.lock == nil {
		return nil, errAdmin
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: writer connection: %w", err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: begin: %w", err)
	}
	defer tx.Rollback()
	var head store.Head
	if err := withWriter(conn, func(w *rowWriter) (err error) { head, err = w.head(); return err }); err != nil {
		return nil, err
	}
	view := &txView{ctx: ctx, tx: tx, conn: conn, head: head}
	recs, err := build(view)
	if err != nil {
		return nil, err
	}
	if err := store.CheckExtends(head, recs); err != nil {
		return nil, err
	}
	// The rows go in through the driver's connection under the
	// transaction database/sql began on it (see rowWriter).
	if err := withWriter(conn, func(w *rowWriter) error { return w.insert(ctx, recs) }); err != nil {
		return nil, err
	}
	if err := view.flushProvenance(); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlite: commit: %w", err)
	}
	if n := len(recs); n > 0 {
		s.heads.Publish(store.Head{ID: recs[n-1].ID, Hash: recs[n-1].Hash})
	}
	return recs, nil
}

// WatchHead implements store.Store. The data directory's lock makes this
// process the only writer, so the heads are those of its own commits.
func (s *Store) WatchHead(ctx context.Context) <-chan store.Head {
	return s.heads.Watch(ctx)
}

// readHashesBatch bounds the ids in one IN (...) query.
const readHashesBatch = 256

// readHashes reads the rows holding the wanted hashes with one query per
// batch of distinct event ids, not one per hash: a proof needs about 2·log n
// hashes and a tile 256, so this is what keeps proofs and tiles fast.
func readHashes(ctx context.Context, q querier, indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	trees := make(map[int64][]byte, len(indexes))
	ids := make([]any, 0, min(len(indexes), readHashesBatch))
	flush := func() error {
		if len(ids) == 0 {
			return nil
		}
		rows, err := q.QueryContext(ctx, "SELECT event_id, tree FROM events WHERE event_id IN (?"+strings.Repeat(",?", len(ids)-1)+")", ids...)
		if err != nil {
			return fmt.Errorf("sqlite: read tree hashes: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var tree []byte
			if err := rows.Scan(&id, &tree); err != nil {
				return fmt.Errorf("sqlite: read tree hashes: %w", err)
			}
			trees[id] = tree
		}
		ids = ids[:0]
		return rows.Err()
	}
	for _, idx := range indexes {
		id, _ := store.RecordOfHash(idx)
		if _, ok := trees[id]; ok {
			continue
		}
		trees[id] = nil // queued
		ids = append(ids, id)
		if len(ids) == readHashesBatch {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	for i, idx := range indexes {
		id, pos := store.RecordOfHash(idx)
		tree := trees[id]
		if len(tree) < 32*(pos+1) {
			return nil, fmt.Errorf("sqlite: stored hash %d (event %d, level %d): %w", idx, id, pos, store.ErrNotFound)
		}
		copy(out[i][:], tree[32*pos:])
	}
	return out, nil
}

// ReadHashes implements store.Store.
func (s *Store) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	return readHashes(ctx, s.r, indexes)
}

const eventColumns = "event_id, timestamp, kind, source, payload, prev_hash, hash"

func scanEvent(rows *sql.Rows, e *event.Event) error {
	var prev, hash sql.RawBytes
	var payload []byte
	if err := rows.Scan(&e.ID, &e.Timestamp, &e.Kind, &e.Source, &payload, &prev, &hash); err != nil {
		return err
	}
	e.Payload = payload
	if err := setHash(&e.PrevHash, prev); err != nil {
		return fmt.Errorf("event %d prev_hash: %w", e.ID, err)
	}
	if err := setHash(&e.Hash, hash); err != nil {
		return fmt.Errorf("event %d hash: %w", e.ID, err)
	}
	return nil
}

// errHashSize reports a stored hash that is not 32 bytes: the database was
// edited by hand or is damaged.
var errHashSize = errors.New("stored hash is not 32 bytes")

func setHash(dst *event.Hash, b []byte) error {
	if len(b) != len(dst) {
		return errHashSize
	}
	copy(dst[:], b)
	return nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id int64) (event.Event, error) {
	var e event.Event
	rows, err := s.r.QueryContext(ctx, "SELECT "+eventColumns+" FROM events WHERE event_id = ?", id)
	if err != nil {
		return e, fmt.Errorf("sqlite: get %d: %w", id, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return e, fmt.Errorf("sqlite: get %d: %w", id, err)
		}
		return e, store.ErrNotFound
	}
	if err := scanEvent(rows, &e); err != nil {
		return e, fmt.Errorf("sqlite: get %d: %w", id, err)
	}
	return e, nil
}

// Meta implements store.Store.
func (s *Store) Meta(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := s.r.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: meta %q: %w", key, err)
	}
	return v, nil
}

// SetMeta implements store.Store.
func (s *Store) SetMeta(ctx context.Context, key string, value []byte) (err error) {
	defer func() { err = wrapFull(err) }()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	_, err = s.w.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", key, value)
	if err != nil {
		return fmt.Errorf("sqlite: set meta %q: %w", key, err)
	}
	return nil
}

// SwapMeta implements store.Store. The statement is atomic in SQLite, also
// against a token-admin process writing the same file.
func (s *Store) SwapMeta(ctx context.Context, key string, old, value []byte) (err error) {
	defer func() { err = wrapFull(err) }()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	var res sql.Result
	if old == nil {
		res, err = s.w.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", key, value)
	} else {
		res, err = s.w.ExecContext(ctx, "UPDATE meta SET value = ? WHERE key = ? AND value = ?", value, key, old)
	}
	var n int64
	if err == nil {
		n, err = res.RowsAffected()
	}
	if err != nil {
		return fmt.Errorf("sqlite: swap meta %q: %w", key, err)
	}
	if n == 0 {
		return store.ErrConflict
	}
	return nil
}
