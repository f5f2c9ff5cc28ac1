package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"reflect"
	"unsafe"

	"github.com/audit-stream/audit-stream/event"
	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// scanColumns are the columns a scan reads, in readRow's order. The payload
// is read as a blob: the driver hands a blob over as a fresh []byte, which
// the event keeps, where a text column would be copied into a string first.
const scanColumns = "event_id, prev_hash, hash, timestamp, kind, source, CAST(payload AS BLOB)"

// rawColumns are scanColumns for rawReader, which reads a text column's
// bytes as they are and needs no cast.
const rawColumns = "event_id, prev_hash, hash, timestamp, kind, source, payload"

// queryEvents runs the SELECT of rawColumns or scanColumns that cols
// completes (q(cols) is the statement) on a read connection and calls row
// for each row; ok is false for a row that is not as every row written by
// Append is (see readRow). The event is reused between rows, but the
// strings and the payload it holds are never written again.
//
// A query whose arguments are all integers (every scan by id and time
// range, which is what verification and export run) goes through rawReader;
// others through the driver's rows, below database/sql: its locking and
// conversion of every column of every row cost a third of a scan, and rows
// packed into one blob by SQL (which spared that) cost more in SQLite's
// interpreter than the columns did in the driver.
func (s *Store) queryEvents(ctx context.Context, q func(cols string) string, args []any, row func(e *event.Event, ok bool) error) error {
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		if rc, ok := dc.(*rowsConn); ok && rc.raw != nil {
			if ints, ok := int64Args(args); ok {
				return rc.raw.query(ctx, q(rawColumns), ints, row)
			}
		}
		return driverRows(ctx, dc, q(scanColumns), args, row)
	})
}

func int64Args(args []any) ([]int64, bool) {
	ints := make([]int64, len(args))
	for i, a := range args {
		n, ok := a.(int64)
		if !ok {
			return nil, false
		}
		ints[i] = n
	}
	return ints, true
}

