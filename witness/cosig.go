// Package witness speaks the C2SP transparency-log witness protocols: Ed25519
// cosignatures (c2sp.org/tlog-cosignature, cosignature/v1), the
// add-checkpoint request of c2sp.org/tlog-witness and a client that submits
// it, and the check a verifier makes of a cosigned checkpoint: enough
// witnesses it trusts vouch for it.
//
// golang.org/x/mod/sumdb/note knows only the log's own Ed25519 signatures
// (algorithm 0x01); a cosignature is algorithm 0x04 with a timestamped
// message, so its Signer and Verifier are here, shaped as note.Signer and
// note.Verifier so that note.Sign and note.Open handle them like any other.
package witness

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

const (
	algEd25519       = 0x01 // a plain note key, as note.GenerateKey writes it
	algCosignatureV1 = 0x04 // c2sp.org/tlog-cosignature, Ed25519
)

// Message is the byte string an Ed25519 cosignature/v1 signs: a header
// line, the timestamp line, then the checkpoint body with its final newline
// and without signature lines.
func Message(timestamp uint64, body []byte) []byte {
	b := make([]byte, 0, 40+len(body))
	b = append(b, "cosignature/v1\ntime "...)
	b = strconv.AppendUint(b, timestamp, 10)
	b = append(b, '\n')
	return append(b, body...)
}

