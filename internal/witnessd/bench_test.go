package witnessd

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/audit-stream/audit-stream/witness"
	"golang.org/x/mod/sumdb/note"
)

// BenchmarkAddCheckpoint is one cosigning round trip inside the witness:
// signature and consistency checks, the cosignature, and the durable state
// write. Its baseline is the durable write alone (temporary file, fsync,
// rename, directory fsync), which bounds how fast any witness that keeps
// its promise can be; compare the two in one run.
func BenchmarkAddCheckpoint(b *testing.B) {
	l := newTestLog(b, "log.test/bench")
	skey, _, _ := witness.GenerateKey("witness.test/bench")
	s, _ := witness.NewSigner(skey)
	w, err := Open(Options{Dir: b.TempDir(), Signer: s, Logs: []Log{{Origin: l.origin, Keys: []note.Verifier{l.key(b)}}}})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	l.grow(b, b.N+1, "b")
	reqs := make([]*witness.AddCheckpoint, b.N)
	for i := range reqs {
		n := int64(i + 1)
		reqs[i] = &witness.AddCheckpoint{OldSize: n - 1, Proof: l.proof(b, n-1, n), Checkpoint: l.checkpoint(b, n)}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := w.AddCheckpoint(b.Context(), reqs[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDurableWrite is the baseline of BenchmarkAddCheckpoint.
func BenchmarkDurableWrite(b *testing.B) {
	path := filepath.Join(b.TempDir(), "state")
	data := make([]byte, 300)
	for i := 0; i < b.N; i++ {
		if err := WriteAtomic(path, data); err != nil {
			b.Fatal(err)
		}
	}
	os.Remove(path)
}
