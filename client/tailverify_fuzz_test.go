package client

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/note"
)

// FuzzVerifierCheckpoint feeds a verifying tail checkpoint frames a hostile
// server could send: whatever they hold, the verifier must answer with an
// error or a consistent state, never panic, and never yield an event that
// a correctly signed tree does not cover.
func FuzzVerifierCheckpoint(f *testing.F) {
	skey, vkey, err := note.GenerateKey(nil, "fuzz.example/log")
	if err != nil {
		f.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	// Five chained events, and the honest checkpoint of three of them.
	var evs []event.Event
	var tree verify.Tree
	var prev event.Hash
	for i := int64(1); i <= 5; i++ {
		e := event.Event{ID: i, Timestamp: "2026-01-01T00:00:00+00:00", Kind: "other", Source: "s", Payload: []byte(`{}`), PrevHash: prev}
		e.Hash, _ = e.ComputeHash(nil)
		prev = e.Hash
		evs = append(evs, e)
		if i <= 3 {
			tree.Add(e.Hash)
		}
	}
	signed, _ := verify.SignCheckpoint(verify.Checkpoint{Origin: "fuzz.example/log", Size: 3, Hash: tree.Root()}, signer)
	frame := func(size, from int64, proof []string, n string) []byte {
		b, _ := json.Marshal(map[string]any{"tree_size": size, "from": from, "proof": proof, "checkpoint": n})
		return b
	}
	f.Add(frame(3, 0, nil, string(signed)))
	f.Add(frame(3, 2, []string{"00"}, string(signed)))
	f.Add(frame(3, 5, nil, string(signed)))
	f.Add(frame(-1, -7, []string{}, "x\n"))
	f.Add([]byte(`{"tree_size":3}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		vf, err := newVerifier(nil, TailVerify{LogKeys: []string{vkey}}, func(*event.Event) bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		if err := vf.position(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if err := vf.event(e); err != nil {
				t.Fatal(err)
			}
		}
		out, err := vf.checkpoint(context.Background(), data)
		if err != nil {
			if len(out) != 0 {
				t.Fatal("events yielded with an error")
			}
			return
		}
		// Only the honest checkpoint can be accepted, and it covers
		// exactly events 1-3.
		if vf.v != 3 || len(out) != 3 || vf.tree.Root() != tree.Root() || len(vf.held) != 2 {
			t.Fatalf("accepted %q: verified %d, yielded %d", data, vf.v, len(out))
		}
	})
}
