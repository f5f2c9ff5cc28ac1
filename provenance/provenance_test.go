package provenance_test

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/prodsig"
	"github.com/audit-stream/audit-stream/provenance"
	"golang.org/x/mod/sumdb/note"
)

func key(t *testing.T, name string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// events makes n chained events from first, and a signed record of them.
func signed(t *testing.T, s note.Signer, first int64, n int) ([]event.Event, provenance.Record) {
	t.Helper()
	var evs []event.Event
	var reqs []event.Request
	for i := range n {
		e := event.Event{ID: first + int64(i), Timestamp: "2026-05-15T03:14:15Z", Kind: "other", Source: "billing", Payload: []byte(`{"i":` + string(rune('0'+i)) + `}`)}
		e.Hash, _ = e.ComputeHash(nil)
		evs = append(evs, e)
		reqs = append(reqs, prodsig.RequestOf(&e, i == 0))
	}
	h, err := prodsig.Sign(s, reqs)
	if err != nil {
		t.Fatal(err)
	}
	hd, err := prodsig.ParseHeader(h)
	if err != nil {
		t.Fatal(err)
	}
	r := provenance.Record{FirstID: first, Count: int64(n), AppendedBy: "token:tok_1", ReceivedAt: "2026-05-15T03:14:16.000001+00:00",
		Flags: make(provenance.Flags, n), KeyID: hd.KeyID, Sigs: hd.Sigs, LastHash: evs[n-1].Hash}
	r.Flags[0] = provenance.FlagProducerTimestamp
	return evs, r
}

func TestCheckEvents(t *testing.T) {
	s, v := key(t, "billing.example.com")
	_, other := key(t, "billing.example.com")
	evs, r := signed(t, s, 5, 3)
	keys := provenance.Keys([]note.Verifier{v})
	if err := provenance.CheckEvents(&r, evs, keys); err != nil {
		t.Fatal(err)
	}
	if err := provenance.CheckEvents(&r, evs, nil); err != nil {
		t.Fatalf("unchecked signatures: %v", err)
	}
	if err := provenance.CheckEvents(&r, evs, provenance.Keys([]note.Verifier{other})); !errors.Is(err, provenance.ErrSignature) || !strings.Contains(err.Error(), "no --producer-key") {
		t.Fatalf("signatures with only another key: %v", err)
	}
	// The producer timestamp flag is part of what was signed: cleared,
	// the rebuilt request lacks the timestamp and the signature fails.
	flipped := r
	flipped.Flags = provenance.Flags{0, 0, 0}
	if err := provenance.CheckEvents(&flipped, evs, keys); !errors.Is(err, provenance.ErrSignature) || !strings.Contains(err.Error(), "event 5") {
		t.Fatalf("flag cleared: %v", err)
	}
	edited := append([]event.Event(nil), evs...)
	edited[1].Payload = []byte(`{"i":9}`)
	if err := provenance.CheckEvents(&r, edited, keys); !errors.Is(err, provenance.ErrSignature) || !strings.Contains(err.Error(), "event 6") {
		t.Fatalf("payload edited: %v", err)
	}
	if err := provenance.CheckEvents(&r, evs[:2], keys); err == nil {
		t.Fatal("two events for a record of three")
	}
	moved := r
	moved.LastHash = evs[0].Hash
	if err := provenance.CheckEvents(&moved, evs, keys); err == nil || !strings.Contains(err.Error(), "last event hash") {
		t.Fatalf("record bound to another event: %v", err)
	}
	for _, bad := range []func(*provenance.Record){
		func(r *provenance.Record) { r.Sigs = r.Sigs[:2] },
		func(r *provenance.Record) { r.KeyID = "" },
		func(r *provenance.Record) { r.Flags = r.Flags[:1] },
		func(r *provenance.Record) { r.Sigs = [][]byte{{1}, {2}, {3}} },
		func(r *provenance.Record) { r.Count = 0 },
	} {
		c := r
		bad(&c)
		if err := c.CheckShape(); err == nil {
			t.Errorf("malformed record accepted: %+v", c)
		}
	}
}

func TestChainAndSeal(t *testing.T) {
	s, v := key(t, "example.com/audit")
	ps, _ := key(t, "billing.example.com")
	_, a := signed(t, ps, 3, 2)
	_, b := signed(t, ps, 5, 1)
	a.Chain = a.ChainHash(event.Hash{})
	b.Chain = b.ChainHash(a.Chain)

	var c provenance.Chain
	for _, r := range []provenance.Record{a, b} {
		if err := c.Add(&r); err != nil {
			t.Fatal(err)
		}
	}
	if c.Value() != b.Chain || c.LastID() != 5 {
		t.Fatalf("chain at %d = %x", c.LastID(), c.Value())
	}
	seal := provenance.Seal{Origin: "example.com/audit", Size: 5, Chain: c.Value()}
	seal.Root[0] = 7
	note, err := provenance.SignSeal(seal, s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := provenance.OpenSeal(note, v)
	if err != nil || got != seal {
		t.Fatalf("OpenSeal = %+v, %v; want %+v", got, err, seal)
	}
	_, wrong := key(t, "example.com/audit")
	if _, err := provenance.OpenSeal(note, wrong); err == nil {
		t.Fatal("a seal opened with another key")
	}

	// An edited record no longer hashes to its stored chain value.
	edited := a
	edited.AppendedBy = "token:tok_2"
	var c2 provenance.Chain
	if err := c2.Add(&edited); err == nil || !strings.Contains(err.Error(), "events 3-4") {
		t.Fatalf("edited record: %v", err)
	}
	// Recomputing the stored values hides the edit from the chain, not
	// from the seal.
	edited.Chain = edited.ChainHash(event.Hash{})
	b2 := b
	b2.Chain = b2.ChainHash(edited.Chain)
	var c3 provenance.Chain
	if c3.Add(&edited) != nil || c3.Add(&b2) != nil || c3.Value() == seal.Chain {
		t.Fatal("a rewritten chain reached the sealed value")
	}
	// Records out of order, or overlapping.
	var c4 provenance.Chain
	if err := c4.Add(&b); err == nil {
		t.Fatal("the second record accepted first")
	}
	if c4.Add(&a) != nil || c4.Add(&a) == nil {
		t.Fatal("a record accepted twice")
	}
}

func TestFlagsText(t *testing.T) {
	f := provenance.Flags{0, 1, 3}
	b, err := f.MarshalText()
	if err != nil || string(b) != "013" {
		t.Fatalf("%q, %v", b, err)
	}
	var g provenance.Flags
	if err := g.UnmarshalText([]byte("013")); err != nil || string(g) != string(f) {
		t.Fatalf("%v, %v", g, err)
	}
	if err := g.UnmarshalText([]byte("04")); err == nil {
		t.Fatal("flag digit 4 accepted")
	}
}

// TestCheck: the whole check over NDJSON as the server serves it, with
// events no record covers (imported ones) before and after the records.
func TestCheck(t *testing.T) {
	s, v := key(t, "billing.example.com")
	evs, r := signed(t, s, 2, 2)
	// Events 1 and 4 have no record; the chain of events 1-4 is rebuilt
	// around the signed ones.
	all := []event.Event{{ID: 1, Timestamp: "2026-05-15T03:14:14Z", Kind: "other", Source: "billing", Payload: []byte(`{}`)}}
	all = append(all, evs...)
	all = append(all, event.Event{ID: 4, Timestamp: "2026-05-15T03:14:17Z", Kind: "other", Source: "other", Payload: []byte(`{}`)})
	var export strings.Builder
	for i := range all {
		all[i].Hash, _ = all[i].ComputeHash(nil)
		export.Write(append(all[i].AppendJSON(nil), '\n'))
	}
	r.LastHash = all[2].Hash
	r.Chain = r.ChainHash(event.Hash{})
	line, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	seal := provenance.Seal{Size: 4, Chain: r.Chain}
	keys := provenance.Keys([]note.Verifier{v})
	rep, err := provenance.Check(strings.NewReader(string(line)+"\n"), strings.NewReader(export.String()), seal, provenance.CheckOptions{Keys: keys})
	if err != nil || rep.Records != 1 || rep.Events != 2 || rep.Signed != 2 {
		t.Fatalf("Check = %+v, %v", rep, err)
	}
	_, err = provenance.Check(strings.NewReader(string(line)+"\n"), strings.NewReader(export.String()), seal, provenance.CheckOptions{Keys: keys, SignedSources: []string{"billing"}})
	if !errors.Is(err, provenance.ErrSignature) || !strings.Contains(err.Error(), "event 1 of source \"billing\" has no provenance record") {
		t.Fatalf("an unrecorded event of a signed source: %v", err)
	}
	_, err = provenance.Check(strings.NewReader(string(line)+"\n"), strings.NewReader(export.String()), seal, provenance.CheckOptions{Keys: keys, SignedSources: []string{"other"}})
	if !errors.Is(err, provenance.ErrSignature) || !strings.Contains(err.Error(), "event 4 of source \"other\"") {
		t.Fatalf("an unrecorded event after the records: %v", err)
	}
	// Another sealed value: a record dropped or changed.
	_, err = provenance.Check(strings.NewReader(""), strings.NewReader(export.String()), seal, provenance.CheckOptions{})
	if !errors.Is(err, provenance.ErrTampered) {
		t.Fatalf("records missing: %v", err)
	}
}
