package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/provenance"
)

// provenanceSchema is migration 4. Signatures are stored twice: in their
// record (what readers and verifiers get) and in signatures, whose primary
// key finds a replayed one.
const provenanceSchema = `ALTER TABLE tokens ADD COLUMN signing_key TEXT;
	CREATE TABLE provenance (
		first_id    INTEGER PRIMARY KEY,
		count       INTEGER NOT NULL,
		appended_by TEXT NOT NULL,
		received_at TEXT NOT NULL,
		flags       BLOB NOT NULL,
		key_id      TEXT,
		sigs        BLOB,
		last_hash   BLOB NOT NULL,
		chain       BLOB NOT NULL
	);
	CREATE TABLE signatures (
		sig      BLOB PRIMARY KEY,
		event_id INTEGER NOT NULL
	) WITHOUT ROWID;`

const provenanceColumns = "first_id, count, appended_by, received_at, flags, key_id, sigs, last_hash, chain"

var _ store.Provenances = (*Store)(nil)

// provenanceInsert writes a group's records in one statement, as rows.go
// writes its events. OR ROLLBACK, as there: a record that fails to go in
// fails the append, and no other conflict clause spares a multi-row
// statement its statement journal.
const provenanceInsert = "INSERT OR ROLLBACK INTO provenance (" + provenanceColumns + ") VALUES "

const provenanceRow = "(?,?,?,?,?,?,?,?,?)"

// flushProvenance writes the records PutProvenance gathered.
func (v *txView) flushProvenance() error {
	if len(v.provs) == 0 {
		return nil
	}
	err := withWriter(v.conn, func(w *rowWriter) error { return w.insertProvenance(v.ctx, v.provs) })
	v.provs = v.provs[:0]
	return err
}

// insertProvenance writes recs inside whatever transaction the connection
// has open, up to 64 to a statement like insert.
func (w *rowWriter) insertProvenance(ctx context.Context, recs []provenance.Record) error {
	defer clear(w.args)
	for len(recs) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := insertSize(len(recs))
		st, err := w.prepared(provenanceInsert + provenanceRow + strings.Repeat(","+provenanceRow, n-1))
		if err != nil {
			return fmt.Errorf("sqlite: prepare provenance insert: %w", err)
		}
		ex, ok := st.(driver.StmtExecContext)
		if !ok {
			return fmt.Errorf("sqlite: statement %T cannot execute with a context", st)
		}
		w.args = w.args[:0]
		for i := range recs[:n] {
			r := &recs[i]
			var keyID driver.Value // NULL when unsigned
			var sigs []byte
			if r.KeyID != "" {
				keyID = r.KeyID
				sigs = make([]byte, 0, 64*len(r.Sigs))
				for _, s := range r.Sigs {
					sigs = append(sigs, s...)
				}
			}
			for _, v := range [...]driver.Value{r.FirstID, r.Count, r.AppendedBy, r.ReceivedAt, []byte(r.Flags), keyID, sigs, r.LastHash[:], r.Chain[:]} {
				w.args = append(w.args, driver.NamedValue{Ordinal: len(w.args) + 1, Value: v})
			}
		}
		if _, err := ex.ExecContext(context.Background(), w.args); err != nil {
			return fmt.Errorf("sqlite: put provenance of events %d-%d: %w", recs[0].FirstID, recs[n-1].LastID(), err)
		}
		recs = recs[n:]
	}
	return nil
}

// PutProvenance implements store.Tx. The record goes in with the group's
// others in one statement when the transaction commits (or its chain is
// read); its signatures go in at once, for SignatureOwner.
func (v *txView) PutProvenance(r *provenance.Record) error {
	v.provs = append(v.provs, *r)
	if len(r.Sigs) == 0 {
		return nil
	}
	sigIns, err := v.prepare(&v.sigIns, "INSERT INTO signatures (sig, event_id) VALUES (?, ?)")
	if err != nil {
		return err
	}
	for i, s := range r.Sigs {
		if _, err := sigIns.ExecContext(v.ctx, s, r.FirstID+int64(i)); err != nil {
			return fmt.Errorf("sqlite: put signature of event %d: %w", r.FirstID+int64(i), err)
		}
	}
	return nil
}

