package store

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Role names a set of endpoints a token may call.
const (
	RoleProducer = "producer" // append, only with the token's sources
	RoleReader   = "reader"   // the read endpoints
	RoleAdmin    = "admin"    // everything, including token management
)

// ValidRole reports whether r is one of the roles above.
func ValidRole(r string) bool {
	return r == RoleProducer || r == RoleReader || r == RoleAdmin
}

// Token is an API token as stored: never its secret, only the secret's
// SHA-256 digest.
type Token struct {
	ID      string
	Name    string
	Roles   []string
	Sources []string // the sources a producer may append as
	Digest  [sha256.Size]byte
	Created time.Time
	Expires time.Time // zero: never
	Revoked time.Time // zero: not revoked
	// SigningKey is the producer's Ed25519 verifier key (name+hash+base64,
	// as audit-stream keygen prints it), or "": events appended with this
	// token must then carry its Audit-Signature.
	SigningKey string
}

// Has reports whether the token was granted role.
func (t *Token) Has(role string) bool { return slices.Contains(t.Roles, role) }

// Usable reports why the token may not be used at now: "revoked",
// "expired", or "" when it may.
func (t *Token) Usable(now time.Time) string {
	switch {
	case !t.Revoked.IsZero():
		return "revoked"
	case !t.Expires.IsZero() && !now.Before(t.Expires):
		return "expired"
	}
	return ""
}

// Tokens stores API tokens. Tokens are never deleted, only revoked, so that
// a token id in an old log line always resolves.
type Tokens interface {
	// CreateToken stores t as it is (times to the nanosecond, in UTC). It
	// refuses, storing nothing, a token without an ID and one whose ID or
	// Digest is already stored.
	CreateToken(ctx context.Context, t Token) error
	// ListTokens returns every token, revoked ones included, by creation
	// time, then id.
	ListTokens(ctx context.Context) ([]Token, error)
	// RevokeToken marks the token revoked at the given time; revoking a
	// revoked token keeps the first time. ErrNotFound for an unknown id.
	RevokeToken(ctx context.Context, id string, at time.Time) error
	// TokenByDigest returns the token whose secret has this SHA-256
	// digest, revoked or not, or ErrNotFound. A token created or revoked
	// through audit-stream, by any store sharing the storage (another
	// instance, or the token command in another process), counts from the
	// next call: a backend may cache lookups only behind a check that sees
	// every such change. An edit made behind audit-stream's back (a SQL
	// shell) may go unseen by such a cache until restart.
	TokenByDigest(ctx context.Context, digest [sha256.Size]byte) (Token, error)
	// HasTokens reports whether any token was ever created, with the same
	// visibility as TokenByDigest; since tokens are never deleted, a
	// backend may remember a true answer.
	HasTokens(ctx context.Context) (bool, error)
}

// TokenColumns are the columns of the tokens table of the SQL backends, in
// the order of TokenRow's fields.
const TokenColumns = "id, name, roles, sources, digest, created, expires, revoked, signing_key"

// TokenRow is a token as the SQL backends store it: roles comma-separated
// (no role name holds a comma), sources a JSON array (a source may hold
// anything), times RFC 3339 UTC text with nanoseconds, readable in a SQL
// shell, and NULL for a zero time; the signing key NULL for none.
type TokenRow struct {
	ID, Name, Roles, Sources  string
	Digest                    []byte
	Created, Expires, Revoked *string
	SigningKey                *string
}

const tokenTimeLayout = time.RFC3339Nano

// Row returns t in the stored form.
func (t *Token) Row() (TokenRow, error) {
	sources := []byte("[]")
	if t.Sources != nil {
		var err error
		if sources, err = json.Marshal(t.Sources); err != nil {
			return TokenRow{}, err
		}
	}
	return TokenRow{
		ID: t.ID, Name: t.Name, Roles: strings.Join(t.Roles, ","), Sources: string(sources), Digest: t.Digest[:],
		Created: FormatTokenTime(t.Created), Expires: FormatTokenTime(t.Expires), Revoked: FormatTokenTime(t.Revoked),
		SigningKey: nullString(t.SigningKey),
	}, nil
}

// Token reads a stored token back.
func (r *TokenRow) Token() (Token, error) {
	t := Token{ID: r.ID, Name: r.Name}
	if r.SigningKey != nil {
		t.SigningKey = *r.SigningKey
	}
	if r.Roles != "" {
		t.Roles = strings.Split(r.Roles, ",")
	}
	if err := json.Unmarshal([]byte(r.Sources), &t.Sources); err != nil {
		return t, fmt.Errorf("token %s sources: %w", t.ID, err)
	}
	if len(r.Digest) != sha256.Size {
		return t, fmt.Errorf("token %s: digest of %d bytes", t.ID, len(r.Digest))
	}
	copy(t.Digest[:], r.Digest)
	for _, f := range []struct {
		name string
		from *string
		to   *time.Time
	}{{"created", r.Created, &t.Created}, {"expires", r.Expires, &t.Expires}, {"revoked", r.Revoked, &t.Revoked}} {
		if f.from == nil {
			continue
		}
		v, err := time.Parse(tokenTimeLayout, *f.from)
		if err != nil {
			return t, fmt.Errorf("token %s %s: %w", t.ID, f.name, err)
		}
		*f.to = v
	}
	return t, nil
}

// FormatTokenTime is a token time in the stored form: nil for a zero time.
func FormatTokenTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(tokenTimeLayout)
	return &s
}

// Dest returns the scan destinations of the row's fields, in the order of
// TokenColumns.
func (r *TokenRow) Dest() []any {
	return []any{&r.ID, &r.Name, &r.Roles, &r.Sources, &r.Digest, &r.Created, &r.Expires, &r.Revoked, &r.SigningKey}
}

// Args returns the row's fields as statement arguments, in the order of
// TokenColumns.
func (r *TokenRow) Args() []any {
	return []any{r.ID, r.Name, r.Roles, r.Sources, r.Digest, r.Created, r.Expires, r.Revoked, r.SigningKey}
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// IdempotencyKey is the durable record of an append made with an
// Idempotency-Key: which events it wrote, and a digest of the request, so a
// retry can be told apart from a reuse of the key for another request.
type IdempotencyKey struct {
	Scope      string // the token id, or the source when auth is off
	Key        string
	BodyDigest [sha256.Size]byte
	FirstID    int64 // the first event the request wrote
	Count      int64 // how many consecutive events it wrote
	Created    time.Time
}

// Idempotency is the part of the store that keeps idempotency keys outside
// a write transaction: reads and expiry. Keys are written only by Tx.PutKey,
// in the transaction that writes their events.
type Idempotency interface {
	// PruneKeys deletes the keys created before the given time and
	// returns how many it deleted.
	PruneKeys(ctx context.Context, before time.Time) (int64, error)
}
