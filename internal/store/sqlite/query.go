package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
)

// plan is how one filter runs: a WHERE clause that the indexes serve, and
// whether each row it selects must still be checked in Go.
type plan struct {
	where string
	args  []any
	// recheck: the clause selects a superset (payload values are
	// compared loosely in SQL, or not at all); Filter.MatchesPayload
	// decides.
	recheck bool
	// capped: some condition is evaluated only row by row, so MaxScan
	// applies.
	capped bool
}

// jsonPath is the SQLite JSON path of a payload path. Segments hold only
// letters, digits, '_' and '-' (store.CheckPathSegment), so quoting each one
// is all the escaping it needs, and the text is the same in the index
// definition and in every query, which is what lets SQLite use the index.
func jsonPath(path []string) string {
	var b strings.Builder
	b.WriteString("'$")
	for _, seg := range path {
		b.WriteString(`."`)
		b.WriteString(seg)
		b.WriteString(`"`)
	}
	b.WriteString("'")
	return b.String()
}

func payloadExpr(path []string) string {
	return "json_extract(payload, " + jsonPath(path) + ")"
}

// plan builds the query plan for f.
func (s *Store) plan(f store.Filter) plan {
	var p plan
	var conds []string
	in := func(col string, vals []string) {
		if len(vals) == 0 {
			return
		}
		if len(vals) == 1 {
			conds = append(conds, col+" = ?")
			p.args = append(p.args, vals[0])
			return
		}
		conds = append(conds, col+" IN (?"+strings.Repeat(",?", len(vals)-1)+")")
		for _, v := range vals {
			p.args = append(p.args, v)
		}
	}
	in("kind", f.Kinds)
	in("source", f.Sources)
	if f.After > 0 {
		conds = append(conds, "event_id > ?")
		p.args = append(p.args, f.After)
	}
	if f.Until > 0 {
		conds = append(conds, "event_id <= ?")
		p.args = append(p.args, f.Until)
	}
	if f.HasTimeRange() {
		// Scan has narrowed the ids to those that can hold the time
		// range (timeMap): the rows are walked in id order within
		// them, and the unary + keeps SQLite from gathering a wide
		// range from the ts index and sorting it instead.
		if !f.TimeFrom.IsZero() {
			conds = append(conds, "+ts >= ?")
			p.args = append(p.args, f.TimeFrom.UnixMicro())
		}
		if !f.TimeTo.IsZero() {
			conds = append(conds, "+ts < ?")
			p.args = append(p.args, f.TimeTo.UnixMicro())
		}
	}
	for _, m := range f.Payload {
		p.recheck = true
		if !s.indexed(m.Path) {
			p.capped = true
			continue
		}
		// A superset of the matches, in terms the expression index
		// answers: json_extract gives a string's text, a number's
		// value, 1/0 for true/false and NULL for null (and for a
		// missing key). MatchesPayload then compares exactly.
		expr := payloadExpr(m.Path)
		var vals []any
		null := false
		for _, v := range m.Values {
			vals = append(vals, v)
			switch v {
			case "true":
				vals = append(vals, 1)
			case "false":
				vals = append(vals, 0)
			case "null":
				null = true
			}
			if n, ok := store.ParseNumber(v); ok {
				if n.IsInt {
					vals = append(vals, n.Int)
				} else {
					vals = append(vals, n.Float)
				}
			}
		}
		c := expr + " IN (?" + strings.Repeat(",?", len(vals)-1) + ")"
		if null {
			c = "(" + c + " OR " + expr + " IS NULL)"
		}
		conds = append(conds, c)
		p.args = append(p.args, vals...)
	}
	if f.Text != "" {
		p.recheck, p.capped = true, true
	}
	if len(conds) > 0 {
		p.where = " WHERE " + strings.Join(conds, " AND ")
	}
	return p
}

func (s *Store) indexed(path []string) bool {
	s.imu.RLock()
	defer s.imu.RUnlock()
	return slices.Contains(s.payloadIndexes, strings.Join(path, "."))
}

// Scan implements store.Store. It reads in pages keyed by event id so that
// no statement stays open for the whole scan.
func (s *Store) Scan(ctx context.Context, f store.Filter, limit int, fn func(*event.Event) error) error {
	var e event.Event
	order := " ORDER BY event_id"
	if f.Desc {
		order = " ORDER BY event_id DESC"
	}
	if ok, err := s.narrowToTime(ctx, &f); !ok || err != nil {
		return err
	}
	seen, examined := 0, 0
	var last int64 // the last event examined
	for {
		p := s.plan(f)
		page := scanPage
		if limit > 0 && !p.recheck {
			page = min(page, limit-seen)
		}
		if limit > 0 && seen >= limit {
			return nil
		}
		if p.capped && f.MaxScan > 0 {
			if examined >= f.MaxScan {
				return &store.ScanLimitError{Examined: examined, Last: last}
			}
			page = min(page, f.MaxScan-examined)
		}
		n, odd := 0, int64(0)
		stop := false
		var fnErr error
		q := func(cols string) string { return "SELECT " + cols + " FROM events" + p.where + order + " LIMIT ?" }
		err := s.queryEvents(ctx, q, append(p.args, int64(page)), func(row *event.Event, ok bool) error {
			e = *row
			if !ok {
				if e.ID == 0 {
					return fmt.Errorf("a row after event %d has no integer event_id", last)
				}
				odd = e.ID
				return errEndPage
			}
			n++
			last = e.ID
			if p.recheck && !f.MatchesPayload(e.Payload) {
				return nil
			}
			seen++
			if fnErr = fn(&e); fnErr != nil {
				return fnErr
			}
			if limit > 0 && seen >= limit {
				stop = true
				return errEndPage
			}
			return nil
		})
		if fnErr != nil {
			return fnErr
		}
		if err != nil && !errors.Is(err, errEndPage) {
			return fmt.Errorf("sqlite: scan: %w", err)
		}
		if stop {
			return nil
		}
		if odd != 0 {
			// Read the row that is not as Append writes rows on its
			// own, and go on after it with a new page.
			if e, err = s.Get(ctx, odd); err != nil {
				return fmt.Errorf("sqlite: scan: %w", err)
			}
			n++
			last = e.ID
			if !p.recheck || f.MatchesPayload(e.Payload) {
				seen++
				if err := fn(&e); err != nil {
					return err
				}
			}
		}
		examined += n
		if n < page && odd == 0 {
			return nil
		}
		if f.Desc {
			if last <= 1 {
				return nil
			}
			f.Until = last - 1
		} else {
			f.After = last
		}
	}
}

