package store

import (
	"context"
	"math"
	"sync"
)

// TimeBlock is how many consecutive event ids one entry of a TimeMap
// summarizes: 16 bytes of memory per 1,024 events (16 MiB for a billion),
// and at most one block of slack at either end of a translated range.
const TimeBlock = 1024

// TimeSpans is what a TimeMap reads from a store: its head, and the least
// and greatest time (Unix microseconds) of each block of ids in a range.
type TimeSpans interface {
	// MaxEventID is the largest event id stored, 0 in an empty log.
	MaxEventID(ctx context.Context) (int64, error)
	// BlockTimes calls fn(k, lo, hi, ok) for each block k (ids k*block+1 …
	// (k+1)*block) with events in (after, until]; lo and hi are the least
	// and greatest of their times, and ok is false when none of them has a
	// time (no timestamp that parses).
	BlockTimes(ctx context.Context, block, after, until int64, fn func(k, lo, hi int64, ok bool)) error
}

// TimeMap translates a time range into the range of event ids that can hold
// it. Ids follow the order the server received events in, but timestamps are
// whatever producers sent: mostly rising, never guaranteed to (a producer's
// clock is behind, a batch is back-filled, an old log is imported). So the
// map keeps, for each block of ids, the least and the greatest timestamp in
// it, and a time range [from, to) maps to the ids from the first block whose
// greatest timestamp reaches from up to the last block whose least timestamp
// is before to: every event in the range lies in between, whatever the order
// (the store's time column then decides exactly). On a log whose timestamps
// rise, that is the range itself plus at most a block at each end;
// out-of-order timestamps only widen it. Without it a time range combined
// with kind or source is either walked in id order from the head, checking
// every row's time on the way, or gathered from a time index and sorted —
// and a planner that cannot see that ids and times rise together picks one
// of those.
//
// The map lives in memory, built on first use (about half a second for a
// million events) and extended on each use by the rows appended since, by
// any writer: rows never change once written, so what it summarized stays
// true. The store must make every id up to MaxEventID visible when it
// answers (both stores' appends serialise until they commit).
type TimeMap struct {
	mu     sync.Mutex
	block  int64      // ids per block: TimeBlock, or fewer in tests
	blocks []timeSpan // block k: ids k*block+1 … (k+1)*block
	upTo   int64      // the ids summarized: 1 … upTo
}

// timeSpan is the least and greatest time of a block's events; lo > hi when
// none has a time (no event yet, or none whose timestamp parses).
type timeSpan struct{ lo, hi int64 }

var noSpan = timeSpan{lo: math.MaxInt64, hi: math.MinInt64}

// timeMapChunk bounds the ids one BlockTimes call reads, so that building
// the map on a large log is many short statements, never one long snapshot.
const timeMapChunk = 64 * TimeBlock

// SetBlock makes the map summarize blocks of n ids, so that a small test log
// spans many blocks. Call it before the first Narrow.
func (m *TimeMap) SetBlock(n int64) { m.block = n }

// Covered reports how many ids the map summarizes, in how many blocks.
func (m *TimeMap) Covered() (ids int64, blocks int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.upTo, len(m.blocks)
}

// refresh extends the map to the log's head.
func (m *TimeMap) refresh(ctx context.Context, src TimeSpans) error {
	head, err := src.MaxEventID(ctx)
	if err != nil {
		return err
	}
	if m.block == 0 {
		m.block = TimeBlock
	}
	for m.upTo < head {
		to := min(head, m.upTo+timeMapChunk)
		err := src.BlockTimes(ctx, m.block, m.upTo, to, func(k, lo, hi int64, ok bool) {
			for int64(len(m.blocks)) <= k {
				m.blocks = append(m.blocks, noSpan)
			}
			if ok {
				b := &m.blocks[k]
				b.lo, b.hi = min(b.lo, lo), max(b.hi, hi)
			}
		})
		if err != nil {
			return err
		}
		m.upTo = to
	}
	return nil
}

// Narrow bounds f's ids to those that can hold its time range; ok is false
// when none can. Events appended after the refresh lie above the ids the map
// covers: in the range when f has no upper time bound, outside it when it
// has one (the query then sees the log as it was at the refresh).
func (m *TimeMap) Narrow(ctx context.Context, src TimeSpans, f *Filter) (ok bool, err error) {
	if !f.HasTimeRange() {
		return true, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.refresh(ctx, src); err != nil {
		return false, err
	}
	var after, until int64
	n := int64(len(m.blocks))
	if !f.TimeFrom.IsZero() {
		from := f.TimeFrom.UnixMicro()
		k := int64(0)
		for k < n && m.blocks[k].hi < from {
			k++
		}
		after = min(k*m.block, m.upTo)
	}
	if !f.TimeTo.IsZero() {
		to := f.TimeTo.UnixMicro()
		k := n - 1
		for k >= 0 && m.blocks[k].lo >= to {
			k--
		}
		// until 0 would mean no bound: the range is empty.
		until = min((k+1)*m.block, m.upTo)
		if until <= after {
			return false, nil
		}
	}
	f.After = max(f.After, after)
	if until > 0 && (f.Until == 0 || until < f.Until) {
		f.Until = until
	}
	return f.Until == 0 || f.Until > f.After, nil
}