// driverRows runs q through the driver's rows and reads each with readRow.
func driverRows(ctx context.Context, dc any, q string, args []any, row func(e *event.Event, ok bool) error) error {
	named := make([]driver.NamedValue, len(args))
	for i, a := range args {
		v, err := driver.DefaultParameterConverter.ConvertValue(a)
		if err != nil {
			return err
		}
		named[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	qc, ok := dc.(driver.QueryerContext)
	if !ok {
		return fmt.Errorf("driver connection %T cannot query", dc)
	}
	rows, err := qc.QueryContext(ctx, q, named)
	if err != nil {
		return err
	}
	defer rows.Close()
	// vals is reused between rows, but what it holds is fresh for each.
	vals := make([]driver.Value, len(rows.Columns()))
	var e event.Event
	for {
		if err := rows.Next(vals); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		ok := readRow(vals, &e)
		if err := row(&e, ok); err != nil {
			return err
		}
	}
}

// readRow fills e from the values of scanColumns; ok is false if the row is
// not as every row written by Append is (a hash that is not 32 bytes, a
// column of another type: the database was damaged or edited), and the
// caller reads it again with Get, which reports what is wrong.
func readRow(vals []driver.Value, e *event.Event) (ok bool) {
	id, ok := vals[0].(int64)
	e.ID = id // 0 if it is not an integer
	if !ok {
		return false
	}
	prev, ok1 := vals[1].([]byte)
	hash, ok2 := vals[2].([]byte)
	ts, ok3 := vals[3].(string)
	kind, ok4 := vals[4].(string)
	source, ok5 := vals[5].(string)
	payload, ok6 := vals[6].([]byte)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || len(prev) != len(e.PrevHash) || len(hash) != len(e.Hash) {
		return false
	}
	copy(e.PrevHash[:], prev)
	copy(e.Hash[:], hash)
	e.Timestamp, e.Kind, e.Source = ts, kind, source
	if payload == nil {
		payload = []byte{} // an empty blob comes back as nil
	}
	e.Payload = payload
	return true
}

// rawReader reads event rows through SQLite's C API on the handle of the
// driver's connection, with statements it prepares and keeps. Per column of
// a row the driver asks SQLite for the type, copies the value into a fresh
// slice or string and boxes that in an interface: in a profile of GET
// /verify over 1,000,000 events that was more CPU than SQLite's stepping of
// the rows, and its garbage made a collection every few milliseconds. Here
// the values of a page of rows are copied into a few large blocks, and
// kinds and sources, which repeat, share their strings. It binds integers
// only. Not safe for concurrent use, like the connection.
type rawReader struct {
	tls   *libc.TLS
	db    uintptr            // sqlite3*
	stmts map[string]uintptr // sqlite3_stmt* by SQL text
	names map[string]string  // kinds and sources seen
}

// maxNames bounds rawReader.names: a log with more distinct kinds and
// sources gets fresh strings for the others.
const maxNames = 1024

// newRawReader returns the reader for a connection of the driver, or nil if
// the connection is not the one it knows: the handle is not part of the
// driver's API, so it is found by name and type, and without it scans go
// through the driver (TestRawReader fails then, so that an upgrade of the
// driver that hides it is noticed).
func newRawReader(dc driver.Conn) *rawReader {
	v := reflect.ValueOf(dc)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct || v.Elem().Type().PkgPath() != "modernc.org/sqlite" {
		return nil
	}
	tls, db := v.Elem().FieldByName("tls"), v.Elem().FieldByName("db")
	if !tls.IsValid() || tls.Type() != reflect.TypeFor[*libc.TLS]() || tls.IsNil() || !db.IsValid() || db.Kind() != reflect.Uintptr || db.Uint() == 0 {
		return nil
	}
	return &rawReader{tls: (*libc.TLS)(tls.UnsafePointer()), db: uintptr(db.Uint())}
}

// close finalizes the statements; the connection closes after it.
func (r *rawReader) close() {
	for _, st := range r.stmts {
		sqlite3.Xsqlite3_finalize(r.tls, st)
	}
	r.stmts = nil
}

func (r *rawReader) stmt(q string) (uintptr, error) {
	if st, ok := r.stmts[q]; ok {
		return st, nil
	}
	cq, err := libc.CString(q)
	if err != nil {
		return 0, err
	}
	defer libc.Xfree(r.tls, cq)
	out := libc.Xmalloc(r.tls, 8)
	if out == 0 {
		return 0, errors.New("sqlite: out of memory")
	}
	defer libc.Xfree(r.tls, out)
	if rc := sqlite3.Xsqlite3_prepare_v3(r.tls, r.db, cq, -1, sqlite3.SQLITE_PREPARE_PERSISTENT, out, 0); rc != sqlite3.SQLITE_OK {
		return 0, r.err(rc)
	}
	st := *(*uintptr)(cPointer(out))
	if r.stmts == nil {
		r.stmts = make(map[string]uintptr)
	}
	r.stmts[q] = st
	return st, nil
}

func (r *rawReader) err(rc int32) error {
	return fmt.Errorf("%s (%d)", libc.GoString(sqlite3.Xsqlite3_errmsg(r.tls, r.db)), rc)
}

// query runs q with args and calls row for each row of rawColumns.
func (r *rawReader) query(ctx context.Context, q string, args []int64, row func(e *event.Event, ok bool) error) error {
	st, err := r.stmt(q)
	if err != nil {
		return err
	}
	// The read transaction ends with the reset: a statement left
	// stepping would pin its WAL snapshot.
	defer sqlite3.Xsqlite3_reset(r.tls, st)
	for i, a := range args {
		if rc := sqlite3.Xsqlite3_bind_int64(r.tls, st, int32(i+1), a); rc != sqlite3.SQLITE_OK {
			return r.err(rc)
		}
	}
	var e event.Event
	var blk block
	for n := 0; ; n++ {
		// The driver would interrupt a statement when ctx ends; a
		// scan's rows come quickly enough to look every few hundred.
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		switch rc := sqlite3.Xsqlite3_step(r.tls, st); rc {
		case sqlite3.SQLITE_ROW:
		case sqlite3.SQLITE_DONE:
			return nil
		default:
			return r.err(rc)
		}
		ok := r.read(st, &e, &blk)
		if err := row(&e, ok); err != nil {
			return err
		}
	}
}

// read fills e from the current row of st, as readRow does.
func (r *rawReader) read(st uintptr, e *event.Event, blk *block) bool {
	// event_id is the rowid: always an integer.
	e.ID = sqlite3.Xsqlite3_column_int64(r.tls, st, 0)
	prev, ok1 := r.column(st, 1)
	hash, ok2 := r.column(st, 2)
	ts, ok3 := r.column(st, 3)
	kind, ok4 := r.column(st, 4)
	source, ok5 := r.column(st, 5)
	payload, ok6 := r.column(st, 6)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || len(prev) != len(e.PrevHash) || len(hash) != len(e.Hash) {
		return false
	}
	copy(e.PrevHash[:], prev)
	copy(e.Hash[:], hash)
	e.Timestamp = blk.string(ts)
	e.Kind = r.name(kind)
	e.Source = r.name(source)
	e.Payload = blk.bytes(payload)
	return true
}

// column returns the bytes of column i of the current row, in SQLite's
// memory (valid until the next step): a text column's text, a blob
// column's blob, as the driver would have given them. ok is false for NULL,
// which no column of an event may be.
//
// Every sqlite3_column_* call takes the connection's mutex (the driver
// opens connections serialized) and the blob and its length would be two:
// the value's own functions take none, and the value is safe to read
// without the mutex because nothing else uses the connection meanwhile.
// Only a number, which must be converted to text in memory SQLite
// allocates, is read through sqlite3_column_blob.
func (r *rawReader) column(st uintptr, i int32) (b []byte, ok bool) {
	v := sqlite3.Xsqlite3_column_value(r.tls, st, i)
	var p uintptr
	var n int32
	switch sqlite3.Xsqlite3_value_type(r.tls, v) {
	case sqlite3.SQLITE_TEXT, sqlite3.SQLITE_BLOB:
		p = sqlite3.Xsqlite3_value_blob(r.tls, v)
		n = sqlite3.Xsqlite3_value_bytes(r.tls, v)
	case sqlite3.SQLITE_NULL:
		return nil, false
	default:
		p = sqlite3.Xsqlite3_column_blob(r.tls, st, i)
		n = sqlite3.Xsqlite3_column_bytes(r.tls, st, i)
	}
	if p == 0 || n <= 0 {
		return nil, true
	}
	return unsafe.Slice((*byte)(cPointer(p)), n), true
}

// name returns b as a string, the same string for the same bytes while
// there are at most maxNames of them.
func (r *rawReader) name(b []byte) string {
	if s, ok := r.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(r.names) < maxNames {
		if r.names == nil {
			r.names = make(map[string]string)
		}
		r.names[s] = s
	}
	return s
}

// cPointer is the address of C memory (SQLite's, allocated by the
// driver's libc, never by Go) as a pointer. Such memory never moves, so the
// conversion is sound; it is spelled through the variable's address because
// vet rightly warns of converting a uintptr to a pointer in general.
func cPointer(p uintptr) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&p))
}

// block holds copies of the values of a page of rows in a few large
// allocations instead of one per value. A copy is never written again,
// and each is capped at its length, so an event may keep its payload and
// strings for as long as it likes (it keeps the block alive with them).
type block struct{ buf []byte }

const blockSize = 64 << 10

func (b *block) bytes(v []byte) []byte {
	if len(v) == 0 {
		return []byte{}
	}
	if len(v) > cap(b.buf)-len(b.buf) {
		if len(v) > blockSize/4 {
			return append([]byte(nil), v...)
		}
		b.buf = make([]byte, 0, blockSize)
	}
	start := len(b.buf)
	b.buf = append(b.buf, v...)
	return b.buf[start:len(b.buf):len(b.buf)]
}

func (b *block) string(v []byte) string {
	c := b.bytes(v)
	return unsafe.String(unsafe.SliceData(c), len(c))
}