// keyHash is the key ID of a cosigner: the first four bytes of
// SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key), the same construction as a note
// key's with the cosignature algorithm byte.
func keyHash(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', algCosignatureV1})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// validName is note's rule for key names: non-empty, printable, no spaces
// and no '+'.
func validName(name string) bool {
	if name == "" || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if r == '+' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// Signer makes cosignature/v1 signatures. It is a note.Signer: note.Sign
// with it appends a cosignature line.
type Signer struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
	// Now is the clock of the timestamps; time.Now when nil.
	Now func() time.Time
}

// NewSigner parses a note private key, PRIVATE+KEY+name+hash+base64, whose
// key material is an Ed25519 seed: algorithm 0x01 (as `audit-stream keygen`
// and note.GenerateKey write it) or 0x04 (a key written for cosigning). The
// hash field is checked against the key it names.
func NewSigner(skey string) (*Signer, error) {
	skey = strings.TrimSpace(skey)
	priv, ok := strings.CutPrefix(skey, "PRIVATE+KEY+")
	if !ok {
		return nil, errors.New("witness key: not a note private key (want PRIVATE+KEY+name+hash+base64)")
	}
	name, rest, ok1 := strings.Cut(priv, "+")
	hash16, key64, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 || !validName(name) || len(hash16) != 8 {
		return nil, errors.New("witness key: malformed note private key")
	}
	hash, err1 := strconv.ParseUint(hash16, 16, 32)
	raw, err2 := base64.StdEncoding.Strict().DecodeString(key64)
	if err1 != nil || err2 != nil || len(raw) != 1+ed25519.SeedSize {
		return nil, errors.New("witness key: malformed note private key")
	}
	if raw[0] != algEd25519 && raw[0] != algCosignatureV1 {
		return nil, fmt.Errorf("witness key: algorithm 0x%02x is not Ed25519", raw[0])
	}
	key := ed25519.NewKeyFromSeed(raw[1:])
	// The hash in the file is of whichever algorithm it was written
	// for; check it against that one, then sign under 0x04's.
	pub := key.Public().(ed25519.PublicKey)
	want := keyHash(name, pub)
	if raw[0] == algEd25519 {
		want = noteKeyHash(name, pub)
	}
	if uint32(hash) != want {
		return nil, errors.New("witness key: the key hash does not match the key")
	}
	return &Signer{name: name, hash: keyHash(name, pub), key: key}, nil
}

// noteKeyHash is the key hash of a plain (0x01) note key.
func noteKeyHash(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', algEd25519})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// GenerateKey returns a new cosigner key named name: the private key (a
// note private key with algorithm 0x04) and its verifier key.
func GenerateKey(name string) (skey, vkey string, err error) {
	if !validName(name) {
		return "", "", fmt.Errorf("witness key: invalid name %q (no spaces, no '+')", name)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	h := keyHash(name, pub)
	skey = fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", name, h,
		base64.StdEncoding.EncodeToString(append([]byte{algCosignatureV1}, priv.Seed()...)))
	return skey, verifierKey(name, pub), nil
}

func verifierKey(name string, pub ed25519.PublicKey) string {
	return fmt.Sprintf("%s+%08x+%s", name, keyHash(name, pub),
		base64.StdEncoding.EncodeToString(append([]byte{algCosignatureV1}, pub...)))
}

// Name is the cosigner's name.
func (s *Signer) Name() string { return s.name }

// KeyHash is the cosigner's key ID.
func (s *Signer) KeyHash() uint32 { return s.hash }

// VerifierKey is the cosigner's verifier key, name+hash+base64(0x04 ‖ key),
// the one logs and verifiers are configured with.
func (s *Signer) VerifierKey() string {
	return verifierKey(s.name, s.key.Public().(ed25519.PublicKey))
}

// Sign signs a checkpoint body: the timestamp (now, in seconds) then the
// Ed25519 signature of Message(timestamp, body).
func (s *Signer) Sign(body []byte) ([]byte, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	t := now().Unix()
	if t <= 0 {
		// The witness protocol forbids a zero timestamp.
		return nil, fmt.Errorf("cosign: clock reads %d, not a time after 1970", t)
	}
	sig := make([]byte, 8, 8+ed25519.SignatureSize)
	binary.BigEndian.PutUint64(sig, uint64(t))
	return append(sig, ed25519.Sign(s.key, Message(uint64(t), body))...), nil
}

// Verifier checks cosignature/v1 signatures. It is a note.Verifier.
type Verifier struct {
	name string
	hash uint32
	pub  ed25519.PublicKey
}

// NewVerifier parses a cosigner's verifier key, name+hash+base64 of the
// algorithm byte 0x04 and the 32-byte Ed25519 public key.
func NewVerifier(vkey string) (*Verifier, error) {
	vkey = strings.TrimSpace(vkey)
	name, rest, ok1 := strings.Cut(vkey, "+")
	hash16, key64, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 || !validName(name) || len(hash16) != 8 {
		return nil, fmt.Errorf("witness verifier key %q: want name+hash+base64", vkey)
	}
	hash, err1 := strconv.ParseUint(hash16, 16, 32)
	raw, err2 := base64.StdEncoding.Strict().DecodeString(key64)
	if err1 != nil || err2 != nil || len(raw) != 1+ed25519.PublicKeySize {
		return nil, fmt.Errorf("witness verifier key %q: malformed", vkey)
	}
	if raw[0] != algCosignatureV1 {
		return nil, fmt.Errorf("witness verifier key %q: algorithm 0x%02x, want 0x04 (an Ed25519 cosignature/v1 key; a log's own key is 0x01)", vkey, raw[0])
	}
	pub := ed25519.PublicKey(raw[1:])
	if uint32(hash) != keyHash(name, pub) {
		return nil, fmt.Errorf("witness verifier key %q: the key hash does not match the key", vkey)
	}
	return &Verifier{name: name, hash: uint32(hash), pub: pub}, nil
}

// Name is the cosigner's name.
func (v *Verifier) Name() string { return v.name }

// KeyHash is the cosigner's key ID.
func (v *Verifier) KeyHash() uint32 { return v.hash }

// Verify checks a cosignature (timestamp ‖ Ed25519 signature) over a
// checkpoint body.
func (v *Verifier) Verify(body, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	if t == 0 || t > 1<<63-1 {
		return false
	}
	return ed25519.Verify(v.pub, Message(t, body), sig[8:])
}

// Timestamp is the time a cosignature line's signature (its base64, as in
// note.Signature.Base64) was made.
func Timestamp(sigBase64 string) (time.Time, error) {
	raw, err := base64.StdEncoding.DecodeString(sigBase64)
	if err != nil || len(raw) != 4+8+ed25519.SignatureSize {
		return time.Time{}, errors.New("not a cosignature/v1 signature")
	}
	return time.Unix(int64(binary.BigEndian.Uint64(raw[4:])), 0), nil
}

var _ note.Signer = (*Signer)(nil)
var _ note.Verifier = (*Verifier)(nil)
