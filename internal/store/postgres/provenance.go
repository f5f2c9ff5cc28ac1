package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/provenance"
	"github.com/jackc/pgx/v5"
)

// provenanceSchema is migration 3: producer keys on tokens, one provenance
// record per append request, and every producer signature once, so that a
// replayed signed request is found by one index probe.
const provenanceSchema = `-- 3: producer keys and provenance.
ALTER TABLE tokens ADD COLUMN signing_key text;
CREATE TABLE provenance (
	first_id    bigint PRIMARY KEY,
	count       bigint NOT NULL,
	appended_by text   NOT NULL,
	received_at text   NOT NULL,
	flags       bytea  NOT NULL,
	key_id      text,
	sigs        bytea,
	last_hash   bytea  NOT NULL,
	chain       bytea  NOT NULL
);
CREATE TABLE signatures (
	sig      bytea  PRIMARY KEY,
	event_id bigint NOT NULL
);`

const provenanceColumns = "first_id, count, appended_by, received_at, flags, key_id, sigs, last_hash, chain"

var _ store.Provenances = (*Store)(nil)

// PutProvenance implements store.Tx. The record is written with the
// group's events, in the pipeline that commits them (see
// queueProvenance), not with a round trip of its own under the lock; the
// ledger keeps the signatures a group writes in memory for replays within
// it, so nothing in the transaction reads them before.
func (v *txView) PutProvenance(r *provenance.Record) error {
	v.prov = append(v.prov, *r)
	return nil
}

// queueProvenance queues the group's provenance records and signatures on
// b, one statement for each table; with g, only if the group's last event
// was inserted before them.
func queueProvenance(b *pgx.Batch, recs []provenance.Record, g *headGuard) {
	if len(recs) == 0 {
		return
	}
	var (
		first, count               = make([]int64, len(recs)), make([]int64, len(recs))
		by, at                     = make([]string, len(recs)), make([]string, len(recs))
		flags, sigs, lasts, chains = make([][]byte, len(recs)), make([][]byte, len(recs)), make([][]byte, len(recs)), make([][]byte, len(recs))
		keyIDs                     = make([]*string, len(recs))
		sigBytes                   [][]byte
		sigIDs                     []int64
	)
	for i := range recs {
		r := &recs[i]
		first[i], count[i], by[i], at[i] = r.FirstID, r.Count, r.AppendedBy, r.ReceivedAt
		flags[i], lasts[i], chains[i] = []byte(r.Flags), r.LastHash[:], r.Chain[:]
		if r.KeyID != "" {
			keyIDs[i] = &r.KeyID
			var all []byte
			for j, sig := range r.Sigs {
				all = append(all, sig...)
				sigBytes = append(sigBytes, sig)
				sigIDs = append(sigIDs, r.FirstID+int64(j))
			}
			sigs[i] = all
		}
	}
	insertProv := "INSERT INTO provenance (" + provenanceColumns + ") SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::bytea[], $8::bytea[], $9::bytea[])"
	insertSigs := "INSERT INTO signatures (sig, event_id) SELECT * FROM unnest($1::bytea[], $2::bigint[])"
	if g == nil {
		b.Queue(insertProv, first, count, by, at, flags, keyIDs, sigs, lasts, chains)
		if len(sigBytes) > 0 {
			b.Queue(insertSigs, sigBytes, sigIDs)
		}
		return
	}
	const inserted = " WHERE EXISTS (SELECT FROM events WHERE event_id = $%d AND hash = $%d)"
	b.Queue(insertProv+fmt.Sprintf(inserted, 10, 11), first, count, by, at, flags, keyIDs, sigs, lasts, chains, g.last.ID, g.last.Hash[:])
	if len(sigBytes) > 0 {
		b.Queue(insertSigs+fmt.Sprintf(inserted, 3, 4), sigBytes, sigIDs, g.last.ID, g.last.Hash[:])
	}
}

// SignatureOwner implements store.Tx. Appends hold the log's lock, so it
// sees every signature committed before.
func (v *txView) SignatureOwner(sigs [][]byte) (int64, error) {
	if v.tx == nil {
		return 0, errAhead
	}
	var id *int64
	if err := v.tx.QueryRow(v.ctx, "SELECT min(event_id) FROM signatures WHERE sig = ANY($1::bytea[])", sigs).Scan(&id); err != nil {
		return 0, classify(fmt.Errorf("postgres: look up signatures: %w", err))
	}
	if id == nil {
		return 0, nil
	}
	return *id, nil
}

