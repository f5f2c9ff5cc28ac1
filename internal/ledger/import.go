package ledger

import (
	"context"
	"fmt"
	"maps"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

// Importer appends events that already have their ids, timestamps and
// hashes (an existing log being imported) to a store, adding the Merkle tree
// hashes exactly as the sequencer does. It does not check the chain: the
// caller verifies it first, and the store refuses records that do not extend
// its head. Use it only while no ledger runs on the store.
type Importer struct {
	st       store.Store
	edge     map[int64]tlog.Hash
	edgeSize int64
	buf      []store.Record
}

// NewImporter returns an Importer that appends to st.
func NewImporter(st store.Store) *Importer { return &Importer{st: st} }

// Append durably appends events, which must continue the store's head, in
// one transaction. It keeps nothing of events after it returns.
func (im *Importer) Append(ctx context.Context, events []event.Event) error {
	if len(events) == 0 {
		return nil
	}
	_, err := im.st.Append(ctx, func(tx store.Tx) ([]store.Record, error) {
		return im.build(tx, events)
	})
	clear(im.buf) // drop the payloads
	if err != nil {
		im.edge = nil // reloaded from the store on the next call
		return err
	}
	return nil
}

func (im *Importer) build(tx store.Tx, events []event.Event) ([]store.Record, error) {
	head := tx.Head()
	if im.edge == nil || im.edgeSize != head.ID {
		edge, err := loadEdge(tx, head.ID)
		if err != nil {
			return nil, err
		}
		im.edge, im.edgeSize = edge, head.ID
	}
	// A retried transaction starts again from the edge as it was.
	hr := &edgeReader{edge: maps.Clone(im.edge), tx: tx}
	recs := im.buf[:0]
	// Tree hashes of one batch share one backing array.
	tree := make([]tlog.Hash, 0, 2*len(events)+64)
	for i := range events {
		e := &events[i]
		hashes, err := tlog.StoredHashesForRecordHash(e.ID-1, tlog.RecordHash(e.Hash[:]), hr)
		if err != nil {
			return nil, fmt.Errorf("ledger: tree hashes for event %d: %w", e.ID, err)
		}
		base := tlog.StoredHashIndex(0, e.ID-1)
		for j, h := range hashes {
			hr.edge[base+int64(j)] = h
		}
		start := len(tree)
		tree = append(tree, hashes...)
		recs = append(recs, store.Record{Event: *e, Tree: tree[start:len(tree):len(tree)]})
		if len(hr.edge) > 4096 {
			hr.edge = pruneEdge(hr.edge, e.ID)
		}
	}
	im.buf = recs
	last := events[len(events)-1].ID
	im.edge, im.edgeSize = pruneEdge(hr.edge, last), last
	return recs, nil
}
