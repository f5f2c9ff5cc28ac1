package ledger

import (
	"context"
	"errors"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/tlog"
)

// ImportBatch is the number of records Import hands to one write: large
// enough that a write's fixed cost (a transaction) vanishes, small enough
// that the few batches in flight stay a few megabytes.
const ImportBatch = 4096

// ImportOptions tunes Import.
type ImportOptions struct {
	// Write stores a batch of records, which continue those of the
	// previous call, from event 1. It runs in a goroutine of its own, so
	// storing overlaps verifying; the records are not reused before it
	// returns. Nil verifies only.
	Write func(ctx context.Context, recs []store.Record) error
	// Progress, if set, is called from that goroutine with the number of
	// events verified (and written) so far, after every batch.
	Progress func(n int64)
}

// Import walks an encoded log once, from event 1, as verify --file does
// (decoding and re-hashing in parallel, checking the chain in order), and
// turns every event that passes into a store record with the Merkle tree
// hashes the store keeps for it, computed in memory from the tree's right
// edge: an import into an empty store needs no hash read back. Memory is a
// few batches, whatever the size of the log.
//
// A broken chain, or an event that does not decode, is a report with Valid
// false and a nil error: Write has then seen some of the events before the
// break, and the caller must discard what it wrote. The error is one of
// reading the source or of Write.
func Import(ctx context.Context, src verify.RawSource, decode verify.Decoder, opt ImportOptions) (verify.TreeReport, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type batch struct {
		recs []store.Record
		tree []tlog.Hash // backs the records' Tree slices
	}
	const inFlight = 3 // one filling, one waiting, one being written
	free := make(chan *batch, inFlight)
	for range inFlight {
		free <- &batch{recs: make([]store.Record, 0, ImportBatch), tree: make([]tlog.Hash, 0, 2*ImportBatch+64)}
	}
	full := make(chan *batch, 1)
	writeErr := make(chan error, 1)
	go func() {
		var err error
		for b := range full {
			if err == nil && opt.Write != nil {
				if err = opt.Write(ctx, b.recs); err != nil {
					cancel()
				}
			}
			if err == nil && opt.Progress != nil {
				opt.Progress(b.recs[len(b.recs)-1].ID)
			}
			clear(b.recs) // drop the payloads
			b.recs, b.tree = b.recs[:0], b.tree[:0]
			free <- b
		}
		writeErr <- err
	}()

	var t verify.Tree
	cur := <-free
	send := func() error {
		select {
		case full <- cur:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case cur = <-free:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	rep, err := verify.StreamRaw(ctx, src, decode, verify.StreamOptions{Visit: func(e *event.Event) error {
		start := len(cur.tree)
		var err error
		if cur.tree, err = t.AppendStored(cur.tree, e.Hash); err != nil {
			return err
		}
		cur.recs = append(cur.recs, store.Record{Event: *e, Tree: cur.tree[start:len(cur.tree):len(cur.tree)]})
		if len(cur.recs) == ImportBatch {
			return send()
		}
		return nil
	}})
	if len(cur.recs) > 0 && err == nil && rep.Valid {
		full <- cur
	}
	close(full)
	if werr := <-writeErr; werr != nil {
		return verify.TreeReport{Report: rep}, werr
	}
	tr := verify.TreeReport{Report: rep, TreeSize: t.Size(), RootHash: event.Hash(t.Root()).String()}
	var derr *verify.DecodeError
	if errors.As(err, &derr) {
		tr.Fail(derr.At, "%v", derr)
		err = nil
	}
	return tr, err
}