// SignatureOwner implements store.Tx.
func (v *txView) SignatureOwner(sigs [][]byte) (int64, error) {
	for len(sigs) > 0 {
		n := min(len(sigs), 256)
		args := make([]any, n)
		for i := range args {
			args[i] = sigs[i]
		}
		var got sql.NullInt64
		if err := v.tx.QueryRowContext(v.ctx, "SELECT min(event_id) FROM signatures WHERE sig IN (?"+strings.Repeat(",?", n-1)+")", args...).Scan(&got); err != nil {
			return 0, fmt.Errorf("sqlite: look up signatures: %w", err)
		}
		if got.Valid {
			return got.Int64, nil
		}
		sigs = sigs[n:]
	}
	return 0, nil
}

// ChainHead implements store.Tx.
func (v *txView) ChainHead() (event.Hash, error) {
	var h event.Hash
	if err := v.flushProvenance(); err != nil {
		return h, err
	}
	var b []byte
	err := v.tx.QueryRowContext(v.ctx, "SELECT chain FROM provenance ORDER BY first_id DESC LIMIT 1").Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return h, nil
	}
	if err == nil {
		err = setHash(&h, b)
	}
	if err != nil {
		return h, fmt.Errorf("sqlite: provenance chain head: %w", err)
	}
	return h, nil
}

func scanProvenance(r interface{ Scan(dest ...any) error }, p *provenance.Record) error {
	var keyID sql.NullString
	var flags, sigs, last, chain []byte
	if err := r.Scan(&p.FirstID, &p.Count, &p.AppendedBy, &p.ReceivedAt, &flags, &keyID, &sigs, &last, &chain); err != nil {
		return err
	}
	p.Flags = append(provenance.Flags(nil), flags...)
	p.KeyID = keyID.String
	p.Sigs = nil
	if len(sigs)%64 != 0 {
		return fmt.Errorf("provenance of event %d: signatures of %d bytes", p.FirstID, len(sigs))
	}
	for i := 0; i < len(sigs); i += 64 {
		p.Sigs = append(p.Sigs, append([]byte(nil), sigs[i:i+64]...))
	}
	if err := setHash(&p.LastHash, last); err != nil {
		return fmt.Errorf("provenance of event %d: %w", p.FirstID, err)
	}
	if err := setHash(&p.Chain, chain); err != nil {
		return fmt.Errorf("provenance of event %d: %w", p.FirstID, err)
	}
	return nil
}

// Provenance implements store.Provenances.
func (s *Store) Provenance(ctx context.Context, id int64) (provenance.Record, error) {
	return store.ProvenanceHolding(ctx, s.LastProvenance, id)
}

// LastProvenance implements store.Provenances.
func (s *Store) LastProvenance(ctx context.Context, id int64) (provenance.Record, error) {
	var p provenance.Record
	err := scanProvenance(s.r.QueryRowContext(ctx, "SELECT "+provenanceColumns+" FROM provenance WHERE first_id <= ? ORDER BY first_id DESC LIMIT 1", id), &p)
	if errors.Is(err, sql.ErrNoRows) {
		return p, store.ErrNotFound
	}
	if err != nil {
		return p, fmt.Errorf("sqlite: provenance of event %d: %w", id, err)
	}
	return p, nil
}

// ScanProvenance implements store.Provenances, a page of rows per
// statement like Scan, so that a long walk pins no snapshot.
func (s *Store) ScanProvenance(ctx context.Context, after, until int64, fn func(*provenance.Record) error) error {
	var p provenance.Record
	for {
		q := "SELECT " + provenanceColumns + " FROM provenance WHERE first_id > ? ORDER BY first_id LIMIT ?"
		args := []any{after, scanPage}
		if until > 0 {
			q = "SELECT " + provenanceColumns + " FROM provenance WHERE first_id > ? AND first_id <= ? ORDER BY first_id LIMIT ?"
			args = []any{after, until, scanPage}
		}
		rows, err := s.r.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("sqlite: scan provenance: %w", err)
		}
		n := 0
		for rows.Next() {
			if err := scanProvenance(rows, &p); err != nil {
				rows.Close()
				return fmt.Errorf("sqlite: scan provenance: %w", err)
			}
			n++
			after = p.FirstID
			if err := fn(&p); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sqlite: scan provenance: %w", err)
		}
		if n < scanPage {
			return nil
		}
	}
}
