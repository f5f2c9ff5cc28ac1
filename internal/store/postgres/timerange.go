package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/audit-stream/audit-stream/internal/store"
)

// timeBlock is how many consecutive event ids one entry of the time map
// summarizes: 16 bytes of memory per 1,024 events, and at most a block of
// slack at either end of a translated range.
const timeBlock = 1024

// timeMap translates a time range into the range of event ids that can hold
// it, as the SQLite store's does. PostgreSQL's planner cannot see that ids
// and times rise together: given kind, source and a wide time range, it
// either gathers the whole range from the ts index and sorts it, or walks the
// primary key from the first id, through every event older than the range.
// Bounding the ids as well lets it walk the primary key from where the range
// starts.
//
// Timestamps are whatever producers sent, in any order, so the map keeps for
// each block of timeBlock ids the least and the greatest ts in it, and a
// range [from, to) maps to the ids from the first block whose greatest ts
// reaches from to the last block whose least ts is before to: every event in
// the range lies in between, whatever the order; the ts column then decides
// exactly. It lives in memory, built on first use (a few seconds for a million
// events) and extended by the rows appended since, by any instance, on each
// use. Appends serialise on the advisory lock until they commit, so the ids up
// to the head are all visible, and a row's ts never changes once written
// (rows older than the ts column get theirs at start-up, before any query).
type timeMap struct {
	mu     sync.Mutex
	block  int64      // ids per block: timeBlock, or fewer in tests
	blocks []timeSpan // block k: ids k*block+1 … (k+1)*block
	upTo   int64      // the ids summarized: 1 … upTo
}

// timeSpan is the least and greatest ts of a block's events; lo > hi when
// none has a time.
type timeSpan struct{ lo, hi int64 }

var noSpan = timeSpan{lo: math.MaxInt64, hi: math.MinInt64}

// errEmptyRange: no event can be in the time range.
var errEmptyRange = errors.New("no event in the time range")

// timeMapChunk bounds the ids one refresh statement reads, so that building
// the map on a large log is many short statements.
const timeMapChunk = 64 * timeBlock

// refresh extends the map to the log's head.
func (m *timeMap) refresh(ctx context.Context, s *Store) error {
	var head *int64
	if err := s.pool.QueryRow(ctx, "SELECT max(event_id) FROM events").Scan(&head); err != nil {
		return err
	}
	if m.block == 0 {
		m.block = timeBlock
	}
	for head != nil && m.upTo < *head {
		to := min(*head, m.upTo+timeMapChunk)
		rows, err := s.pool.Query(ctx, "SELECT (event_id - 1) / $1, min(ts), max(ts) FROM events WHERE event_id > $2 AND event_id <= $3 GROUP BY 1",
			m.block, m.upTo, to)
		if err != nil {
			return err
		}
		for rows.Next() {
			var k int64
			var lo, hi *int64
			if err := rows.Scan(&k, &lo, &hi); err != nil {
				rows.Close()
				return err
			}
			for int64(len(m.blocks)) <= k {
				m.blocks = append(m.blocks, noSpan)
			}
			if lo != nil {
				b := &m.blocks[k]
				b.lo, b.hi = min(b.lo, *lo), max(b.hi, *hi)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		m.upTo = to
	}
	return nil
}

// ids returns the event ids (after, until] that hold every event with a
// time in [from, to) (Unix microseconds; has* says which bounds are given).
// Events appended after the refresh lie above upTo: in the range when to is
// not given, outside it when it is (the query sees the log as it was then).
func (m *timeMap) ids(ctx context.Context, s *Store, from, to int64, hasFrom, hasTo bool) (after, until int64, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.refresh(ctx, s); err != nil {
		return 0, 0, classify(fmt.Errorf("postgres: time map: %w", err))
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
	after, until, err := s.times.ids(ctx, s, f.TimeFrom.UnixMicro(), f.TimeTo.UnixMicro(), !f.TimeFrom.IsZero(), !f.TimeTo.IsZero())
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
