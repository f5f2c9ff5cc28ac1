package store

import (
	"context"
	"crypto/sha256"
	"slices"
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
	// CreateToken stores t. Its ID and Digest must be unique.
	CreateToken(ctx context.Context, t Token) error
	// ListTokens returns every token, revoked ones included, oldest first.
	ListTokens(ctx context.Context) ([]Token, error)
	// RevokeToken marks the token revoked at the given time; revoking a
	// revoked token keeps the first time. ErrNotFound for an unknown id.
	RevokeToken(ctx context.Context, id string, at time.Time) error
	// TokenByDigest returns the token whose secret has this SHA-256
	// digest, revoked or not, or ErrNotFound. A token created or revoked
	// through any store sharing the storage (another instance, or the
	// token command in another process) counts from the next call: a
	// backend may cache lookups only behind a check that sees every such
	// change.
	TokenByDigest(ctx context.Context, digest [sha256.Size]byte) (Token, error)
	// HasTokens reports whether any token was ever created, with the same
	// visibility as TokenByDigest.
	HasTokens(ctx context.Context) (bool, error)
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
