package verify

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// The RFC 6962 reference tree used by Certificate Transparency and
// transparency-dev/merkle: eight leaves and the roots of every prefix.
var rfcLeaves = []string{"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"}

var rfcRoots = []string{
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", // empty tree
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}

var rfcInclusion = []struct {
	leaf, size int64
	proof      []string
}{
	{0, 1, nil},
	{0, 8, []string{"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
	{5, 8, []string{"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b", "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
	{2, 3, []string{"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
	{1, 5, []string{"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
}

var rfcConsistency = []struct {
	from, to int64
	proof    []string
}{
	{1, 1, nil},
	{1, 8, []string{"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
	{6, 8, []string{"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a", "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
	{2, 5, []string{"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hashes(t *testing.T, ss []string) []tlog.Hash {
	out := make([]tlog.Hash, len(ss))
	for i, s := range ss {
		out[i] = tlog.Hash(unhex(t, s))
	}
	return out
}

// memTree is a whole tree in memory in tlog's stored-hash layout, the
// layout the store keeps: it serves proofs the way the server does.
type memTree []tlog.Hash

func (m *memTree) add(t *testing.T, n int64, leaf tlog.Hash) {
	hs, err := tlog.StoredHashesForRecordHash(n, leaf, m)
	if err != nil {
		t.Fatal(err)
	}
	*m = append(*m, hs...)
}

func (m *memTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = (*m)[x]
	}
	return out, nil
}

func TestRFC6962Vectors(t *testing.T) {
	var tree Tree
	var mem memTree
	if got := tree.Root(); got != tlog.Hash(unhex(t, rfcRoots[0])) || got != EmptyTreeHash {
		t.Fatalf("empty root = %x", got)
	}
	for i, l := range rfcLeaves {
		leaf := tlog.RecordHash(unhex(t, l))
		if err := tree.AddLeafHash(leaf); err != nil {
			t.Fatal(err)
		}
		mem.add(t, int64(i), leaf)
		want := tlog.Hash(unhex(t, rfcRoots[i+1]))
		if got := tree.Root(); got != want {
			t.Errorf("Tree root at size %d = %x, want %x", i+1, got, want)
		}
		if got, _ := tlog.TreeHash(int64(i+1), &mem); got != want {
			t.Errorf("stored-layout root at size %d = %x, want %x", i+1, got, want)
		}
	}
	for _, v := range rfcInclusion {
		p, err := tlog.ProveRecord(v.size, v.leaf, &mem)
		if err != nil {
			t.Fatal(err)
		}
		if want := hashes(t, v.proof); !equalHashes(p, want) {
			t.Errorf("inclusion proof of leaf %d in %d = %x, want %x", v.leaf, v.size, p, want)
		}
		root := tlog.Hash(unhex(t, rfcRoots[v.size]))
		if err := tlog.CheckRecord(hashes(t, v.proof), v.size, root, v.leaf, tlog.RecordHash(unhex(t, rfcLeaves[v.leaf]))); err != nil {
			t.Errorf("reference inclusion proof of leaf %d in %d: %v", v.leaf, v.size, err)
		}
	}
	for _, v := range rfcConsistency {
		older := Checkpoint{Origin: "o", Size: v.from, Hash: tlog.Hash(unhex(t, rfcRoots[v.from]))}
		newer := Checkpoint{Origin: "o", Size: v.to, Hash: tlog.Hash(unhex(t, rfcRoots[v.to]))}
		if v.from < v.to {
			p, err := tlog.ProveTree(v.to, v.from, &mem)
			if err != nil {
				t.Fatal(err)
			}
			if want := hashes(t, v.proof); !equalHashes(p, want) {
				t.Errorf("consistency proof %d→%d = %x, want %x", v.from, v.to, p, want)
			}
		}
		if err := CheckConsistency(older, newer, hashes(t, v.proof), nil, nil); err != nil {
			t.Errorf("reference consistency proof %d→%d: %v", v.from, v.to, err)
		}
		if v.from < v.to {
			forged := newer
			forged.Hash[0] ^= 1
			if err := CheckConsistency(older, forged, hashes(t, v.proof), nil, nil); err == nil {
				t.Errorf("consistency %d→%d accepted a forged root", v.from, v.to)
			}
		}
	}
}

func equalHashes(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// For random trees, the streaming Tree agrees with the stored layout at
// every size, and every proof the stored layout gives verifies with
// CheckInclusion / CheckConsistency against a signed checkpoint.
func TestTreeProperty(t *testing.T) {
	skey, vkey, _ := note.GenerateKey(nil, "example.com/log")
	signer, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 20; trial++ {
		n := 1 + r.Int64N(3000)
		var tree Tree
		var mem memTree
		evs := make([]event.Hash, n)
		for i := range evs {
			for j := range evs[i] {
				evs[i][j] = byte(r.Uint32())
			}
			if err := tree.Add(evs[i]); err != nil {
				t.Fatal(err)
			}
			if LeafHash(evs[i]) != tlog.RecordHash(evs[i][:]) {
				t.Fatalf("LeafHash differs from tlog.RecordHash")
			}
			mem.add(t, int64(i), LeafHash(evs[i]))
			if trial < 3 {
				if want, _ := tlog.TreeHash(int64(i+1), &mem); tree.Root() != want {
					t.Fatalf("size %d: streaming root %x, stored %x", i+1, tree.Root(), want)
				}
			}
		}
		root, _ := tlog.TreeHash(n, &mem)
		if tree.Root() != root {
			t.Fatalf("size %d: streaming root %x, stored %x", n, tree.Root(), root)
		}
		signed, err := SignCheckpoint(Checkpoint{Origin: "example.com/log", Size: n, Hash: root}, signer)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := OpenCheckpoint(signed, v, "")
		if err != nil {
			t.Fatal(err)
		}
		for k := 0; k < 20; k++ {
			id := 1 + r.Int64N(n)
			p, _ := tlog.ProveRecord(n, id-1, &mem)
			if err := CheckInclusion(cp, id, evs[id-1], p); err != nil {
				t.Fatalf("size %d, event %d: %v", n, id, err)
			}
			wrong := evs[id-1]
			wrong[5] ^= 0x80
			if CheckInclusion(cp, id, wrong, p) == nil {
				t.Fatalf("size %d: inclusion accepted a wrong event hash", n)
			}
			m := 1 + r.Int64N(n)
			old, _ := tlog.TreeHash(m, &mem)
			var tp tlog.TreeProof
			if m < n {
				tp, _ = tlog.ProveTree(n, m, &mem)
			}
			if err := CheckConsistency(Checkpoint{Origin: cp.Origin, Size: m, Hash: old}, cp, tp, nil, signed); err != nil {
				t.Fatalf("consistency %d→%d: %v", m, n, err)
			}
		}
	}
}

func TestCheckpointRoundTripAndRejects(t *testing.T) {
	c := Checkpoint{Origin: "example.com/log", Size: 42, Hash: tlog.Hash{1, 2, 3}}
	got, err := ParseCheckpoint(c.Marshal())
	if err != nil || got.Origin != c.Origin || got.Size != c.Size || got.Hash != c.Hash {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	good := string(c.Marshal())
	lines := bytes.Split([]byte(good), []byte("\n"))
	for name, in := range map[string]string{
		"empty":            "",
		"no final newline": good[:len(good)-1],
		"two lines":        string(lines[0]) + "\n" + string(lines[1]) + "\n",
		"empty origin":     "\n42\n" + string(lines[2]) + "\n",
		"leading zero":     "o\n042\n" + string(lines[2]) + "\n",
		"negative":         "o\n-1\n" + string(lines[2]) + "\n",
		"plus sign":        "o\n+1\n" + string(lines[2]) + "\n",
		"short hash":       "o\n1\nAAAA\n",
		"not base64":       "o\n1\n!!!!\n",
		"empty extension":  good + "\n",
	} {
		if _, err := ParseCheckpoint([]byte(in)); err == nil {
			t.Errorf("%s: accepted %q", name, in)
		}
	}
}

func TestOpenCheckpointRejects(t *testing.T) {
	skey, vkey, _ := note.GenerateKey(nil, "example.com/log")
	signer, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	otherKey, _, _ := note.GenerateKey(nil, "example.com/log")
	other, _ := note.NewSigner(otherKey)
	c := Checkpoint{Origin: "example.com/log", Size: 3, Hash: tlog.Hash{9}}
	signed, _ := SignCheckpoint(c, signer)
	if _, err := OpenCheckpoint(signed, v, ""); err != nil {
		t.Fatal(err)
	}
	byOther, _ := SignCheckpoint(c, other)
	tampered := bytes.Replace(signed, []byte("\n3\n"), []byte("\n4\n"), 1)
	if _, err := OpenCheckpoint(byOther, v, ""); err == nil {
		t.Error("accepted a checkpoint signed by another key")
	}
	if _, err := OpenCheckpoint(tampered, v, ""); err == nil {
		t.Error("accepted a tampered checkpoint")
	}
	if _, err := OpenCheckpoint(signed, v, "example.com/other"); err == nil {
		t.Error("accepted a checkpoint for another origin")
	}
}

func TestCheckConsistencyShrinkAndFork(t *testing.T) {
	a := Checkpoint{Origin: "o", Size: 5, Hash: tlog.Hash{1}}
	b := Checkpoint{Origin: "o", Size: 4, Hash: tlog.Hash{2}}
	var ie *InconsistencyError
	if err := CheckConsistency(a, b, nil, []byte("old\n"), []byte("new\n")); err == nil {
		t.Error("accepted a shrinking tree")
	} else if !asInconsistency(err, &ie) || string(ie.Old) != "old\n" {
		t.Errorf("error %v does not carry the evidence", err)
	}
	fork := a
	fork.Hash = tlog.Hash{3}
	if CheckConsistency(a, fork, nil, nil, nil) == nil {
		t.Error("accepted two roots for one size")
	}
	if CheckConsistency(a, Checkpoint{Origin: "p", Size: 6}, nil, nil, nil) == nil {
		t.Error("accepted an origin change")
	}
}

func asInconsistency(err error, target **InconsistencyError) bool {
	e, ok := err.(*InconsistencyError)
	*target = e
	return ok
}

// AppendStored hands out exactly what tlog stores for each record, so an
// import can write the tree without reading it back.
func TestAppendStoredMatchesTlog(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var tree Tree
	var mem memTree
	var got []tlog.Hash
	for i := int64(0); i < 1100; i++ {
		var h event.Hash
		for j := range h {
			h[j] = byte(r.Uint32())
		}
		want, err := tlog.StoredHashesForRecordHash(i, tlog.RecordHash(h[:]), &mem)
		if err != nil {
			t.Fatal(err)
		}
		if got, err = tree.AppendStored(got[:0], h); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("record %d: stored %d hashes %x, tlog %d %x", i, len(got), got, len(want), want)
		}
		mem.add(t, i, LeafHash(h))
	}
	if root, _ := tlog.TreeHash(1100, &mem); tree.Root() != root {
		t.Fatalf("root %x, want %x", tree.Root(), root)
	}
}
