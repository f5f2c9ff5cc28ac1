package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// plan is how one filter runs: a WHERE clause the indexes serve, and
// whether each row it selects must still be checked in Go.
type plan struct {
	where string
	args  []any
	// recheck: the clause selects a superset (payload values are keyed
	// loosely in SQL, or not at all; text is not searched in SQL);
	// Filter.Matches decides.
	recheck bool
	// capped: some condition is evaluated only row by row, so MaxScan
	// applies.
	capped bool
}

// plan builds the WHERE clause for f, numbering its parameters from 1.
// Every shape it produces is served by the primary key, the
// (sha256(kind), event_id) and (sha256(source), event_id) indexes, the ts
// index, or a payload expression index.
func (s *Store) plan(f store.Filter) plan {
	var p plan
	var conds []string
	arg := func(v any) string {
		p.args = append(p.args, v)
		return "$" + strconv.Itoa(len(p.args))
	}
	in := func(col string, vals []string) {
		if len(vals) == 0 {
			return
		}
		bs := make([][]byte, len(vals))
		ds := make([][]byte, len(vals))
		for i, v := range vals {
			bs[i] = []byte(v)
			d := sha256.Sum256(bs[i])
			ds[i] = d[:]
		}
		conds = append(conds, "sha256("+col+") = ANY("+arg(ds)+") AND "+col+" = ANY("+arg(bs)+")")
	}
	in("kind", f.Kinds)
	in("source", f.Sources)
	if f.After > 0 {
		conds = append(conds, "event_id > "+arg(f.After))
	}
	if f.Until > 0 {
		conds = append(conds, "event_id <= "+arg(f.Until))
	}
	// ts is the instant store.TimeOf gives, as Filter.Matches compares it;
	// NULL (a timestamp that does not parse) is in no range.
	if !f.TimeFrom.IsZero() {
		conds = append(conds, "ts >= "+arg(f.TimeFrom.UnixMicro()))
	}
	if !f.TimeTo.IsZero() {
		conds = append(conds, "ts < "+arg(f.TimeTo.UnixMicro()))
	}
	for _, m := range f.Payload {
		p.recheck = true
		keys, ok := payloadKeys(m.Values)
		if !ok || !s.indexed(m.Path) {
			p.capped = true
			continue
		}
		// A superset of the matches, in the terms of the expression
		// index; Filter.Matches then compares exactly.
		var elems []string
		for _, k := range keys {
			switch k := k.(type) {
			case float64:
				elems = append(elems, "to_jsonb("+arg(k)+"::float8)")
			case string:
				elems = append(elems, arg(k)+"::jsonb")
			}
		}
		conds = append(conds, payloadExpr(m.Path)+" = ANY(ARRAY["+strings.Join(elems, ",")+"])")
	}
	if f.Text != "" {
		p.recheck, p.capped = true, true
	}
	if len(conds) > 0 {
		p.where = " WHERE " + strings.Join(conds, " AND ")
	}
	return p
}

// payloadKeys returns what audit_stream_payload_key gives for a stored value
// equal to one of vals: the JSON string (as jsonb text), and the number (as
// a float64, keyed in SQL as the function keys numbers), true, false or null
// the value spells; and the marker of unreadable payloads. It reports false
// for values SQL cannot carry (invalid UTF-8, NUL): those run row by row.
func payloadKeys(vals []string) ([]any, bool) {
	keys := []any{unreadableKey}
	for _, v := range vals {
		if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
			return nil, false
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, false
		}
		keys = append(keys, string(b))
		switch v {
		case "true", "false", "null":
			keys = append(keys, v)
		}
		if n, ok := store.ParseNumber(v); ok {
			keys = append(keys, n.Float)
		}
	}
	return keys, true
}

// payloadExpr is the indexed expression of a payload path. Segments hold only
// letters, digits, '_' and '-' (store.CheckPathSegment), so the path is a
// literal needing no escaping, and the text is the same in the index
// definition and in every query, which is what lets PostgreSQL use the index.
func payloadExpr(path []string) string {
	return "audit_stream_payload_key(payload, '{" + strings.Join(path, ",") + "}'::text[])"
}

func (s *Store) indexed(path []string) bool {
	s.imu.RLock()
	defer s.imu.RUnlock()
	return slices.Contains(s.payloadIndexes, strings.Join(path, "."))
}

// payloadIndexPrefix names the expression indexes IndexPayload manages.
const payloadIndexPrefix = "events_payload_"

func payloadIndexName(path string) string {
	return payloadIndexPrefix + strings.ReplaceAll(strings.ReplaceAll(path, "-", "_2d"), ".", "__")
}

func payloadIndexPath(name string) string {
	p := strings.TrimPrefix(name, payloadIndexPrefix)
	return strings.ReplaceAll(strings.ReplaceAll(p, "__", "."), "_2d", "-")
}

// listPayloadIndexes returns the payload expression indexes of this schema:
// valid ones, and ones a failed concurrent build left invalid.
func listPayloadIndexes(ctx context.Context, q querier) (valid, invalid []string, err error) {
	rows, err := q.Query(ctx, `SELECT c.relname, i.indisvalid FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid
		JOIN pg_class t ON t.oid = i.indrelid
		WHERE t.relname = 'events' AND t.relnamespace = current_schema()::regnamespace
		AND c.relname LIKE 'events\_payload\_%'`)
	if err != nil {
		return nil, nil, classify(fmt.Errorf("postgres: list payload indexes: %w", err))
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var ok bool
		if err := rows.Scan(&name, &ok); err != nil {
			return nil, nil, err
		}
		if ok {
			valid = append(valid, name)
		} else {
			invalid = append(invalid, name)
		}
	}
	return valid, invalid, rows.Err()
}

