package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/audit-stream/audit-stream/internal/store"
)

// timeSpans reads the time map's summaries (store.TimeMap) from the read
// connections.
type timeSpans struct{ q querier }

func (t timeSpans) MaxEventID(ctx context.Context) (int64, error) {
	var head sql.NullInt64
	err := t.q.QueryRowContext(ctx, "SELECT max(event_id) FROM events").Scan(&head)
	return head.Int64, err
}

func (t timeSpans) BlockTimes(ctx context.Context, block, after, until int64, fn func(k, lo, hi int64, ok bool)) error {
	rows, err := t.q.QueryContext(ctx, "SELECT (event_id - 1) / ?, min(ts), max(ts) FROM events WHERE event_id > ? AND event_id <= ? GROUP BY 1",
		block, after, until)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k int64
		var lo, hi sql.NullInt64
		if err := rows.Scan(&k, &lo, &hi); err != nil {
			return err
		}
		fn(k, lo.Int64, hi.Int64, lo.Valid)
	}
	return rows.Err()
}

// narrowToTime bounds f's ids to those that can hold its time range; ok is
// false when none can.
func (s *Store) narrowToTime(ctx context.Context, f *store.Filter) (ok bool, err error) {
	ok, err = s.times.Narrow(ctx, timeSpans{s.r}, f)
	if err != nil {
		return false, fmt.Errorf("sqlite: time map: %w", err)
	}
	return ok, nil
}
