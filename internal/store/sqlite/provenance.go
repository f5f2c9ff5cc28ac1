package sqlite

import (
	"context"
	"database/sql"
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

// PutProvenance implements store.Tx.
func (v *txView) PutProvenance(r *provenance.Record) error {
	var keyID any
	var sigs []byte
	if r.KeyID != "" {
		keyID = r.KeyID
		sigs = make([]byte, 0, 64*len(r.Sigs))
		for _, s := range r.Sigs {
			sigs = append(sigs, s...)
		}
	}
	ins, err := v.prepare(&v.provIns, "INSERT INTO provenance ("+provenanceColumns+") VALUES (?,?,?,?,?,?,?,?,?)")
	if err == nil {
		_, err = ins.ExecContext(v.ctx, r.FirstID, r.Count, r.AppendedBy, r.ReceivedAt, []byte(r.Flags), keyID, sigs, r.LastHash[:], r.Chain[:])
	}
	if err != nil {
		return fmt.Errorf("sqlite: put provenance of event %d: %w", r.FirstID, err)
	}
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
