package verify

import (
	"fmt"

	"github.com/audit-stream/audit-stream/event"
	"golang.org/x/mod/sumdb/tlog"
)

// Tree rebuilds the Merkle root of a log from its events, in order, in
// O(log n) memory: it keeps only the right edge of the tree (one perfect
// subtree per set bit of the size), which is all that later leaves and the
// root need. The zero value is an empty tree.
type Tree struct {
	n      int64
	hashes map[int64]tlog.Hash // by stored-hash index; the edge plus recent garbage
}

// pruneEvery bounds the garbage kept between prunes.
const pruneEvery = 1024

// Add appends the leaf for the next event's hash.
func (t *Tree) Add(h event.Hash) error { return t.AddLeafHash(LeafHash(h)) }

// AddLeafHash appends a leaf given its RFC 6962 leaf hash.
func (t *Tree) AddLeafHash(leaf tlog.Hash) error {
	if t.hashes == nil {
		t.hashes = make(map[int64]tlog.Hash, 2*pruneEvery)
	}
	hs, err := tlog.StoredHashesForRecordHash(t.n, leaf, t)
	if err != nil {
		return fmt.Errorf("merkle tree at size %d: %w", t.n, err)
	}
	base := tlog.StoredHashIndex(0, t.n)
	for i, x := range hs {
		t.hashes[base+int64(i)] = x
	}
	t.n++
	if t.n%pruneEvery == 0 {
		edge := make(map[int64]tlog.Hash, 2*pruneEvery)
		for _, x := range edgeIndexes(t.n) {
			edge[x] = t.hashes[x]
		}
		t.hashes = edge
	}
	return nil
}

// Size is the number of leaves added.
func (t *Tree) Size() int64 { return t.n }

// Root is the RFC 6962 root hash of the leaves added so far.
func (t *Tree) Root() tlog.Hash {
	h, err := tlog.TreeHash(t.n, t)
	if err != nil {
		// Every hash TreeHash asks for is on the edge, which Add keeps.
		panic("verify: merkle edge lost: " + err.Error())
	}
	return h
}

// ReadHashes implements tlog.HashReader over the kept edge.
func (t *Tree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := t.hashes[x]
		if !ok {
			return nil, fmt.Errorf("stored hash %d not on the tree edge", x)
		}
		out[i] = h
	}
	return out, nil
}

// edgeIndexes lists the stored-hash indexes of the perfect subtrees that
// make up a tree of size n, one per set bit.
func edgeIndexes(n int64) []int64 {
	var out []int64
	for level := 0; n>>level != 0; level++ {
		if n>>level&1 == 1 {
			out = append(out, tlog.StoredHashIndex(level, n>>level-1))
		}
	}
	return out
}
