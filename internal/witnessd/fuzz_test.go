package witnessd

import (
	"testing"

	"github.com/audit-stream/audit-stream/witness"
	"golang.org/x/mod/sumdb/note"
)

// FuzzAddCheckpoint feeds arbitrary bodies through the parser and the
// witness: whatever a client sends is refused with a 4xx (or cosigned),
// never a 500 or a panic, and a refusal never moves the state.
func FuzzAddCheckpoint(f *testing.F) {
	l := newTestLog(f, "log.test/fuzz")
	l.grow(f, 9, "f")
	f.Add((&witness.AddCheckpoint{OldSize: 0, Checkpoint: l.checkpoint(f, 5)}).Marshal())
	f.Add((&witness.AddCheckpoint{OldSize: 5, Proof: l.proof(f, 5, 9), Checkpoint: l.checkpoint(f, 9)}).Marshal())
	f.Add([]byte("old 5\n\nlog.test/fuzz\n9\nAAAA\n\n— log.test/fuzz AAAAAAAA\n"))
	f.Add([]byte("old 0\n\nlog.test/other\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— x AAAAAA==\n"))
	skey, _, _ := witness.GenerateKey("witness.test/fuzz")
	s, _ := witness.NewSigner(skey)
	w, err := Open(Options{Dir: f.TempDir(), Signer: s, Logs: []Log{{Origin: l.origin, Keys: []note.Verifier{l.key(f)}}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { w.Close() })
	f.Fuzz(func(t *testing.T, body []byte) {
		before := w.Logs()[0].Size
		req, err := witness.ParseAddCheckpoint(body)
		if err != nil {
			if statusOf(err) != 400 {
				t.Fatalf("a parse error maps to %d", statusOf(err))
			}
			return
		}
		_, err = w.AddCheckpoint(t.Context(), req)
		if err == nil {
			return
		}
		if code := statusOf(err); code < 400 || code >= 500 {
			t.Fatalf("%v maps to %d", err, code)
		}
		if after := w.Logs()[0].Size; after != before {
			t.Fatalf("a refused request moved the state from %d to %d", before, after)
		}
	})
}
