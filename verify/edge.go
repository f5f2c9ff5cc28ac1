package verify

import (
	"fmt"
	"math/bits"

	"golang.org/x/mod/sumdb/tlog"
)

// TreeFromInclusion returns the tree of the first index+1 leaves of a
// signed tree, from the inclusion proof of leaf index in the tree of size
// leaves with root root: what a reader that starts in the middle of a log
// needs to go on adding leaves and check later roots, without reading the
// leaves before it.
//
// The proof is checked first. Its left siblings are then exactly the
// perfect subtrees that make up the first index leaves (RFC 6962 splits
// every range at the largest power of two below its size, so a left part
// is always perfect and aligned), and a proof that led to the signed root
// cannot have other hashes there without a SHA-256 collision.
func TreeFromInclusion(size int64, root tlog.Hash, index int64, leaf tlog.Hash, proof tlog.RecordProof) (Tree, error) {
	if index < 0 || index >= size {
		return Tree{}, fmt.Errorf("%w: leaf %d is not in a tree of size %d", ErrProof, index, size)
	}
	if err := tlog.CheckRecord(proof, size, root, index, leaf); err != nil {
		return Tree{}, fmt.Errorf("%w: inclusion of leaf %d in tree of size %d: %v", ErrProof, index, size, err)
	}
	// Walk the splits from the root down; tlog lists the siblings from
	// the leaf up, so the split at depth d is proof[len(proof)-1-d].
	var t Tree
	j := len(proof) - 1
	for lo, hi := int64(0), size; hi-lo > 1; j-- {
		if j < 0 {
			return Tree{}, fmt.Errorf("%w: inclusion proof of leaf %d in tree of size %d is too short", ErrProof, index, size)
		}
		k := int64(1) << (bits.Len64(uint64(hi-lo-1)) - 1) // the largest power of two below hi-lo
		if index < lo+k {
			hi = lo + k
			continue
		}
		level := bits.TrailingZeros64(uint64(k))
		t.last[level] = subtree{n: lo >> level, hash: proof[j]}
		lo += k
	}
	t.n = index
	if err := t.AddLeafHash(leaf); err != nil {
		return Tree{}, err
	}
	return t, nil
}
