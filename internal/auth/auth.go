// Package auth makes and reads audit-stream credentials: random bearer
// tokens stored only as SHA-256 digests, the read-only tokens file, and
// expiry durations. It does no I/O of its own beyond what callers pass in.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/prodsig"
	"github.com/audit-stream/audit-stream/internal/store"
)

// SecretPrefix starts every generated secret, so that secret scanners and
// people recognise one.
const SecretPrefix = "ast_"

// secretBytes is the entropy of a secret: 256 bits.
const secretBytes = 32

// Digest is how a secret is stored and looked up.
func Digest(secret string) [sha256.Size]byte { return sha256.Sum256([]byte(secret)) }

// Equal compares two digests in constant time.
func Equal(a, b [sha256.Size]byte) bool { return subtle.ConstantTimeCompare(a[:], b[:]) == 1 }

// Spec is what a new token is granted.
type Spec struct {
	Name    string
	Roles   []string
	Sources []string
	TTL     time.Duration // 0: never expires
	// SigningKey is a producer verifier key (name+hash+base64): the
	// token's appends must then be signed by it. "" for none.
	SigningKey string
}

// Check validates a spec: known roles, at least one; a producer that is not
// also admin needs at least one source; sources are valid event sources.
func (s Spec) Check() error {
	if len(s.Roles) == 0 {
		return errors.New("a token needs at least one role (producer, reader, admin)")
	}
	for _, r := range s.Roles {
		if !store.ValidRole(r) {
			return fmt.Errorf("unknown role %q (producer, reader, admin)", r)
		}
	}
	if slices.Contains(s.Roles, store.RoleProducer) && !slices.Contains(s.Roles, store.RoleAdmin) && len(s.Sources) == 0 {
		return errors.New("a producer token needs at least one source it may append as")
	}
	for _, src := range s.Sources {
		if src == "" || len([]rune(src)) > event.MaxSourceLen || !validString(src) {
			return fmt.Errorf("source %q: must be 1 to %d characters of valid UTF-8", src, event.MaxSourceLen)
		}
	}
	if s.TTL < 0 {
		return errors.New("expiry must be in the future")
	}
	if len(s.Name) > 256 {
		return errors.New("name: at most 256 characters")
	}
	if s.SigningKey != "" {
		if _, err := prodsig.ParseKey(s.SigningKey); err != nil {
			return err
		}
	}
	return nil
}

func validString(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// New makes a token from spec: a random secret, shown once to the caller,
// and the record to store, which holds only its digest.
func New(spec Spec, now time.Time) (secret string, t store.Token, err error) {
	if err := spec.Check(); err != nil {
		return "", t, err
	}
	var raw [secretBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", t, err
	}
	var idb [6]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", t, err
	}
	secret = SecretPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	t = store.Token{
		ID:      "tok_" + hex.EncodeToString(idb[:]),
		Name:    spec.Name,
		Roles:   slices.Compact(slices.Sorted(slices.Values(spec.Roles))),
		Sources: slices.Compact(slices.Sorted(slices.Values(spec.Sources))),
		Digest:  Digest(secret),
		Created: now.UTC(),

		SigningKey: strings.TrimSpace(spec.SigningKey),
	}
	if spec.TTL > 0 {
		t.Expires = now.Add(spec.TTL).UTC()
	}
	return secret, t, nil
}

// ParseTTL reads an expiry as a duration from now: Go durations ("36h",
// "90m") and whole days ("90d"). "" and "never" mean no expiry.
func ParseTTL(s string) (time.Duration, error) {
	switch s {
	case "", "never", "0":
		return 0, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(d, 10, 32)
		if err != nil || n <= 0 || n > 100*365 {
			return 0, fmt.Errorf("bad expiry %q: want a number of days from 1 to 36500, like 90d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("bad expiry %q: want a positive duration like 90d, 36h or 30m", s)
	}
	return d, nil
}
