package verify

import (
	"context"
	"fmt"

	"github.com/audit-stream/audit-stream/event"
)

// TreeReport is Report with the Merkle tree the walk rebuilt: the shape of
// GET /verify and of audit-stream verify.
type TreeReport struct {
	Report
	// TreeSize is the number of events the rebuilt tree covers: the
	// events that passed the chain walk.
	TreeSize int64 `json:"tree_size"`
	// RootHash is that tree's RFC 6962 root, lowercase hex.
	RootHash string `json:"root_hash"`
}

// StreamTree walks src as Stream does and also adds every event that passes
// to t, so that t's root can be compared with a stored tree or a signed
// checkpoint. opt.Visit, if set, runs after the event is added to t.
func StreamTree(ctx context.Context, src Source, opt StreamOptions, t *Tree) (TreeReport, error) {
	rep, err := Stream(ctx, src, treeOptions(opt, t))
	return TreeReport{Report: rep, TreeSize: t.Size(), RootHash: event.Hash(t.Root()).String()}, err
}

// StreamTreeRaw is StreamTree over encoded events, as StreamRaw.
func StreamTreeRaw(ctx context.Context, src RawSource, decode Decoder, opt StreamOptions, t *Tree) (TreeReport, error) {
	rep, err := StreamRaw(ctx, src, decode, treeOptions(opt, t))
	return TreeReport{Report: rep, TreeSize: t.Size(), RootHash: event.Hash(t.Root()).String()}, err
}

func treeOptions(opt StreamOptions, t *Tree) StreamOptions {
	visit := opt.Visit
	opt.Visit = func(e *event.Event) error {
		if err := t.Add(e.Hash); err != nil {
			return err
		}
		if visit != nil {
			return visit(e)
		}
		return nil
	}
	return opt
}

// Fail marks the report broken at event at (0: no single event to blame)
// for reason, unless it is already broken: the first break wins.
func (r *TreeReport) Fail(at int64, format string, args ...any) {
	if !r.Valid {
		return
	}
	reason := fmt.Sprintf(format, args...)
	r.Valid, r.Reason = false, &reason
	if at > 0 {
		r.FirstBreakAt = &at
	}
}
