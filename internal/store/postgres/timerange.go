package postgres

import (
	"context"
	"fmt"

	"github.com/audit-stream/audit-stream/internal/store"
)

// timeSpans reads the time map's summaries (store.TimeMap) from the pool.
// PostgreSQL's planner cannot see that ids and times rise together: given
// kind, source and a wide time range, it either gathers the whole range from
// the ts index and sorts it, or walks the primary key through every event
// older than the range. Bounding the ids as well lets it walk the primary key
// from where the range starts. Appends from every instance serialise on the
// advisory lock until they commit, so the ids up to the head are all
// visible; rows older than the ts column get theirs at start-up, before any
// query.
type timeSpans struct{ s *Store }

func (t timeSpans) MaxEventID(ctx context.Context) (int64, error) {
	var head *int64
	if err := t.s.pool.QueryRow(ctx, "SELECT max(event_id) FROM events").Scan(&head); err != nil || head == nil {
		return 0, err
	}
	return *head, nil
}

func (t timeSpans) BlockTimes(ctx context.Context, block, after, until int64, fn func(k, lo, hi int64, ok bool)) error {
	rows, err := t.s.pool.Query(ctx, "SELECT (event_id - 1) / $1, min(ts), max(ts) FROM events WHERE event_id > $2 AND event_id <= $3 GROUP BY 1",
		block, after, until)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k int64
		var lo, hi *int64
		if err := rows.Scan(&k, &lo, &hi); err != nil {
			return err
		}
		if lo == nil {
			fn(k, 0, 0, false)
		} else {
			fn(k, *lo, *hi, true)
		}
	}
	return rows.Err()
}

// narrowToTime bounds f's ids to those that can hold its time range; ok is
// false when none can.
func (s *Store) narrowToTime(ctx context.Context, f *store.Filter) (ok bool, err error) {
	ok, err = s.times.Narrow(ctx, timeSpans{s}, f)
	if err != nil {
		return false, classify(fmt.Errorf("postgres: time map: %w", err))
	}
	return ok, nil
}
