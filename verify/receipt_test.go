package verify

import (
	"bytes"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// receiptFixture builds a 5-event chain, its tree, a signed checkpoint and
// a receipt for event 3.
func receiptFixture(t *testing.T) (*Receipt, note.Verifier) {
	t.Helper()
	skey, vkey, _ := note.GenerateKey(nil, "example.com/log")
	signer, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	var mem memTree
	var evs []event.Event
	prev := event.ZeroHash
	for i := int64(1); i <= 5; i++ {
		e := event.Event{ID: i, Timestamp: "2026-05-15T03:00:01+00:00", Kind: "request_denied", Source: "s", Payload: []byte(`{"i":1}`), PrevHash: prev}
		e.Hash, _ = e.ComputeHash(nil)
		prev = e.Hash
		evs = append(evs, e)
		mem.add(t, i-1, LeafHash(e.Hash))
	}
	root, _ := tlog.TreeHash(5, &mem)
	signed, _ := SignCheckpoint(Checkpoint{Origin: "example.com/log", Size: 5, Hash: root}, signer)
	p, _ := tlog.ProveRecord(5, 2, &mem)
	return &Receipt{Event: evs[2], Index: 2, Proof: p, Checkpoint: signed}, v
}

func TestReceiptRoundTrip(t *testing.T) {
	rc, v := receiptFixture(t)
	text := rc.Marshal()
	if !bytes.HasPrefix(text, []byte("c2sp.org/tlog-proof@v1\nextra ")) {
		t.Fatalf("not a tlog-proof:\n%s", text)
	}
	back, err := ParseReceipt(text)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Marshal(), text) {
		t.Fatal("parse/marshal round trip changed the receipt")
	}
	cp, err := back.Verify(v, "")
	if err != nil || cp.Size != 5 {
		t.Fatalf("Verify = %+v, %v", cp, err)
	}
}

func TestReceiptRejects(t *testing.T) {
	rc, v := receiptFixture(t)
	good := string(rc.Marshal())
	parseCases := map[string]string{
		"empty":          "",
		"wrong header":   strings.Replace(good, "tlog-proof@v1", "tlog-proof@v2", 1),
		"no extra":       "c2sp.org/tlog-proof@v1\nindex 2\n\n" + string(rc.Checkpoint),
		"bad extra":      strings.Replace(good, "extra ", "extra !", 1),
		"no checkpoint":  strings.SplitN(good, "\n\n", 2)[0],
		"leading zero":   strings.Replace(good, "index 2\n", "index 02\n", 1),
		"negative index": strings.Replace(good, "index 2\n", "index -2\n", 1),
		"bad proof hash": strings.Replace(good, "index 2\n", "index 2\nAAAA\n", 1),
		"missing index":  strings.Replace(good, "index 2\n", "", 1),
	}
	for name, in := range parseCases {
		if _, err := ParseReceipt([]byte(in)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	verifyCases := map[string]func(r *Receipt){
		"wrong index":   func(r *Receipt) { r.Index = 3 },
		"edited event":  func(r *Receipt) { r.Event.Payload = []byte(`{"i":2}`) },
		"forged hash":   func(r *Receipt) { r.Event.Payload = []byte(`{"i":2}`); r.Event.Hash, _ = r.Event.ComputeHash(nil) },
		"short proof":   func(r *Receipt) { r.Proof = r.Proof[1:] },
		"bad signature": func(r *Receipt) { r.Checkpoint = bytes.Replace(r.Checkpoint, []byte("\n5\n"), []byte("\n6\n"), 1) },
	}
	for name, mutate := range verifyCases {
		r, _ := ParseReceipt([]byte(good))
		mutate(r)
		if _, err := r.Verify(v, ""); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}

func FuzzParseCheckpoint(f *testing.F) {
	f.Add([]byte("example.com/log\n42\nAQIDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"))
	f.Add([]byte("o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next\n"))
	f.Add([]byte("o\n01\nAAAA\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCheckpoint(data)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Marshal(), data) {
			t.Fatalf("accepted a non-canonical checkpoint %q (re-marshals to %q)", data, c.Marshal())
		}
	})
}

func FuzzParseReceipt(f *testing.F) {
	rc, _ := receiptFixture(&testing.T{})
	f.Add(rc.Marshal())
	f.Add([]byte("c2sp.org/tlog-proof@v1\nindex 0\n\nx\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseReceipt(data)
		if err != nil {
			return
		}
		if _, err := ParseReceipt(r.Marshal()); err != nil {
			t.Fatalf("re-marshalled receipt does not parse: %v", err)
		}
	})
}
