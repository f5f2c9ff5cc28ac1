package verify

import (
	"crypto/sha256"
	"errors"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

func TestTreeFromInclusion(t *testing.T) {
	// Every leaf of every tree up to 70 leaves: the tree rebuilt from the
	// inclusion proof must equal the one built leaf by leaf, and go on
	// to the same later roots.
	const max = 70
	leaves := make([]tlog.Hash, max)
	var stored []tlog.Hash
	hr := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, x := range ix {
			out[i] = stored[x]
		}
		return out, nil
	})
	for i := range leaves {
		leaves[i] = sha256.Sum256([]byte{byte(i)})
		hs, err := tlog.StoredHashesForRecordHash(int64(i), leaves[i], hr)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
	}
	for size := int64(1); size <= max; size++ {
		root, err := tlog.TreeHash(size, hr)
		if err != nil {
			t.Fatal(err)
		}
		for index := int64(0); index < size; index++ {
			proof, err := tlog.ProveRecord(size, index, hr)
			if err != nil {
				t.Fatal(err)
			}
			got, err := TreeFromInclusion(size, root, index, leaves[index], proof)
			if err != nil {
				t.Fatalf("size %d index %d: %v", size, index, err)
			}
			var want Tree
			for _, l := range leaves[:index+1] {
				want.AddLeafHash(l)
			}
			if got.Size() != index+1 || got.Root() != want.Root() {
				t.Fatalf("size %d index %d: rebuilt tree of %d with root %x, want %d with %x", size, index, got.Size(), got.Root(), index+1, want.Root())
			}
			for _, l := range leaves[index+1 : size] {
				if err := got.AddLeafHash(l); err != nil {
					t.Fatalf("size %d index %d: %v", size, index, err)
				}
			}
			if got.Root() != root {
				t.Fatalf("size %d index %d: grown back to %d leaves, root differs", size, index, size)
			}
		}
	}
	// A proof that does not lead to the root is refused, not trusted.
	proof, _ := tlog.ProveRecord(40, 17, hr)
	root, _ := tlog.TreeHash(40, hr)
	proof[2][0] ^= 1
	if _, err := TreeFromInclusion(40, root, 17, leaves[17], proof); !errors.Is(err, ErrProof) {
		t.Fatalf("a forged proof: %v", err)
	}
	if _, err := TreeFromInclusion(40, root, 40, leaves[17], nil); !errors.Is(err, ErrProof) {
		t.Fatalf("a leaf beyond the tree: %v", err)
	}
}
