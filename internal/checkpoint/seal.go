package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/provenance"
	"github.com/audit-stream/audit-stream/verify"
)

// sealKey is the meta key of the provenance seal at a tree size.
func sealKey(size int64) string { return "provenance-seal:" + strconv.FormatInt(size, 10) }

// seal signs and stores the provenance seal for cp: the provenance record
// chain's value after the records of cp's events, bound to cp's root. The
// record chain is written in the events' own transactions, and a
// checkpoint's size is always the end of a commit, so the last record at
// or before the size ends exactly there.
func (c *Checkpointer) seal(ctx context.Context, cp verify.Checkpoint) error {
	s := provenance.Seal{Origin: c.opt.Origin, Size: cp.Size, Root: cp.Hash}
	r, err := c.st.LastProvenance(ctx, cp.Size)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// No provenance yet (an empty or imported log): the chain's
		// empty value.
	case err != nil:
		return fmt.Errorf("checkpoint: provenance seal: %w", err)
	case r.LastID() > cp.Size:
		return fmt.Errorf("checkpoint: provenance seal: the record at %d ends at %d, past the tree size %d", r.FirstID, r.LastID(), cp.Size)
	default:
		s.Chain = r.Chain
	}
	signed, err := provenance.SignSeal(s, c.opt.Key.Signer)
	if err != nil {
		return fmt.Errorf("checkpoint: provenance seal: %w", err)
	}
	// Another instance signing the same size signs the same text, so
	// either seal serves.
	if err := c.st.SetMeta(ctx, sealKey(cp.Size), signed); err != nil {
		return fmt.Errorf("checkpoint: provenance seal: %w", err)
	}
	return nil
}

// Seal returns the signed provenance seal at a tree size, or
// store.ErrNotFound when no checkpoint of that size was signed by a server
// recording provenance.
func (c *Checkpointer) Seal(ctx context.Context, size int64) ([]byte, error) {
	return c.st.Meta(ctx, sealKey(size))
}
