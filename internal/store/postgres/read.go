package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"
)

// scanPage bounds the rows one statement returns, so that a long export
// never holds one snapshot (and with it the vacuum horizon) open.
const scanPage = 4096

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// readHashes reads the rows holding the wanted hashes, one query for all.
func readHashes(ctx context.Context, q querier, indexes []int64) ([]tlog.Hash, error) {
	ids := make([]int64, 0, len(indexes))
	seen := make(map[int64][]byte, len(indexes))
	for _, idx := range indexes {
		id, _ := store.RecordOfHash(idx)
		if _, ok := seen[id]; !ok {
			seen[id] = nil
			ids = append(ids, id)
		}
	}
	rows, err := q.Query(ctx, "SELECT event_id, tree FROM events WHERE event_id = ANY($1)", ids)
	if err != nil {
		return nil, classify(fmt.Errorf("postgres: read tree hashes: %w", err))
	}
	for rows.Next() {
		var id int64
		var tree []byte
		if err := rows.Scan(&id, &tree); err != nil {
			rows.Close()
			return nil, classify(fmt.Errorf("postgres: read tree hashes: %w", err))
		}
		seen[id] = tree
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("postgres: read tree hashes: %w", err))
	}
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		id, pos := store.RecordOfHash(idx)
		tree := seen[id]
		if len(tree) < 32*(pos+1) {
			return nil, fmt.Errorf("postgres: stored hash %d (event %d, level %d): %w", idx, id, pos, store.ErrNotFound)
		}
		copy(out[i][:], tree[32*pos:])
	}
	return out, nil
}

// ReadHashes implements store.Store.
func (s *Store) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	if s.isClosed() {
		return nil, store.ErrClosed
	}
	return readHashes(ctx, s.pool, indexes)
}

const eventColumns = "event_id, timestamp, kind, source, payload, prev_hash, hash"

// decoder turns rows of eventColumns into events from their wire bytes,
// sharing one string per kind and source and carving payloads from blocks.
type decoder struct {
	names map[string]string
	block []byte
}

func (d *decoder) name(b []byte) string {
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.names) < 4096 {
		if d.names == nil {
			d.names = make(map[string]string)
		}
		d.names[s] = s
	}
	return s
}

func (d *decoder) payload(b []byte) []byte {
	const block = 64 << 10
	if len(b) > block/8 {
		return append([]byte{}, b...)
	}
	if len(b) > cap(d.block)-len(d.block) {
		d.block = make([]byte, 0, block)
	}
	n := len(d.block)
	d.block = append(d.block, b...)
	return d.block[n : n+len(b) : n+len(b)]
}

func (d *decoder) decode(rows pgx.Rows, e *event.Event) error {
	v := rows.RawValues()
	fd := rows.FieldDescriptions()
	if len(v) != 7 {
		return fmt.Errorf("%d columns", len(v))
	}
	if fd[0].Format == pgx.BinaryFormatCode {
		if len(v[0]) != 8 {
			return errors.New("event_id is not 8 bytes")
		}
		e.ID = int64(binary.BigEndian.Uint64(v[0]))
	} else {
		id, err := strconv.ParseInt(string(v[0]), 10, 64)
		if err != nil {
			return err
		}
		e.ID = id
	}
	for i := 2; i < 7; i++ {
		if i != 4 && fd[i].Format != pgx.BinaryFormatCode {
			// Text-format bytea is hex: let pgx decode it.
			return d.slow(rows, e)
		}
	}
	e.Timestamp = string(v[1])
	e.Kind = d.name(v[2])
	e.Source = d.name(v[3])
	e.Payload = d.payload(v[4])
	if err := setHash(&e.PrevHash, v[5]); err != nil {
		return fmt.Errorf("event %d prev_hash: %w", e.ID, err)
	}
	if err := setHash(&e.Hash, v[6]); err != nil {
		return fmt.Errorf("event %d hash: %w", e.ID, err)
	}
	return nil
}

