package witness

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// vector reads testdata/cosignature-v1.txt: a key pair and a note cosigned
// by transparency-dev/formats.
func vector(t *testing.T) (skey, vkey string, cosigned []byte) {
	t.Helper()
	b, err := os.ReadFile("testdata/cosignature-v1.txt")
	if err != nil {
		t.Fatal(err)
	}
	head, n, ok := bytes.Cut(b, []byte("---\n"))
	if !ok {
		t.Fatal("vector: no ---")
	}
	for _, l := range strings.Split(string(head), "\n") {
		if v, ok := strings.CutPrefix(l, "skey "); ok {
			skey = v
		}
		if v, ok := strings.CutPrefix(l, "vkey "); ok {
			vkey = v
		}
	}
	return skey, vkey, n
}

func TestIndependentVector(t *testing.T) {
	skey, vkey, cosigned := vector(t)
	v, err := NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(cosigned, note.VerifierList(v))
	if err != nil {
		t.Fatalf("their cosignature does not verify with our verifier: %v", err)
	}
	ts, err := Timestamp(n.Sigs[0].Base64)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.VerifierKey(); got != vkey {
		t.Errorf("our verifier key for their private key:\n got %s\nwant %s", got, vkey)
	}
	s.Now = func() time.Time { return ts }
	ours, err := note.Sign(&note.Note{Text: n.Text}, s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours, cosigned) {
		t.Errorf("our cosignature at their timestamp differs:\n%s\nwant\n%s", ours, cosigned)
	}
	// The message is the one the specification spells out.
	want := "cosignature/v1\ntime " + strconv.FormatInt(ts.Unix(), 10) + "\n" + n.Text
	if got := string(Message(uint64(ts.Unix()), []byte(n.Text))); got != want {
		t.Errorf("Message = %q, want %q", got, want)
	}
}

func TestCosignatureRejected(t *testing.T) {
	skey, vkey, cosigned := vector(t)
	v, _ := NewVerifier(vkey)
	s, _ := NewSigner(skey)
	n, err := note.Open(cosigned, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := base64.StdEncoding.DecodeString(n.Sigs[0].Base64)
	sig = sig[4:] // drop the key hash
	body := []byte(n.Text)
	if !v.Verify(body, sig) {
		t.Fatal("the vector does not verify")
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, sig...)) }
	for name, c := range map[string]struct{ body, sig []byte }{
		"other body":      {[]byte(strings.Replace(n.Text, "20852163", "20852164", 1)), sig},
		"other timestamp": {body, mutate(func(b []byte) []byte { b[7]++; return b })},
		"zero timestamp":  {body, mutate(func(b []byte) []byte { binary.BigEndian.PutUint64(b, 0); return b })},
		"bit flipped":     {body, mutate(func(b []byte) []byte { b[20] ^= 1; return b })},
		"short":           {body, sig[:71]},
		"long":            {body, append(append([]byte{}, sig...), 0)},
		"no timestamp":    {body, sig[8:]},
	} {
		if v.Verify(c.body, c.sig) {
			t.Errorf("%s: verified", name)
		}
	}
	// A plain note signature by the same key is not a cosignature: the
	// algorithm byte differs, so the key hash does.
	if s.KeyHash() == binary.BigEndian.Uint32([]byte{0x47, 0xf5, 0x3f, 0x4c}) {
		t.Error("cosignature key hash equals the plain note key hash")
	}
}

