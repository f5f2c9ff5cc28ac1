package prodsig

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"golang.org/x/mod/sumdb/note"
)

func newKey(t testing.TB, name string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ParseKey(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func TestSignVerify(t *testing.T) {
	s, v := newKey(t, "billing")
	_, other := newKey(t, "billing")
	reqs := []event.Request{
		{Kind: "login", Source: "billing", Payload: []byte(`{"user":"u-1"}`)},
		{Kind: "login", Source: "billing", Payload: []byte(`{"user":"u-1"}`), Timestamp: "2026-05-15T03:14:15Z"},
	}
	hv, err := Sign(s, reqs)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHeader(hv)
	if err != nil {
		t.Fatal(err)
	}
	if h.KeyID != KeyID(v.Name(), v.KeyHash()) || len(h.Sigs) != 2 {
		t.Fatalf("header %+v", h)
	}
	for i := range reqs {
		if !Verify(v, &reqs[i], h.Sigs[i]) {
			t.Errorf("signature %d does not verify", i)
		}
		if Verify(other, &reqs[i], h.Sigs[i]) {
			t.Errorf("signature %d verifies under another key", i)
		}
	}
	// The timestamp is signed when sent: one request's signature is not
	// the other's, and each field change breaks it.
	if Verify(v, &reqs[1], h.Sigs[0]) {
		t.Error("signature without timestamp verifies with one")
	}
	for _, mut := range []func(r *event.Request){
		func(r *event.Request) { r.Kind = "logout" },
		func(r *event.Request) { r.Source = "billing2" },
		func(r *event.Request) { r.Payload = []byte(`{"user":"u-2"}`) },
		func(r *event.Request) { r.Timestamp = "2026-05-15T03:14:16Z" },
	} {
		r := reqs[1]
		mut(&r)
		if Verify(v, &r, h.Sigs[1]) {
			t.Errorf("signature verifies for changed request %+v", r)
		}
	}
	// A stored event rebuilds the same message.
	e := event.Event{ID: 9, Kind: "login", Source: "billing", Payload: []byte(`{"user":"u-1"}`), Timestamp: "2026-05-15T03:14:15Z"}
	r := RequestOf(&e, true)
	if !Verify(v, &r, h.Sigs[1]) {
		t.Error("stored event does not rebuild the signed message")
	}
	if got := string(Message(&reqs[0])); got != MessagePrefix+`{"kind":"login","payload":{"user":"u-1"},"source":"billing"}` {
		t.Errorf("message %q", got)
	}
}

func TestParseHeaderRefusals(t *testing.T) {
	sig := base64.StdEncoding.EncodeToString(make([]byte, 64))
	short := base64.StdEncoding.EncodeToString(make([]byte, 63))
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "want name=value"},
		{"no keyid", "sig=" + sig, "must start with keyid="},
		{"no sig", "keyid=billing+01234567", "no sig="},
		{"keyid twice", "keyid=billing+01234567, keyid=billing+01234567, sig=" + sig, "keyid given twice"},
		{"unknown param", "keyid=billing+01234567, alg=ed25519, sig=" + sig, "unknown parameter"},
		{"keyid without hash", "keyid=billing, sig=" + sig, "keyid: want name+hash"},
		{"keyid upper hex", "keyid=billing+0123456A, sig=" + sig, "8 lowercase hex"},
		{"keyid with space", "keyid=bil ling+01234567, sig=" + sig, "printable ASCII"},
		{"short sig", "keyid=billing+01234567, sig=" + short, "64-byte"},
		{"not base64", "keyid=billing+01234567, sig=!!!!", "standard base64"},
		{"url base64", "keyid=billing+01234567, sig=" + strings.ReplaceAll(strings.ReplaceAll(sig, "A", "-"), "=", ""), "standard base64"},
		{"empty item", "keyid=billing+01234567,, sig=" + sig, "want name=value"},
		{"too many", "keyid=billing+01234567" + strings.Repeat(", sig="+sig, MaxSignatures+1), "signatures"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseHeader(tc.in)
			if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseHeader(%.80q) = %v, want malformed %q", tc.in, err, tc.want)
			}
		})
	}
	h, err := ParseHeader(" keyid=billing+01234567 ,\tsig=" + sig + " ")
	if err != nil || len(h.Sigs) != 1 {
		t.Fatalf("spaces around items: %v", err)
	}
}

// FuzzParseHeader checks that whatever parses formats back to itself (one
// spelling per header) and never panics.
func FuzzParseHeader(f *testing.F) {
	sig := base64.StdEncoding.EncodeToString(make([]byte, 64))
	f.Add("keyid=billing+01234567, sig=" + sig)
	f.Add("keyid=billing+01234567, sig=" + sig + ", sig=" + sig)
	f.Add("keyid=a+00000000,sig=" + sig)
	f.Add("sig=" + sig)
	f.Add("keyid=,sig=")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHeader(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		again, err := ParseHeader(h.String())
		if err != nil || again.String() != h.String() {
			t.Fatalf("%q parsed as %q which does not round-trip: %v", s, h.String(), err)
		}
		for _, s := range h.Sigs {
			if len(s) != SignatureSize {
				t.Fatalf("signature of %d bytes", len(s))
			}
		}
	})
}
