package verify

import (
	"fmt"

	"github.com/audit-stream/audit-stream/event"
	"golang.org/x/mod/sumdb/tlog"
)

// Tree rebuilds the Merkle root of a log from its events, in order, in
// O(log n) memory. It keeps, for each level, the most recently completed
// perfect subtree: that is exactly what tlog asks for when it adds a leaf
// (the left siblings it merges with) and when it computes the root (the
// subtrees of the set bits of the size). The zero value is an empty tree.
type Tree struct {
	n    int64
	last [64]subtree // by level
}

type subtree struct {
	n    int64 // index of the subtree within its level
	hash tlog.Hash
}

// Add appends the leaf for the next event's hash.
func (t *Tree) Add(h event.Hash) error { return t.AddLeafHash(LeafHash(h)) }

// AddLeafHash appends a leaf given its RFC 6962 leaf hash. It merges the
// leaf with the left siblings it completes, as tlog.StoredHashesForRecordHash
// does, but straight from the kept edge: the walk adds a leaf per event, in
// one goroutine, and must not allocate for it.
func (t *Tree) AddLeafHash(leaf tlog.Hash) error {
	_, err := t.add(nil, false, leaf)
	return err
}

// AppendStored adds the leaf for the next event's hash, as Add does, and
// appends to dst the hashes tlog stores for that record
// (tlog.StoredHashesForRecordHash): the leaf hash, then each subtree hash it
// completes. They are the hashes the merge computes anyway, so an import
// gets the stored tree and the root from one pass of hashing.
func (t *Tree) AppendStored(dst []tlog.Hash, h event.Hash) ([]tlog.Hash, error) {
	return t.add(dst, true, LeafHash(h))
}

func (t *Tree) add(stored []tlog.Hash, keep bool, leaf tlog.Hash) ([]tlog.Hash, error) {
	h := leaf
	for l := 0; ; l++ {
		if keep {
			stored = append(stored, h)
		}
		// The subtree at level l that leaf t.n completes is #(t.n>>l).
		left := t.last[l]
		t.last[l] = subtree{n: t.n >> l, hash: h}
		if t.n>>l&1 == 0 {
			break
		}
		if left.n != t.n>>l-1 {
			return stored, fmt.Errorf("merkle tree at size %d: left sibling at level %d is not on the edge", t.n, l)
		}
		h = tlog.NodeHash(left.hash, h)
	}
	t.n++
	return stored, nil
}

// Size is the number of leaves added.
func (t *Tree) Size() int64 { return t.n }

// Root is the RFC 6962 root hash of the leaves added so far.
func (t *Tree) Root() tlog.Hash {
	h, err := tlog.TreeHash(t.n, t)
	if err != nil {
		// TreeHash asks only for the latest subtree of each level.
		panic("verify: merkle edge lost: " + err.Error())
	}
	return h
}

// ReadHashes implements tlog.HashReader over the kept subtrees.
func (t *Tree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		l, n := tlog.SplitStoredHashIndex(x)
		if l >= len(t.last) || t.last[l].n != n || n >= t.n>>l {
			return nil, fmt.Errorf("stored hash %d (level %d, #%d) is not on the tree edge", x, l, n)
		}
		out[i] = t.last[l].hash
	}
	return out, nil
}