func TestKeys(t *testing.T) {
	skey, vkey, err := GenerateKey("witness.example.org/w9")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	if s.VerifierKey() != vkey {
		t.Fatalf("VerifierKey %s, generated %s", s.VerifierKey(), vkey)
	}
	v, err := NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if v.Name() != s.Name() || v.KeyHash() != s.KeyHash() {
		t.Fatal("signer and verifier disagree on name or key hash")
	}
	signed, err := note.Sign(&note.Note{Text: "o\n1\n" + strings.Repeat("A", 43) + "=\n"}, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(signed, note.VerifierList(v)); err != nil {
		t.Fatal(err)
	}
	// A log's own (0x01) verifier key is not a witness key.
	_, logV, _ := note.GenerateKey(rand.Reader, "log.example")
	for name, bad := range map[string]string{
		"log key":      logV,
		"empty":        "",
		"no hash":      "w+AQID",
		"wrong hash":   strings.Replace(vkey, "+", "+0", 1)[:len(vkey)],
		"short key":    "w+00000000+BAEC",
		"bad base64":   "w+00000000+!!!",
		"name with sp": "a b+00000000+" + strings.SplitN(vkey, "+", 3)[2],
	} {
		if _, err := NewVerifier(bad); err == nil {
			t.Errorf("%s: NewVerifier(%q) accepted", name, bad)
		}
	}
	for name, bad := range map[string]string{
		"verifier key": vkey,
		"wrong hash":   strings.Replace(skey, "PRIVATE+KEY+witness.example.org/w9+", "PRIVATE+KEY+witness.example.org/w9+0", 1),
		"other name":   strings.Replace(skey, "/w9+", "/w8+", 1),
		"empty":        "",
	} {
		if _, err := NewSigner(bad); err == nil {
			t.Errorf("%s: NewSigner accepted", name)
		}
	}
	if _, _, err := GenerateKey("a+b"); err == nil {
		t.Error("a name with '+' accepted")
	}
}

func TestSignerClock(t *testing.T) {
	skey, _, _ := GenerateKey("w")
	s, _ := NewSigner(skey)
	s.Now = func() time.Time { return time.Unix(0, 0) }
	if _, err := s.Sign([]byte("x\n")); err == nil {
		t.Error("signed with a zero timestamp, which tlog-witness forbids")
	}
}

func TestCheckQuorum(t *testing.T) {
	var signers []*Signer
	var verifiers []note.Verifier
	for _, n := range []string{"w1", "w2", "w3"} {
		skey, vkey, _ := GenerateKey(n)
		s, _ := NewSigner(skey)
		v, _ := NewVerifier(vkey)
		signers = append(signers, s)
		verifiers = append(verifiers, v)
	}
	body := "log\n5\n" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n"
	sign := func(ss ...*Signer) []byte {
		var ns []note.Signer
		for _, s := range ss {
			ns = append(ns, s)
		}
		b, err := note.Sign(&note.Note{Text: body}, ns...)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	two := sign(signers[0], signers[2])
	if got, err := CheckQuorum(two, verifiers, 2); err != nil || strings.Join(got, ",") != "w1,w3" {
		t.Fatalf("two of three, quorum 2: %v %v", got, err)
	}
	var qe *QuorumError
	if _, err := CheckQuorum(two, verifiers, 3); !errors.As(err, &qe) || len(qe.Valid) != 2 {
		t.Fatalf("two of three, quorum 3: %v", err)
	}
	if _, err := CheckQuorum(sign(signers[1]), verifiers[:1], 1); !errors.As(err, &qe) || len(qe.Others) != 1 {
		t.Fatalf("cosigned only by an untrusted witness: %v", err)
	}
	if _, err := CheckQuorum(two, verifiers, 4); err == nil {
		t.Fatal("quorum beyond the keys given accepted")
	}
	// A cosignature moved onto another checkpoint is a forgery, not a
	// missing signature.
	other := strings.Replace(string(two), "\n5\n", "\n6\n", 1)
	if _, err := CheckQuorum([]byte(other), verifiers, 1); !errors.Is(err, ErrBadCosignature) {
		t.Fatalf("transplanted cosignature: %v", err)
	}
	if _, err := ParseVerifiers([]string{signers[0].VerifierKey(), signers[0].VerifierKey()}); err == nil {
		t.Fatal("the same witness twice accepted: it would count twice")
	}
}

// FuzzNewVerifier: a verifier key either is refused or names a key whose
// hash is the one the text says.
func FuzzNewVerifier(f *testing.F) {
	_, vkey, _ := vectorKeys()
	f.Add(vkey)
	f.Add("w+00000000+BAEC")
	f.Add("a b+00000000+")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := NewVerifier(s)
		if err != nil {
			return
		}
		if !validName(v.Name()) {
			t.Fatalf("accepted name %q", v.Name())
		}
		if !strings.Contains(s, fmt.Sprintf("+%08x+", v.KeyHash())) {
			t.Fatalf("key hash %08x not the one in %q", v.KeyHash(), s)
		}
		if v.Verify([]byte("x\n"), make([]byte, 72)) {
			t.Fatal("an all-zero signature verified")
		}
	})
}

// vectorKeys are the keys of testdata/cosignature-v1.txt, for seeds.
func vectorKeys() (skey, vkey string, err error) {
	b, err := os.ReadFile("testdata/cosignature-v1.txt")
	if err != nil {
		return "", "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "skey "); ok {
			skey = v
		}
		if v, ok := strings.CutPrefix(l, "vkey "); ok {
			vkey = v
		}
	}
	return skey, vkey, nil
}