// ChainHead implements store.Tx: read with the head, in the append's first
// pipeline.
func (v *txView) ChainHead() (event.Hash, error) {
	if v.tx == nil {
		return event.Hash{}, errAhead
	}
	return v.chain, nil
}

// chainQuery reads the provenance chain's value at the head.
const chainQuery = "SELECT chain FROM provenance ORDER BY first_id DESC LIMIT 1"

// readChain reads chainQuery's row: the zero hash for no record.
func readChain(r pgx.Row) (event.Hash, error) {
	var h event.Hash
	var b []byte
	err := r.Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, nil
	}
	if err == nil && len(b) != len(h) {
		err = fmt.Errorf("chain of %d bytes", len(b))
	}
	if err != nil {
		return h, classify(fmt.Errorf("postgres: provenance chain head: %w", err))
	}
	copy(h[:], b)
	return h, nil
}

func scanProvenance(r pgx.Row, p *provenance.Record) error {
	var keyID *string
	var flags, sigs, last, chain []byte
	if err := r.Scan(&p.FirstID, &p.Count, &p.AppendedBy, &p.ReceivedAt, &flags, &keyID, &sigs, &last, &chain); err != nil {
		return err
	}
	p.Flags = append(provenance.Flags(nil), flags...)
	p.KeyID = ""
	if keyID != nil {
		p.KeyID = *keyID
	}
	p.Sigs = nil
	if len(sigs)%64 != 0 || len(last) != 32 || len(chain) != 32 {
		return fmt.Errorf("provenance of event %d: malformed row", p.FirstID)
	}
	for i := 0; i < len(sigs); i += 64 {
		p.Sigs = append(p.Sigs, append([]byte(nil), sigs[i:i+64]...))
	}
	copy(p.LastHash[:], last)
	copy(p.Chain[:], chain)
	return nil
}

// Provenance implements store.Provenances.
func (s *Store) Provenance(ctx context.Context, id int64) (provenance.Record, error) {
	return store.ProvenanceHolding(ctx, s.LastProvenance, id)
}

// LastProvenance implements store.Provenances.
func (s *Store) LastProvenance(ctx context.Context, id int64) (provenance.Record, error) {
	var p provenance.Record
	if s.isClosed() {
		return p, store.ErrClosed
	}
	err := scanProvenance(s.pool.QueryRow(ctx, "SELECT "+provenanceColumns+" FROM provenance WHERE first_id <= $1 ORDER BY first_id DESC LIMIT 1", id), &p)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, store.ErrNotFound
	}
	if err != nil {
		return p, classify(fmt.Errorf("postgres: provenance of event %d: %w", id, err))
	}
	return p, nil
}

// provenancePage bounds the rows of one statement of ScanProvenance.
const provenancePage = 4096

// ScanProvenance implements store.Provenances, a page per statement.
func (s *Store) ScanProvenance(ctx context.Context, after, until int64, fn func(*provenance.Record) error) error {
	var p provenance.Record
	for {
		if s.isClosed() {
			return store.ErrClosed
		}
		bound := until
		if bound <= 0 {
			bound = 1<<63 - 1
		}
		rows, err := s.pool.Query(ctx, "SELECT "+provenanceColumns+" FROM provenance WHERE first_id > $1 AND first_id <= $2 ORDER BY first_id LIMIT $3", after, bound, provenancePage)
		if err != nil {
			return classify(fmt.Errorf("postgres: scan provenance: %w", err))
		}
		var page []provenance.Record
		for rows.Next() {
			if err := scanProvenance(rows, &p); err != nil {
				rows.Close()
				return classify(fmt.Errorf("postgres: scan provenance: %w", err))
			}
			page = append(page, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return classify(fmt.Errorf("postgres: scan provenance: %w", err))
		}
		// The callback runs after the statement, so a slow reader holds
		// no connection.
		for i := range page {
			if err := fn(&page[i]); err != nil {
				return err
			}
		}
		if len(page) < provenancePage {
			return nil
		}
		after = page[len(page)-1].FirstID
	}
}
