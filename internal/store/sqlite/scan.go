package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
)

// scanColumns packs an event row into three result columns: the id, the
// byte lengths of timestamp, kind and source (21 bits each), and one blob
// prev_hash ‖ hash ‖ timestamp ‖ kind ‖ source ‖ payload. The driver takes a
// lock and copies into a new Go allocation for every column of every row,
// which made seven columns the largest cost of a scan; three cut it by more
// than half. A row that does not fit the packing (no API call can store
// one: a field of 2 MiB or more, a hash not 32 bytes) gets -1 and is read on
// its own with eventColumns, which reports a damaged hash.
const scanColumns = `event_id,
	CASE WHEN octet_length(timestamp) | octet_length(kind) | octet_length(source) < 2097152
		AND octet_length(prev_hash) = 32 AND octet_length(hash) = 32
	THEN octet_length(timestamp) | (octet_length(kind) << 21) | (octet_length(source) << 42)
	ELSE -1 END,
	CAST(concat(prev_hash, hash, timestamp, kind, source, payload) AS BLOB)`

// packedField masks one 21-bit length out of the packed lengths column.
const packedField = 1<<21 - 1

// scanner decodes packed rows. Kinds and sources repeat across a log, so it
// keeps one string of each instead of allocating one per row; payloads are
// carved from shared blocks, each capped so that appending to one cannot
// write into the next.
type scanner struct {
	names map[string]string
	block []byte
}

const (
	maxInterned  = 4096
	payloadBlock = 64 << 10
)

func (sc *scanner) name(b []byte) string {
	if s, ok := sc.names[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	if len(sc.names) < maxInterned {
		if sc.names == nil {
			sc.names = make(map[string]string)
		}
		sc.names[s] = s
	}
	return s
}

func (sc *scanner) payload(b []byte) []byte {
	if len(b) > payloadBlock/8 {
		return append([]byte{}, b...)
	}
	if len(b) > cap(sc.block)-len(sc.block) {
		sc.block = make([]byte, 0, payloadBlock)
	}
	n := len(sc.block)
	sc.block = append(sc.block, b...)
	return sc.block[n : n+len(b) : n+len(b)]
}

// decode fills e from one packed row; ok is false if the row did not fit
// the packing.
func (sc *scanner) decode(rows *sql.Rows, e *event.Event) (ok bool, err error) {
	var lens int64
	var blob sql.RawBytes
	if err := rows.Scan(&e.ID, &lens, &blob); err != nil {
		return false, err
	}
	if lens < 0 {
		return false, nil
	}
	lt, lk, ls := int(lens&packedField), int(lens>>21&packedField), int(lens>>42&packedField)
	if len(blob) < 64+lt+lk+ls {
		return false, fmt.Errorf("event %d: packed row of %d bytes is too short", e.ID, len(blob))
	}
	copy(e.PrevHash[:], blob[:32])
	copy(e.Hash[:], blob[32:64])
	b := blob[64:]
	e.Timestamp = string(b[:lt])
	e.Kind = sc.name(b[lt : lt+lk])
	e.Source = sc.name(b[lt+lk : lt+lk+ls])
	e.Payload = sc.payload(b[lt+lk+ls:])
	return true, nil
}

// Scan implements store.Store. It reads in pages keyed by event id so that
// no statement stays open for the whole scan.
func (s *Store) Scan(ctx context.Context, f store.Filter, limit int, fn func(*event.Event) error) error {
	var e event.Event
	var sc scanner
	seen := 0
	for {
		page := scanPage
		if limit > 0 {
			page = min(page, limit-seen)
		}
		if page <= 0 {
			return nil
		}
		w, args := where(f)
		rows, err := s.r.QueryContext(ctx, "SELECT "+scanColumns+" FROM events"+w+" ORDER BY event_id LIMIT ?", append(args, page)...)
		if err != nil {
			return fmt.Errorf("sqlite: scan: %w", err)
		}
		n, odd := 0, int64(0)
		for rows.Next() {
			ok, err := sc.decode(rows, &e)
			if err != nil {
				rows.Close()
				return fmt.Errorf("sqlite: scan: %w", err)
			}
			if !ok {
				odd = e.ID
				break
			}
			n++
			if err := fn(&e); err != nil {
				rows.Close()
				return err
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("sqlite: scan: %w", err)
		}
		if odd != 0 {
			// Read the row that does not pack on its own and go on
			// after it with a new page.
			if e, err = s.Get(ctx, odd); err != nil {
				return fmt.Errorf("sqlite: scan: %w", err)
			}
			n++
			if err := fn(&e); err != nil {
				return err
			}
		}
		seen += n
		if n < page && odd == 0 {
			return nil
		}
		f.After = e.ID
	}
}
