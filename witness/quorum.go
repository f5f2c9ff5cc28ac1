package witness

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// QuorumError reports a checkpoint that fewer witnesses than required
// cosigned with a key the verifier trusts.
type QuorumError struct {
	Want  int
	Valid []string // the names of the trusted witnesses that did cosign
	// Others are the signature lines' names that no trusted witness key
	// matched (the log's own among them).
	Others []string
}

func (e *QuorumError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "checkpoint has %d valid cosignature(s) from trusted witnesses, the quorum is %d", len(e.Valid), e.Want)
	if len(e.Valid) > 0 {
		fmt.Fprintf(&b, " (cosigned by %s)", strings.Join(e.Valid, ", "))
	}
	if len(e.Others) > 0 {
		fmt.Fprintf(&b, "; other signatures, not from a trusted witness key: %s", strings.Join(e.Others, ", "))
	}
	return b.String()
}

// ErrBadCosignature reports a signature line that names a trusted witness
// key but does not verify: a forged or corrupted cosignature, never a
// witness that merely did not sign.
var ErrBadCosignature = errors.New("a cosignature from a trusted witness key does not verify")

// CheckQuorum checks the cosignatures on a signed checkpoint note: at least
// quorum distinct witnesses among witnesses must have cosigned it. It does
// not check the log's own signature (verify.OpenCheckpoint does: the two
// checks are independent and both are needed). It returns the names of the
// witnesses whose cosignature verified.
func CheckQuorum(signed []byte, witnesses []note.Verifier, quorum int) ([]string, error) {
	if quorum > len(witnesses) {
		return nil, fmt.Errorf("quorum %d is more than the %d witness keys given", quorum, len(witnesses))
	}
	valid, others, err := Cosigners(signed, witnesses)
	if err != nil {
		return nil, err
	}
	if len(valid) < quorum {
		return valid, &QuorumError{Want: quorum, Valid: valid, Others: others}
	}
	return valid, nil
}

// Cosigners returns the names of the witnesses among witnesses whose
// cosignature on signed verifies, and the names of the other signature
// lines. A line that matches a witness key but does not verify is an error.
func Cosigners(signed []byte, witnesses []note.Verifier) (valid, others []string, err error) {
	if len(witnesses) == 0 {
		n, err := note.Open(signed, note.VerifierList())
		var un *note.UnverifiedNoteError
		if errors.As(err, &un) {
			n, err = un.Note, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("cosigned checkpoint: %w", err)
		}
		return nil, sigNames(n.UnverifiedSigs), nil
	}
	n, err := note.Open(signed, note.VerifierList(witnesses...))
	var un *note.UnverifiedNoteError
	var bad *note.InvalidSignatureError
	switch {
	case errors.As(err, &un):
		return nil, sigNames(un.Note.UnverifiedSigs), nil
	case errors.As(err, &bad):
		return nil, nil, fmt.Errorf("%w: %s (key hash %08x)", ErrBadCosignature, bad.Name, bad.Hash)
	case err != nil:
		return nil, nil, fmt.Errorf("cosigned checkpoint: %w", err)
	}
	// Two keys with one name count once: a quorum counts witnesses.
	seen := map[string]bool{}
	for _, s := range n.Sigs {
		if !seen[s.Name] {
			seen[s.Name] = true
			valid = append(valid, s.Name)
		}
	}
	sort.Strings(valid)
	return valid, sigNames(n.UnverifiedSigs), nil
}

func sigNames(sigs []note.Signature) []string {
	var out []string
	for _, s := range sigs {
		out = append(out, s.Name)
	}
	return out
}

// ParseVerifiers parses witness verifier keys; two keys may not share a
// name, so that a quorum counts distinct witnesses.
func ParseVerifiers(vkeys []string) ([]note.Verifier, error) {
	var out []note.Verifier
	names := map[string]bool{}
	for _, k := range vkeys {
		v, err := NewVerifier(k)
		if err != nil {
			return nil, err
		}
		if names[v.Name()] {
			return nil, fmt.Errorf("two witness keys named %q: a quorum counts distinct witnesses", v.Name())
		}
		names[v.Name()] = true
		out = append(out, v)
	}
	return out, nil
}
