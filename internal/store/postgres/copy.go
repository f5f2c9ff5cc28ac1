package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/provenance"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// defaultCopyMin is the smallest group whose events are written by binary COPY
// rather than by the INSERT of arrays queueEvents queues. pgx encodes
// those arrays element by element through reflection, in a parameter
// buffer it grows again by doubling for every statement; for a group of
// 1,000 that was a quarter of the process's CPU, on the committer's path,
// which the lock serializes. COPY costs round trips of its own (it cannot
// be pipelined). Appending groups one after the other on a lone writer,
// COPY was as fast as the INSERT for 16 events, about as fast for 64 (the
// runs were noisy) and faster from 128 on.
const defaultCopyMin = 128

var copyEventsSQL = "COPY events (" + strings.Join(eventColumnNames, ", ") + ") FROM STDIN (FORMAT binary)"

// encodeEvents returns recs as the data of a binary COPY of
// eventColumnNames, in one pass into a buffer sized up front. The columns
// and their values are those of queueEvents' INSERT.
func encodeEvents(recs []store.Record) []byte {
	const header = "PGCOPY\n\xff\r\n\x00"
	size := len(header) + 8 + 2
	for i := range recs {
		r := &recs[i]
		size += 2 + 4*len(eventColumnNames) + 8 + len(r.Timestamp) + len(r.Kind) + len(r.Source) + len(r.Payload) + 64 + 32*len(r.Tree) + 8
	}
	buf := make([]byte, 0, size)
	buf = append(buf, header...)
	buf = binary.BigEndian.AppendUint32(buf, 0) // flags
	buf = binary.BigEndian.AppendUint32(buf, 0) // header extension
	for i := range recs {
		r := &recs[i]
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(eventColumnNames)))
		buf = appendBigint(buf, r.ID)
		buf = appendField(buf, r.Timestamp)
		buf = appendField(buf, r.Kind)
		buf = appendField(buf, r.Source)
		buf = appendField(buf, r.Payload)
		buf = appendField(buf, r.PrevHash[:])
		buf = appendField(buf, r.Hash[:])
		buf = binary.BigEndian.AppendUint32(buf, uint32(32*len(r.Tree)))
		for _, h := range r.Tree {
			buf = append(buf, h[:]...)
		}
		if t, ok := store.TimeOf(r.Timestamp); ok {
			buf = appendBigint(buf, t)
		} else {
			// NULL: a timestamp that does not parse is in no time range.
			buf = binary.BigEndian.AppendUint32(buf, 0xffffffff)
		}
	}
	return binary.BigEndian.AppendUint16(buf, 0xffff)
}

func appendBigint(buf []byte, v int64) []byte {
	buf = binary.BigEndian.AppendUint32(buf, 8)
	return binary.BigEndian.AppendUint64(buf, uint64(v))
}

// appendField appends a text or bytea value: in the binary format, both
// are their bytes.
func appendField[T string | []byte](buf []byte, v T) []byte {
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(v)))
	return append(buf, v...)
}

// copyEvents writes data, the encoding of n events (encodeEvents), in c's
// transaction.
func copyEvents(ctx context.Context, c *pgxpool.Conn, data []byte, n int) error {
	tag, err := c.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(data), copyEventsSQL)
	if err == nil && tag.RowsAffected() != int64(n) {
		err = fmt.Errorf("copied %d events of %d", tag.RowsAffected(), n)
	}
	if err != nil {
		return classify(fmt.Errorf("postgres: copy events: %w", err))
	}
	return nil
}

// rollback ends c's transaction; a session in an unknown state is closed,
// never reused.
func rollback(c *pgxpool.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.Exec(ctx, "ROLLBACK")
	if err != nil {
		c.Conn().Close(ctx)
	}
	return err
}

// isHeadQuery is true when the head is exactly $1 with hash $2.
const isHeadQuery = "SELECT EXISTS (SELECT FROM events WHERE event_id = $1 AND hash = $2) AND NOT EXISTS (SELECT FROM events WHERE event_id = $1 + 1)"

// appendAheadCopy is appendAhead for a group of at least s.copyMin events,
// written by COPY. COPY cannot be pipelined, so the transaction is
// explicit and its statements cannot be conditioned on the events'
// insert: its first pipeline takes the lock and checks, under it, that the
// head is base; only then are the events copied and the provenance
// records, the notification and COMMIT sent. The lock is held for three
// round trips more than in appendAhead, which only matters while another
// instance waits for it, and then the head is rarely assumed.
func (s *Store) appendAheadCopy(ctx context.Context, c *pgxpool.Conn, base, last store.Head, recs []store.Record, prov []provenance.Record) (_ []store.Record, done bool, err error) {
	data := encodeEvents(recs) // before the lock
	open := false
	defer func() {
		if open {
			if rerr := rollback(c); rerr != nil && err == nil && !done {
				// The caller cannot go on with the connection.
				done, err = true, classify(fmt.Errorf("postgres: rollback: %w", rerr))
			}
		}
	}()
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SELECT pg_advisory_xact_lock($1)", s.lockKey)
	b.Queue(isHeadQuery, base.ID, base.Hash[:])
	br := c.SendBatch(ctx, b)
	open = true
	_, err = br.Exec()
	if err == nil {
		_, err = br.Exec()
	}
	var isHead bool
	if err == nil {
		err = br.QueryRow().Scan(&isHead)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, true, classify(fmt.Errorf("postgres: begin: %w", err))
	}
	if !isHead {
		// Another instance moved the head, or it is behind base (see
		// appendAhead): nothing is written.
		s.foreign.Store(time.Now().UnixNano())
		return nil, false, nil
	}
	if err := copyEvents(ctx, c, data, len(recs)); err != nil {
		return nil, true, err
	}
	b = &pgx.Batch{}
	queueProvenance(b, prov, nil)
	b.Queue("SELECT pg_notify($1, $2)", s.channel, formatHead(last))
	b.Queue("COMMIT")
	if err := c.SendBatch(ctx, b).Close(); err != nil {
		return nil, true, classify(fmt.Errorf("postgres: commit: %w", err))
	}
	open = false
	s.leftAhead(&last)
	return recs, true, nil
}
