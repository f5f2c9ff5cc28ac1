package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"unsafe"

	"github.com/audit-stream/audit-stream/internal/store"
	sqlitedrv "modernc.org/sqlite"
)

// eventsInsert names no event_id: SQLite gives each row the rowid after
// the largest, which is the record's id because Append checked that the
// records continue the head (and insert checks the last id each statement
// assigned). An id bound as a parameter, and any conflict clause but
// ROLLBACK, would let a multi-row statement fail half-way, and SQLite would
// then copy every page the statement touches to a statement journal to undo
// that half: it cost as much as the insert itself. A failed append writes
// nothing anyway, so rolling the whole transaction back loses nothing.
const eventsInsert = "INSERT OR ROLLBACK INTO events (timestamp, kind, source, payload, prev_hash, hash, tree, ts) VALUES "

// eventsRow is the placeholders of one row of eventsInsert.
const eventsRow = "(?,?,?,?,?,?,?,?)"

// insertSizes are the row counts of the INSERT statements a rowWriter
// prepares, largest first; any count is a sum of them. A statement
// execution is a trip through database/sql-free but still costly driver
// code (bind, step, reset) that one row does not amortise; 64 rows made
// the difference to larger statements vanish.
var insertSizes = [...]int{64, 16, 4, 1}

// insertSize is the largest of insertSizes that left rows fill.
func insertSize(left int) int {
	for _, size := range insertSizes {
		if size <= left {
			return size
		}
	}
	return insertSizes[len(insertSizes)-1]
}

// sqliteConn is what the driver's connection offers database/sql.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// rowsConn is the driver's connection with the event insert statements
// prepared on it. database/sql may close a connection at any time (it
// drops one whose statement a cancelled context interrupted), and a
// statement must be finalized before its connection closes: so the
// statements live and die with the connection, not with the store.
type rowsConn struct {
	sqliteConn
	rows rowWriter
	raw  *rawReader // scan.go; nil if the driver's handle is not found
}

func (c *rowsConn) Close() error {
	c.rows.close()
	if c.raw != nil {
		c.raw.close()
	}
	return c.sqliteConn.Close()
}

// connector opens rowsConns.
type connector struct{ driver.Connector }

func (c connector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := dc.(sqliteConn)
	if !ok {
		dc.Close()
		return nil, fmt.Errorf("sqlite: driver connection %T lacks a method database/sql uses", dc)
	}
	return &rowsConn{sqliteConn: sc, rows: rowWriter{conn: sc}, raw: newRawReader(sc)}, nil
}

// sqlOpen opens a database/sql pool of rowsConns on dsn.
func sqlOpen(dsn string) (*sql.DB, error) {
	c, err := sqlitedrv.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(connector{c}), nil
}

// withWriter runs fn with the rowWriter of conn's driver connection,
// inside whatever transaction conn has open.
func withWriter(conn *sql.Conn, fn func(w *rowWriter) error) error {
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*rowsConn)
		if !ok {
			return fmt.Errorf("sqlite: driver connection %T was not opened by sqlOpen", dc)
		}
		return fn(&c.rows)
	})
}

// rowWriter inserts event rows through the driver's own connection, below
// database/sql, with statements prepared once per connection and kept:
// database/sql's per-call locking and argument conversion cost as much as
// SQLite's insert, and preparing a statement per transaction cost more
// than a small group's rows. Both the store's appends and the bulk loader
// write with it. Not safe for concurrent use; database/sql serializes the
// use of one connection.
type rowWriter struct {
	conn  driver.ConnPrepareContext
	stmts map[string]driver.Stmt // by SQL text
	args  []driver.NamedValue
	tree  []byte
}

// insert writes recs inside whatever transaction the connection has open.
// It checks ctx between statements: a context the driver could watch costs
// a goroutine per statement.
func (w *rowWriter) insert(ctx context.Context, recs []store.Record) error {
	defer clear(w.args) // let the payloads go
	for len(recs) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := insertSize(len(recs))
		stmt, err := w.stmt(n)
		if err != nil {
			return err
		}
		w.bind(recs[:n])
		res, err := stmt.ExecContext(context.Background(), w.args)
		var last int64
		if err == nil {
			last, err = res.LastInsertId()
		}
		if err != nil {
			return fmt.Errorf("sqlite: insert events %d-%d: %w", recs[0].ID, recs[n-1].ID, err)
		}
		if last != recs[n-1].ID {
			return fmt.Errorf("sqlite: insert events %d-%d: the rows got ids up to %d", recs[0].ID, recs[n-1].ID, last)
		}
		recs = recs[n:]
	}
	return nil
}

func (w *rowWriter) stmt(rows int) (driver.StmtExecContext, error) {
	st, err := w.prepared(eventsInsert + eventsRow + strings.Repeat(","+eventsRow, rows-1))
	if err != nil {
		return nil, fmt.Errorf("sqlite: prepare insert: %w", err)
	}
	ex, ok := st.(driver.StmtExecContext)
	if !ok {
		return nil, fmt.Errorf("sqlite: statement %T cannot execute with a context", st)
	}
	return ex, nil
}

// prepared returns the statement of query, prepared on the connection the
// first time it is asked for.
func (w *rowWriter) prepared(query string) (driver.Stmt, error) {
	if st, ok := w.stmts[query]; ok {
		return st, nil
	}
	st, err := w.conn.PrepareContext(context.Background(), query)
	if err != nil {
		return nil, err
	}
	if w.stmts == nil {
		w.stmts = make(map[string]driver.Stmt)
	}
	w.stmts[query] = st
	return st, nil
}

// close finalizes the statements.
func (w *rowWriter) close() {
	for _, st := range w.stmts {
		st.Close()
	}
	w.stmts = nil
}

// bind sets w.args to the columns of recs, in eventsInsert's order.
func (w *rowWriter) bind(recs []store.Record) {
	w.args = w.args[:0]
	// All the tree blobs of one statement share one buffer, which lives
	// until the next statement: the driver copies what it binds.
	w.tree = w.tree[:0]
	for i := range recs {
		r := &recs[i]
		start := len(w.tree)
		for _, h := range r.Tree {
			w.tree = append(w.tree, h[:]...)
		}
		var ts driver.Value // NULL: a timestamp that does not parse is in no time range
		if t, ok := store.TimeOf(r.Timestamp); ok {
			ts = t
		}
		for _, v := range [...]driver.Value{
			r.Timestamp, r.Kind, r.Source,
			// TEXT, so that SQLite's JSON functions (and payload
			// indexes) can read it. Not copied: the driver copies
			// what it binds, and the records are not changed while
			// the statement runs.
			unsafeString(r.Payload),
			r.PrevHash[:], r.Hash[:], w.tree[start:len(w.tree):len(w.tree)], ts,
		} {
			w.args = append(w.args, driver.NamedValue{Ordinal: len(w.args) + 1, Value: v})
		}
	}
}

func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
