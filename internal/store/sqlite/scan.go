package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"

	"github.com/audit-stream/audit-stream/event"
)

// scanColumns are the columns a scan reads, in readRow's order. The payload
// is read as a blob: the driver hands a blob over as a fresh []byte, which
// the event keeps, where a text column would be copied into a string first.
const scanColumns = "event_id, prev_hash, hash, timestamp, kind, source, CAST(payload AS BLOB)"

// queryRows runs q on a read connection and calls row for each row, with
// the driver's values, below database/sql: its locking and conversion of
// every column of every row cost a third of a scan, and rows packed into
// one blob by SQL (which spared that) cost more in SQLite's interpreter
// than the columns did in the driver. vals is reused between rows, but what
// it holds is fresh for each row.
func (s *Store) queryRows(ctx context.Context, q string, args []any, row func(vals []driver.Value) error) error {
	named := make([]driver.NamedValue, len(args))
	for i, a := range args {
		v, err := driver.DefaultParameterConverter.ConvertValue(a)
		if err != nil {
			return err
		}
		named[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		qc, ok := dc.(driver.QueryerContext)
		if !ok {
			return fmt.Errorf("driver connection %T cannot query", dc)
		}
		rows, err := qc.QueryContext(ctx, q, named)
		if err != nil {
			return err
		}
		defer rows.Close()
		vals := make([]driver.Value, len(rows.Columns()))
		for {
			if err := rows.Next(vals); errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return err
			}
			if err := row(vals); err != nil {
				return err
			}
		}
	})
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