// loadPayloadIndexes learns which payload paths have an index, so that a
// store opened without IndexPayload (a CLI command, another instance's
// configuration) plans with the indexes that exist.
func (s *Store) loadPayloadIndexes(ctx context.Context) error {
	valid, _, err := listPayloadIndexes(ctx, s.pool)
	if err != nil {
		return err
	}
	var paths []string
	for _, name := range valid {
		paths = append(paths, payloadIndexPath(name))
	}
	s.imu.Lock()
	s.payloadIndexes = paths
	s.imu.Unlock()
	return nil
}

// IndexPayload makes the payload paths (dotted, such as "decision_id" or
// "args.path") indexed: an expression index on each, created if missing, so
// that equality filters on them are index lookups instead of scans. Indexes
// this created earlier for paths no longer listed are dropped: an index
// costs every append. Indexes are built CONCURRENTLY, so the other instances
// keep appending while a large log is indexed; instances starting together
// take turns under an advisory lock.
func (s *Store) IndexPayload(ctx context.Context, paths []string) error {
	if s.isClosed() {
		return store.ErrClosed
	}
	want := map[string]string{} // index name → path
	for _, path := range paths {
		segs := strings.Split(path, ".")
		if len(segs) > store.MaxPathDepth {
			return fmt.Errorf("postgres: index payload %q: deeper than %d keys", path, store.MaxPathDepth)
		}
		for _, seg := range segs {
			if err := store.CheckPathSegment(seg); err != nil {
				return fmt.Errorf("postgres: index payload %q: %w", path, err)
			}
		}
		name := payloadIndexName(path)
		if len(name) > 63 {
			return fmt.Errorf("postgres: index payload %q: the path is too long to name its index (at most %d characters)", path, 63-len(payloadIndexPrefix))
		}
		want[name] = path
	}
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return classify(fmt.Errorf("postgres: index payload: %w", err))
	}
	defer c.Release()
	// A session lock: CREATE INDEX CONCURRENTLY cannot run inside a
	// transaction, so a transaction-level lock cannot cover it.
	if _, err := c.Exec(ctx, "SELECT pg_advisory_lock($1)", s.lockKey+2); err != nil {
		return classify(fmt.Errorf("postgres: index payload: lock: %w", err))
	}
	defer c.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", s.lockKey+2)
	valid, invalid, err := listPayloadIndexes(ctx, c)
	if err != nil {
		return err
	}
	for _, name := range append(invalid, valid...) {
		if _, keep := want[name]; keep && !slices.Contains(invalid, name) {
			continue
		}
		if _, err := c.Exec(ctx, `DROP INDEX CONCURRENTLY IF EXISTS `+pgx.Identifier{name}.Sanitize()); err != nil {
			return classify(fmt.Errorf("postgres: drop payload index %s: %w", name, err))
		}
	}
	var indexed []string
	created := false
	for name, path := range want {
		if !slices.Contains(valid, name) {
			s.log.Info("creating payload index", "path", path)
			if _, err := c.Exec(ctx, `CREATE INDEX CONCURRENTLY IF NOT EXISTS `+pgx.Identifier{name}.Sanitize()+
				` ON events (`+payloadExpr(strings.Split(path, "."))+`)`); err != nil {
				return classify(fmt.Errorf("postgres: create payload index on %s: %w", path, err))
			}
			created = true
		}
		indexed = append(indexed, path)
	}
	if created {
		// An expression's statistics come only from ANALYZE: until
		// autovacuum's next one the planner guesses how many rows a
		// key selects, and may scan the table instead of the index.
		// It reads a sample of the table: seconds, whatever its size.
		if _, err := c.Exec(ctx, "ANALYZE events"); err != nil {
			return classify(fmt.Errorf("postgres: analyze after creating payload indexes: %w", err))
		}
	}
	slices.Sort(indexed)
	s.imu.Lock()
	s.payloadIndexes = indexed
	s.imu.Unlock()
	return nil
}

// fillTimes sets ts for the rows that lack it: rows written before the
// column existed, or by an older binary. Rows whose timestamp does not parse
// stay NULL (and are read again at the next start: they are few, and found
// through the partial index events_ts_missing).
func fillTimes(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	var after int64
	filled := 0
	for {
		rows, err := pool.Query(ctx, "SELECT event_id, timestamp FROM events WHERE ts IS NULL AND event_id > $1 ORDER BY event_id LIMIT 4096", after)
		if err != nil {
			return classify(fmt.Errorf("postgres: fill event times: %w", err))
		}
		var ids, tss []int64
		n := 0
		for rows.Next() {
			var id int64
			var ts string
			if err := rows.Scan(&id, &ts); err != nil {
				rows.Close()
				return classify(fmt.Errorf("postgres: fill event times: %w", err))
			}
			n++
			after = id
			if t, ok := store.TimeOf(ts); ok {
				ids, tss = append(ids, id), append(tss, t)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return classify(fmt.Errorf("postgres: fill event times: %w", err))
		}
		if len(ids) > 0 {
			if _, err := pool.Exec(ctx, "UPDATE events SET ts = u.ts FROM unnest($1::bigint[], $2::bigint[]) AS u(id, ts) WHERE event_id = u.id", ids, tss); err != nil {
				return classify(fmt.Errorf("postgres: fill event times: %w", err))
			}
			filled += len(ids)
		}
		if n < 4096 {
			if filled > 0 {
				log.Info("event times filled in", "events", filled)
			}
			return nil
		}
	}
}
