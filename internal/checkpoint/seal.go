package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/audit-stream/audit-stream/provenance"
	"github.com/audit-stream/audit-stream/verify"
)

// sealKey is the meta key of the provenance seal at a tree size.
func sealKey(size int64) string { return "provenance-seal:" + strconv.FormatInt(size, 10) }

// loadSeal starts the sealed chain from the seal of the latest checkpoint,
// when it has one this key signed; otherwise the first seal checks the
// record chain from its start.
func (c *Checkpointer) loadSeal(ctx context.Context, cp verify.Checkpoint) {
	signed, err := c.st.Meta(ctx, sealKey(cp.Size))
	if err != nil {
		return
	}
	v, err := verify.ParseVerifierKey(c.opt.Key.VerifierKey)
	if err != nil {
		return
	}
	s, err := provenance.OpenSeal(signed, v)
	if err != nil || s.Size != cp.Size || s.Root != cp.Hash {
		return
	}
	c.mu.Lock()
	c.sealed = provenance.ChainFrom(s.Chain, s.Size)
	c.mu.Unlock()
}

// seal signs and stores the provenance seal for cp: the provenance record
// chain's value after the records of cp's events, bound to cp's root.
//
// It does not take the stored chain values on trust: it recomputes the
// chain from the last seal over the records since, so that a record edited
// in the database (with every later chain value recomputed, which needs no
// key) is never sealed. A chain that does not continue from the last seal
// is logged as an ALERT and left unsealed: verifiers then find no seal for
// the new checkpoints, and say so. The records are written in the events'
// own transactions, and a checkpoint's size is the end of a commit, so the
// records of cp's events end exactly at its size.
func (c *Checkpointer) seal(ctx context.Context, cp verify.Checkpoint) error {
	c.mu.Lock()
	chain := c.sealed
	c.mu.Unlock()
	if chain.LastID() > cp.Size {
		chain = provenance.Chain{}
	}
	err := c.st.ScanProvenance(ctx, chain.LastID(), cp.Size, func(r *provenance.Record) error {
		if r.LastID() > cp.Size {
			return fmt.Errorf("%w: the record at %d ends at %d, past the tree size %d", provenance.ErrTampered, r.FirstID, r.LastID(), cp.Size)
		}
		return chain.Add(r)
	})
	if errors.Is(err, provenance.ErrTampered) {
		c.log.Error("ALERT: the provenance records do not continue the chain this log sealed; the checkpoint is signed without a provenance seal",
			"size", cp.Size, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("checkpoint: provenance seal: %w", err)
	}
	s := provenance.Seal{Origin: c.opt.Origin, Size: cp.Size, Root: cp.Hash, Chain: chain.Value()}
	signed, err := provenance.SignSeal(s, c.opt.Key.Signer)
	if err != nil {
		return fmt.Errorf("checkpoint: provenance seal: %w", err)
	}
	// Another instance signing the same size signs the same text, so
	// either seal serves.
	if err := c.st.SetMeta(ctx, sealKey(cp.Size), signed); err != nil {
		return fmt.Errorf("checkpoint: provenance seal: %w", err)
	}
	c.mu.Lock()
	if cp.Size >= c.sealed.LastID() {
		c.sealed = provenance.ChainFrom(chain.Value(), cp.Size)
	}
	c.mu.Unlock()
	return nil
}

// Seal returns the signed provenance seal at a tree size, or
// store.ErrNotFound when no checkpoint of that size was signed by a server
// recording provenance.
func (c *Checkpointer) Seal(ctx context.Context, size int64) ([]byte, error) {
	return c.st.Meta(ctx, sealKey(size))
}
