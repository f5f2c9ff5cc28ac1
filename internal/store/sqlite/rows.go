package sqlite

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strings"
	"unsafe"

	"github.com/audit-stream/audit-stream/internal/store"
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

// driverConn is what a rowWriter needs of the driver's connection.
type driverConn interface {
	driver.Conn
	driver.ConnPrepareContext
}

// rowWriter inserts event rows through the driver's own connection, below
// database/sql, with statements prepared once per connection and kept:
// database/sql's per-call locking and argument conversion cost as much as
// SQLite's insert, and preparing a statement per transaction cost more
// than a small group's rows. Both the store's appends and the bulk loader
// write with it. Not safe for concurrent use.
type rowWriter struct {
	conn  driverConn // the connection the statements belong to
	stmts map[int]driver.StmtExecContext
	args  []driver.NamedValue
	tree  []byte
}

// insert writes recs on dc, inside whatever transaction dc has open. It
// checks ctx between statements: a context the driver could watch costs a
// goroutine per statement.
func (w *rowWriter) insert(ctx context.Context, dc any, recs []store.Record) error {
	conn, ok := dc.(driverConn)
	if !ok {
		return fmt.Errorf("sqlite: driver connection %T cannot prepare", dc)
	}
	if w.conn != conn {
		w.close()
		w.conn, w.stmts = conn, make(map[int]driver.StmtExecContext, len(insertSizes))
	}
	defer clear(w.args) // let the payloads go
	for len(recs) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := insertSizes[len(insertSizes)-1]
		for _, size := range insertSizes {
			if size <= len(recs) {
				n = size
				break
			}
		}
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
	if st, ok := w.stmts[rows]; ok {
		return st, nil
	}
	st, err := w.conn.PrepareContext(context.Background(), eventsInsert+eventsRow+strings.Repeat(","+eventsRow, rows-1))
	if err != nil {
		return nil, fmt.Errorf("sqlite: prepare insert: %w", err)
	}
	ex, ok := st.(driver.StmtExecContext)
	if !ok {
		st.Close()
		return nil, fmt.Errorf("sqlite: statement %T cannot execute with a context", st)
	}
	w.stmts[rows] = ex
	return ex, nil
}

// close finalizes the statements; call it on the connection's own
// goroutine (inside Raw) before the connection closes.
func (w *rowWriter) close() {
	for _, st := range w.stmts {
		if c, ok := st.(driver.Stmt); ok {
			c.Close()
		}
	}
	w.conn, w.stmts = nil, nil
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
