package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/audit-stream/audit-stream/internal/store"
)

// timeBlock is how many consecutive event ids one entry of the time map
// summarizes. 1,024 keeps the map at 16 bytes per 1,024 events (16 MiB for
// a billion) and the slack at either end of a translated range at most one
// block.
const timeBlock = 1024

// timeMap translates a time range into the range of event ids that can hold
// it. Ids follow the order the server received events in, but timestamps are
// whatever producers sent: mostly rising, never guaranteed to (a producer's
// clock is behind, a batch is back-filled, an old log is imported). So the
// map keeps, for each block of timeBlock ids, the least and the greatest
// timestamp in it, and a time range [from, to) maps to the ids from the
// first block whose greatest timestamp reaches from up to the last block
// whose least timestamp is before to: every event in the range lies in
// between, whatever the order (the ts column then decides exactly). On a log
// whose timestamps rise, that is the range itself plus at most a block at
// each end; out-of-order timestamps only widen it. Without it a time range
// combined with kind or source had to be walked in id order from the head,
// checking the time of every row on the way, or gathered from the ts index
// and sorted.
//
// The map lives in memory, built on first use from the table (about half a
// second for a million events) and extended by the rows appended since, on
// each use: rows never change once written, so what it summarized stays
// true.
type timeMap struct {
	mu     sync.Mutex
	block  int64      // ids per block: timeBlock, or fewer in tests
	blocks []timeSpan // block k: ids k*block+1 … (k+1)*block
	upTo   int64      // the ids summarized: 1 … upTo
}

// timeSpan is the least and greatest ts of a block's events; lo > hi when
// none has a time (no event yet, or none whose timestamp parses).
type timeSpan struct{ lo, hi int64 }

var noSpan = timeSpan{lo: math.MaxInt64, hi: math.MinInt64}

// errEmptyRange: no event can be in the time range.
var errEmptyRange = errors.New("no event in the time range")

// timeMapChunk bounds the ids one refresh statement reads, so that building
// the map on a large log never holds one read snapshot for long.
const timeMapChunk = 64 * timeBlock

// refresh extends the map to the log's head.
func (m *timeMap) refresh(ctx context.Context, q querier) error {
	var head sql.NullInt64
	if err := q.QueryRowContext(ctx, "SELECT max(event_id) FROM events").Scan(&head); err != nil {
		return err
	}
	if m.block == 0 {
		m.block = timeBlock
	}
	for m.upTo < head.Int64 {
		to := min(head.Int64, m.upTo+timeMapChunk)
		rows, err := q.QueryContext(ctx, "SELECT (event_id - 1) / ?, min(ts), max(ts) FROM events WHERE event_id > ? AND event_id <= ? GROUP BY 1",
			m.block, m.upTo, to)
		if err != nil {
			return err
		}
		for rows.Next() {
			var k int64
			var lo, hi sql.NullInt64
			if err := rows.Scan(&k, &lo, &hi); err != nil {
				rows.Close()
				return err
			}
			for int64(len(m.blocks)) <= k {
				m.blocks = append(m.blocks, noSpan)
			}
			if lo.Valid {
				b := &m.blocks[k]
				b.lo, b.hi = min(b.lo, lo.Int64), max(b.hi, hi.Int64)
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
		m.upTo = to
	}
	return nil
}

// ids returns the event ids (after, until] that hold every event with a
// time in [from, to) (Unix microseconds; set says which bounds are given).
// Events appended after the map was refreshed lie above upTo: they are in
// the range when to is not given, and outside it when it is (the query
// then sees the log as it was at the refresh).
func (m *timeMap) ids(ctx context.Context, q querier, from, to int64, hasFrom, hasTo bool) (after, until int64, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.refresh(ctx, q); err != nil {
		return 0, 0, fmt.Errorf("sqlite: time map: %w", err)
	}
	n := int64(len(m.blocks))
	if hasFrom {
		k := int64(0)
		for k < n && m.blocks[k].hi < from {
			k++
		}
		after = min(k*m.block, m.upTo)
	}
	if hasTo {
		k := n - 1
		for k >= 0 && m.blocks[k].lo >= to {
			k--
		}
		// until 0 would mean no bound: the range is empty.
		until = min((k+1)*m.block, m.upTo)
		if until <= after {
			return 0, 0, errEmptyRange
		}
	}
	return after, until, nil
}

// narrowToTime bounds f's ids to those that can hold its time range; ok is
// false when none can.
func (s *Store) narrowToTime(ctx context.Context, f *store.Filter) (ok bool, err error) {
	if !f.HasTimeRange() {
		return true, nil
	}
	after, until, err := s.times.ids(ctx, s.r, f.TimeFrom.UnixMicro(), f.TimeTo.UnixMicro(), !f.TimeFrom.IsZero(), !f.TimeTo.IsZero())
	if errors.Is(err, errEmptyRange) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	f.After = max(f.After, after)
	if until > 0 && (f.Until == 0 || until < f.Until) {
		f.Until = until
	}
	return f.Until == 0 || f.Until > f.After, nil
}
