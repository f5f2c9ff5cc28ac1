package postgres

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// analyzeAt is the size of the log past which the events table's
// statistics must describe more than an empty table.
//
// Every statement the store runs is prepared once per connection and its
// plan kept. Planned while the table is empty and its statistics say so (an
// ANALYZE of the new table, such as migration 5's, records zero rows), each
// index costs the same and a sequential scan nothing, and the plan kept reads
// the whole table, or walks a whole index for one id, for as long as the
// connection lives or until the table is analyzed again: autovacuum's next
// pass, a minute away at best and never where it is off. Under the append
// lock that made every append slower as the log grew (with two instances on
// a new database, the tree's edge took 5 ms to read at 50,000 events and
// appends fell to a quarter of one instance's rate). A table analyzed with
// rows in it gets index plans, and the ANALYZE invalidates the plans every
// session keeps, so once is enough.
const analyzeAt = 1000

// tableStats keeps the events table's statistics past the empty table's.
type tableStats struct {
	rows      atomic.Int64 // pg_class.reltuples as last read (-1: never analyzed)
	analyzing atomic.Bool
	stop      context.CancelFunc
	ctx       context.Context
	wg        sync.WaitGroup
}

func (s *Store) readStats(ctx context.Context) error {
	var rows float64
	if err := s.pool.QueryRow(ctx, "SELECT reltuples FROM pg_class WHERE oid = 'events'::regclass").Scan(&rows); err != nil {
		return err
	}
	s.stats.rows.Store(int64(rows))
	return nil
}

// grew is told the head after each append; the first time the log holds
// analyzeAt events while the statistics say fewer, it analyzes the table in
// the background. One attempt per process: a role that may not analyze the
// table is warned about once.
func (s *Store) grew(head int64) {
	st := &s.stats
	if head < analyzeAt || st.rows.Load() >= analyzeAt || !st.analyzing.CompareAndSwap(false, true) {
		return
	}
	st.wg.Go(func() {
		ctx, cancel := context.WithTimeout(st.ctx, time.Minute)
		defer cancel()
		start := time.Now()
		_, err := s.pool.Exec(ctx, "ANALYZE events")
		if err == nil {
			err = s.readStats(ctx)
		}
		if st.ctx.Err() != nil {
			return // closing
		}
		if err != nil || st.rows.Load() < analyzeAt {
			s.log.Warn("could not analyze the events table; appends slow down as the log grows until autovacuum analyzes it",
				"err", err, "statistics_rows", st.rows.Load())
			st.rows.Store(analyzeAt)
			return
		}
		s.log.Info("analyzed the events table", "rows", st.rows.Load(), "took", time.Since(start))
	})
}
