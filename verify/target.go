package verify

import (
	"context"
	"errors"

	"github.com/audit-stream/audit-stream/event"
	"golang.org/x/mod/sumdb/tlog"
)

// Target is the Merkle tree a walk must rebuild: the one a signed
// checkpoint commits to, or the one a server stores and serves proofs from.
type Target struct {
	// Size is how many events the tree covers. The source may deliver
	// more (an export taken after the checkpoint): they are walked too,
	// but the root compared is the one at Size.
	Size int64
	// Root returns the tree's root. It is called only once the first Size
	// events passed, so a broken chain costs no read of a stored tree.
	Root func() (tlog.Hash, error)
	// What names the tree in a failure reason: "the checkpoint".
	What string
}

// CheckTree walks src as StreamTree does and, if want is not nil, checks
// that the events cover want.Size and that the first want.Size of them
// rebuild want's root. A shortfall or another root is a broken log, in the
// report; the error is an I/O, Visit or Root error. This is the whole of
// GET /verify and of audit-stream verify against a checkpoint.
func CheckTree(ctx context.Context, src Source, want *Target, opt StreamOptions) (TreeReport, error) {
	return checkTree(want, opt, func(opt StreamOptions, t *Tree) (TreeReport, error) {
		return StreamTree(ctx, src, opt, t)
	})
}

// CheckTreeRaw is CheckTree over encoded events, as StreamRaw. An event
// that does not decode is a break at its position, in the report.
func CheckTreeRaw(ctx context.Context, src RawSource, decode Decoder, want *Target, opt StreamOptions) (TreeReport, error) {
	return checkTree(want, opt, func(opt StreamOptions, t *Tree) (TreeReport, error) {
		return StreamTreeRaw(ctx, src, decode, opt, t)
	})
}

func checkTree(want *Target, opt StreamOptions, walk func(StreamOptions, *Tree) (TreeReport, error)) (TreeReport, error) {
	var t Tree
	var atSize *TreeReport
	if want != nil {
		if want.Size == 0 {
			atSize = &TreeReport{RootHash: event.Hash(EmptyTreeHash).String()}
		}
		visit := opt.Visit
		opt.Visit = func(e *event.Event) error {
			if t.Size() == want.Size {
				atSize = &TreeReport{TreeSize: t.Size(), RootHash: event.Hash(t.Root()).String()}
			}
			if visit != nil {
				return visit(e)
			}
			return nil
		}
	}
	rep, err := walk(opt, &t)
	var derr *DecodeError
	if errors.As(err, &derr) {
		rep.Fail(derr.At, "%v", derr)
		return rep, nil
	}
	if err != nil || want == nil || !rep.Valid {
		return rep, err
	}
	if atSize == nil {
		rep.Fail(rep.Checked+1, "events end at %d but %s covers %d", rep.Checked, want.What, want.Size)
		return rep, nil
	}
	rep.TreeSize, rep.RootHash = atSize.TreeSize, atSize.RootHash
	root, err := want.Root()
	if err != nil {
		return rep, err
	}
	if got := event.Hash(root).String(); got != rep.RootHash {
		rep.Fail(0, "Merkle root mismatch at tree size %d: %s has %s, the events give %s", want.Size, want.What, got, rep.RootHash)
	}
	return rep, nil
}