// errEndPage ends the rows of a page early: the scan is done, or a row must
// be read on its own.
var errEndPage = errors.New("end of page")

// Latest implements store.Store.
func (s *Store) Latest(ctx context.Context, f store.Filter, limit int) ([]event.Event, error) {
	f.Desc = true
	out := make([]event.Event, 0, min(limit, 1024))
	err := s.Scan(ctx, f, limit, func(e *event.Event) error {
		out = append(out, *e) // Payload is fresh per event
		return nil
	})
	if err != nil {
		var lim *store.ScanLimitError
		if errors.As(err, &lim) {
			return nil, err
		}
		return nil, fmt.Errorf("sqlite: query: %w", err)
	}
	slices.Reverse(out)
	return out, nil
}

// queryIndexes are the indexes the query plans rely on, as they should be.
// The kind index carries the source after the id and the source index the
// kind, so that a query on kind and source checks the other column in
// whichever index SQLite walks, and reads only the rows that match both (on
// a log of 5 sources per kind, a fifth of the rows); each stays in id order
// within its value, which is what kind and source queries walk.
var queryIndexes = []struct{ name, sql string }{
	{"events_kind", "CREATE INDEX events_kind ON events(kind, event_id, source)"},
	{"events_source", "CREATE INDEX events_source ON events(source, event_id, kind)"},
}

// upgradeQueryIndexes rebuilds a query index whose definition is not the
// one above: schema version 1 created the kind and source indexes without
// each other's column. Indexes hold nothing the table does not, so they are
// upgraded by their definition rather than by a numbered migration: the
// schema version stays as it was, and a binary from before this still opens
// the file. The rebuild takes seconds per million events, once (README,
// Upgrades).
func upgradeQueryIndexes(ctx context.Context, db *sql.DB) error {
	for _, ix := range queryIndexes {
		// Read inside the write transaction: a token-admin process
		// may open the same file at the same moment.
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		var have string
		err = tx.QueryRowContext(ctx, "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", ix.name).Scan(&have)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			tx.Rollback()
			return fmt.Errorf("sqlite: read index %s: %w", ix.name, err)
		}
		if have == ix.sql {
			tx.Rollback()
			continue
		}
		if _, err := tx.ExecContext(ctx, `DROP INDEX IF EXISTS "`+ix.name+`"`); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlite: drop index %s: %w", ix.name, err)
		}
		if _, err := tx.ExecContext(ctx, ix.sql); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlite: rebuild index %s: %w", ix.name, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("sqlite: rebuild index %s: %w", ix.name, err)
		}
	}
	return nil
}

// payloadIndexPrefix names the expression indexes IndexPayload manages.
const payloadIndexPrefix = "events_payload_"

// IndexPayload makes the payload paths (dotted, such as "decision_id" or
// "args.path") indexed: an expression index on each, created if missing, so
// that equality filters on them are index lookups instead of scans.
// Expression indexes this created earlier for paths no longer listed are
// dropped: an index costs every append.
func (s *Store) IndexPayload(ctx context.Context, paths []string) error {
	want := map[string]string{} // index name → path
	for _, path := range paths {
		segs := strings.Split(path, ".")
		if len(segs) > store.MaxPathDepth {
			return fmt.Errorf("sqlite: index payload %q: deeper than %d keys", path, store.MaxPathDepth)
		}
		for _, seg := range segs {
			if err := store.CheckPathSegment(seg); err != nil {
				return fmt.Errorf("sqlite: index payload %q: %w", path, err)
			}
		}
		want[payloadIndexPrefix+strings.ReplaceAll(strings.ReplaceAll(path, "-", "_2d"), ".", "__")] = path
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	rows, err := s.w.QueryContext(ctx, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND name LIKE ? ESCAPE '\\'", strings.ReplaceAll(payloadIndexPrefix, "_", `\_`)+"%")
	if err != nil {
		return fmt.Errorf("sqlite: list payload indexes: %w", err)
	}
	var have []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return err
		}
		have = append(have, name)
	}
	rows.Close()
	for _, name := range have {
		if _, ok := want[name]; !ok {
			if _, err := s.w.ExecContext(ctx, `DROP INDEX "`+name+`"`); err != nil {
				return fmt.Errorf("sqlite: drop payload index %s: %w", name, err)
			}
		}
	}
	var indexed []string
	for name, path := range want {
		if _, err := s.w.ExecContext(ctx, `CREATE INDEX IF NOT EXISTS "`+name+`" ON events(`+payloadExpr(strings.Split(path, "."))+`)`); err != nil {
			return fmt.Errorf("sqlite: create payload index on %s: %w", path, err)
		}
		indexed = append(indexed, path)
	}
	s.imu.Lock()
	s.payloadIndexes = indexed
	s.imu.Unlock()
	return nil
}