func (d *decoder) slow(rows pgx.Rows, e *event.Event) error {
	var kind, source, prev, hash []byte
	var payload string
	if err := rows.Scan(&e.ID, &e.Timestamp, &kind, &source, &payload, &prev, &hash); err != nil {
		return err
	}
	e.Kind, e.Source, e.Payload = d.name(kind), d.name(source), []byte(payload)
	if err := setHash(&e.PrevHash, prev); err != nil {
		return fmt.Errorf("event %d prev_hash: %w", e.ID, err)
	}
	if err := setHash(&e.Hash, hash); err != nil {
		return fmt.Errorf("event %d hash: %w", e.ID, err)
	}
	return nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id int64) (event.Event, error) {
	return s.get(ctx, s.pool, id)
}

func (s *Store) get(ctx context.Context, q querier, id int64) (event.Event, error) {
	var e event.Event
	if s.isClosed() {
		return e, store.ErrClosed
	}
	rows, err := q.Query(ctx, "SELECT "+eventColumns+" FROM events WHERE event_id = $1", id)
	if err != nil {
		return e, classify(fmt.Errorf("postgres: get %d: %w", id, err))
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return e, classify(fmt.Errorf("postgres: get %d: %w", id, err))
		}
		return e, store.ErrNotFound
	}
	var d decoder
	if err := d.decode(rows, &e); err != nil {
		return e, classify(fmt.Errorf("postgres: get %d: %w", id, err))
	}
	return e, nil
}

// Latest implements store.Store: the newest limit matches, oldest first.
func (s *Store) Latest(ctx context.Context, f store.Filter, limit int) ([]event.Event, error) {
	return latest(ctx, s, f, limit)
}

func latest(ctx context.Context, st interface {
	Scan(ctx context.Context, f store.Filter, limit int, fn func(*event.Event) error) error
}, f store.Filter, limit int) ([]event.Event, error) {
	f.Desc = true
	out := make([]event.Event, 0, min(limit, 1024))
	err := st.Scan(ctx, f, limit, func(e *event.Event) error {
		out = append(out, *e) // Payload is fresh per event
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(out)
	return out, nil
}

// Scan implements store.Store. It reads in pages keyed by event id, each a
// short statement of its own.
func (s *Store) Scan(ctx context.Context, f store.Filter, limit int, fn func(*event.Event) error) error {
	return s.scan(ctx, s.pool, f, limit, fn)
}

func (s *Store) scan(ctx context.Context, q querier, f store.Filter, limit int, fn func(*event.Event) error) error {
	if s.isClosed() {
		return store.ErrClosed
	}
	var e event.Event
	var d decoder
	order := " ORDER BY event_id"
	if f.Desc {
		order = " ORDER BY event_id DESC"
	}
	if ok, err := s.narrowToTime(ctx, &f); !ok || err != nil {
		return err
	}
	seen, examined := 0, 0
	var last int64
	for {
		if limit > 0 && seen >= limit {
			return nil
		}
		p := s.plan(f)
		page := scanPage
		if limit > 0 && !p.recheck {
			page = min(page, limit-seen)
		}
		if p.capped && f.MaxScan > 0 {
			if examined >= f.MaxScan {
				return &store.ScanLimitError{Examined: examined, Last: last}
			}
			page = min(page, f.MaxScan-examined)
		}
		args := append(p.args, page)
		rows, err := q.Query(ctx, "SELECT "+eventColumns+" FROM events"+p.where+order+" LIMIT $"+strconv.Itoa(len(args)), args...)
		if err != nil {
			return classify(fmt.Errorf("postgres: scan: %w", err))
		}
		n := 0
		for rows.Next() {
			if err := d.decode(rows, &e); err != nil {
				rows.Close()
				return fmt.Errorf("postgres: scan: %w", err)
			}
			n++
			last = e.ID
			if p.recheck && !f.Matches(&e) {
				continue
			}
			if err := fn(&e); err != nil {
				rows.Close()
				return err
			}
			seen++
			if limit > 0 && seen >= limit {
				break
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return classify(fmt.Errorf("postgres: scan: %w", err))
		}
		examined += n
		if n < page || (limit > 0 && seen >= limit) {
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
