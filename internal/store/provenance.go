package store

import (
	"context"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/provenance"
)

// Provenances reads the provenance records the ledger writes with the
// events (package provenance). Records are written only by
// Tx.PutProvenance, in the transaction of their events.
type Provenances interface {
	// Provenance returns the record holding event id, or ErrNotFound
	// (no such event, or one appended before provenance was recorded,
	// or imported).
	Provenance(ctx context.Context, id int64) (provenance.Record, error)
	// ScanProvenance calls fn for each record whose first event is in
	// (after, until] (until 0: no bound), in id order. The record is
	// reused between calls.
	ScanProvenance(ctx context.Context, after, until int64, fn func(*provenance.Record) error) error
	// LastProvenance returns the last record whose first event is at or
	// before id, or ErrNotFound.
	LastProvenance(ctx context.Context, id int64) (provenance.Record, error)
}

// ProvenanceTx is the part of Tx that writes provenance.
type ProvenanceTx interface {
	// PutProvenance stores r, and each of its signatures for
	// SignatureOwner, with the transaction's events.
	PutProvenance(r *provenance.Record) error
	// SignatureOwner returns the event that carries one of sigs, as
	// committed before this transaction, or 0 when none does.
	SignatureOwner(sigs [][]byte) (int64, error)
	// ChainHead returns the Chain of the last record stored, zero when
	// there is none.
	ChainHead() (event.Hash, error)
}

// ProvenanceHolding implements Provenances.Provenance over a store's
// LastProvenance: the last record starting at or before id holds id only if
// it reaches that far; else no record does.
func ProvenanceHolding(ctx context.Context, last func(context.Context, int64) (provenance.Record, error), id int64) (provenance.Record, error) {
	p, err := last(ctx, id)
	if err == nil && p.LastID() < id {
		return provenance.Record{}, ErrNotFound
	}
	return p, err
}
