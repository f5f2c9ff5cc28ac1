package verify

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/audit-stream/audit-stream/event"
	"golang.org/x/mod/sumdb/tlog"
)

// LeafHash is the Merkle leaf hash of an event: RFC 6962 over the 32 raw
// bytes of the event hash, SHA-256(0x00 ‖ hash). Leaf index is event_id − 1.
//
// It is tlog.RecordHash(h[:]), SHA-256(0x00 ‖ h), without the allocation of
// a hash.Hash: the walk computes one per event.
func LeafHash(h event.Hash) tlog.Hash {
	var buf [1 + len(h)]byte // buf[0] = 0x00, the leaf prefix
	copy(buf[1:], h[:])
	return sha256.Sum256(buf[:])
}

// ErrProof reports a proof that does not lead to the expected root.
var ErrProof = errors.New("proof does not verify")

// CheckInclusion checks that the event with id and hash is leaf id−1 of the
// tree that c commits to.
func CheckInclusion(c Checkpoint, id int64, h event.Hash, proof []tlog.Hash) error {
	if id < 1 || id > c.Size {
		return fmt.Errorf("%w: event %d is not in a tree of size %d", ErrProof, id, c.Size)
	}
	if err := tlog.CheckRecord(proof, c.Size, c.Hash, id-1, LeafHash(h)); err != nil {
		return fmt.Errorf("%w: inclusion of event %d in tree of size %d: %v", ErrProof, id, c.Size, err)
	}
	return nil
}

// InconsistencyError is evidence that a log rewrote or forked its history:
// two checkpoints, both validly signed, that no append-only log can have
// produced. It carries both so that whoever sees it can publish them.
type InconsistencyError struct {
	Old, New []byte // the signed notes, verbatim
	Reason   string
}

func (e *InconsistencyError) Error() string {
	return fmt.Sprintf("log is inconsistent with the earlier checkpoint: %s\n--- earlier checkpoint ---\n%s--- new checkpoint ---\n%s", e.Reason, e.Old, e.New)
}

// CheckConsistency checks that the tree of newer extends the tree of older:
// same origin, not smaller, and the consistency proof leads from one root to
// the other. oldNote and newNote are the signed notes, carried into the
// *InconsistencyError as evidence.
func CheckConsistency(older, newer Checkpoint, proof []tlog.Hash, oldNote, newNote []byte) error {
	fail := func(format string, args ...any) error {
		return &InconsistencyError{Old: oldNote, New: newNote, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case older.Origin != newer.Origin:
		return fail("origin changed from %q to %q", older.Origin, newer.Origin)
	case newer.Size < older.Size:
		return fail("tree shrank from %d to %d", older.Size, newer.Size)
	case older.Size == newer.Size:
		if older.Hash != newer.Hash || len(proof) != 0 {
			return fail("two different roots for tree size %d", older.Size)
		}
		return nil
	case older.Size == 0:
		// Every tree extends the empty one.
		return nil
	}
	if err := tlog.CheckTree(proof, newer.Size, newer.Hash, older.Size, older.Hash); err != nil {
		return fail("consistency proof from size %d to %d does not verify (%v)", older.Size, newer.Size, err)
	}
	return nil
}
