package provenance_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/audit-stream/audit-stream/provenance"
	"golang.org/x/mod/sumdb/note"
)

// fixedKey is a log key for the fuzzers: the same on every run, so that
// kept inputs replay.
const fixedKey = "PRIVATE+KEY+example.com/audit+36700de8+AfQCGjza9jXduHN/N4HIbtZafqWYzrd31iVO8M0PRFpq"

// FuzzOpenSeal: any text, signed by the log's key, either opens to a seal
// whose text is exactly what was signed (one spelling per seal), or is
// refused; never a panic.
func FuzzOpenSeal(f *testing.F) {
	f.Add("audit-stream provenance seal v1\nexample.com/audit\n42\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	f.Add("audit-stream provenance seal v1\nexample.com/audit\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	f.Add("audit-stream provenance seal v1\nexample.com/audit\n042\nAAAA\nAAAA\n")
	f.Add("audit-stream provenance seal v1\n\n-1\n\n\n")
	s, err := note.NewSigner(fixedKey)
	if err != nil {
		f.Fatal(err)
	}
	v, err := note.NewVerifier("example.com/audit+36700de8+AQwmQYMTkSnCBc0fvdL3b9MduBIWfI/UFhhe/YfNCn13")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		signed, err := note.Sign(&note.Note{Text: text}, s)
		if err != nil {
			return // not note text (no final newline, say)
		}
		seal, err := provenance.OpenSeal(signed, v)
		if err != nil {
			return
		}
		if got := string(seal.Marshal()); got != text {
			t.Fatalf("%q opened as a seal that marshals to %q", text, got)
		}
	})
}

// FuzzRecord: any JSON a server might send as a provenance record either
// fails to decode or to pass CheckShape, or round-trips through its wire
// form to a record with the same chain hash; never a panic.
func FuzzRecord(f *testing.F) {
	f.Add(`{"first_id":1,"count":1,"appended_by":"open","received_at":"2026-05-15T03:14:15.123456+00:00","flags":"0","last_hash":"` + zeros + `","chain":"` + zeros + `"}`)
	f.Add(`{"first_id":4,"count":2,"appended_by":"token:tok_1","received_at":"x","flags":"13","key_id":"k+00000000","signatures":["` + sig64 + `","` + sig64 + `"],"last_hash":"` + zeros + `","chain":"` + zeros + `"}`)
	f.Add(`{"first_id":1,"count":2,"flags":"4"}`)
	f.Fuzz(func(t *testing.T, data string) {
		var r provenance.Record
		if json.Unmarshal([]byte(data), &r) != nil || r.CheckShape() != nil {
			return
		}
		b, err := json.Marshal(&r)
		if err != nil {
			t.Fatalf("a record that decoded and passed CheckShape does not encode: %v", err)
		}
		var again provenance.Record
		if err := json.Unmarshal(b, &again); err != nil {
			t.Fatalf("%s does not decode: %v", b, err)
		}
		var zero [32]byte
		if again.ChainHash(zero) != r.ChainHash(zero) || !bytes.Equal(again.Flags, r.Flags) {
			t.Fatalf("%s changed on the way through its wire form", data)
		}
		for id := r.FirstID; id <= r.LastID() && id < r.FirstID+4; id++ {
			if _, ok := r.Event(id); !ok {
				t.Fatalf("event %d of a record for %d-%d", id, r.FirstID, r.LastID())
			}
		}
	})
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"

var sig64 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="
