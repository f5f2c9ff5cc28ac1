package ledger

import (
	"errors"
	"fmt"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/provenance"
)

// Stamp is what the caller knows of a request's provenance; the ledger
// completes it into a provenance.Record (ids, the last event's hash, the
// chain) inside the append transaction.
type Stamp struct {
	AppendedBy string
	ReceivedAt string
	Flags      provenance.Flags // one per request
	KeyID      string
	Sigs       [][]byte // one per request, or none
}

func (s *Stamp) record(first, count int64, last event.Hash) provenance.Record {
	return provenance.Record{
		FirstID: first, Count: count, AppendedBy: s.AppendedBy, ReceivedAt: s.ReceivedAt,
		Flags: s.Flags, KeyID: s.KeyID, Sigs: s.Sigs, LastHash: last,
	}
}

// ReplayError refuses a signed request whose signature the log already
// holds: an Ed25519 signature is deterministic, so the same signature is
// the same request, captured and sent again.
type ReplayError struct{ EventID int64 }

func (e *ReplayError) Error() string {
	return fmt.Sprintf("this signed request was already appended (event %d carries the same producer signature): "+
		"a signed request is appended once; to retry safely send it with an Idempotency-Key, and to append two equal events "+
		"sign them with different timestamps or a nonce in the payload", e.EventID)
}

// checkReplay runs inside the append transaction, before the request's
// idempotency key is claimed. It reports whether p is refused or answered
// as a replay instead of appended: a signature already stored (before this
// transaction, or earlier in this group) is a replay, answered with the
// stored events when p carries the idempotency key of the request that
// stored them, and refused otherwise. The lookup and the write are in one
// transaction under the store's write lock, so two instances or two
// requests racing with the same signature append it once.
func (l *Ledger) checkReplay(tx store.Tx, p *pending, group map[string]int64) (bool, error) {
	st := p.opt.Stamp
	owner := int64(0)
	for i, sig := range st.Sigs {
		if id, ok := group[string(sig)]; ok {
			owner = id
			break
		}
		for _, other := range st.Sigs[:i] {
			if string(other) == string(sig) {
				// The same signature twice in one request would break
				// the signatures table's key, and the whole group
				// with it; the HTTP layer refuses it first.
				p.fail = errors.New("ledger: one signed request carries the same producer signature twice")
				return true, nil
			}
		}
	}
	if owner == 0 {
		var err error
		if owner, err = tx.SignatureOwner(st.Sigs); err != nil {
			return false, err
		}
	}
	if owner == 0 {
		return false, nil
	}
	if p.opt.IdempotencyKey != "" {
		k, err := tx.Key(p.opt.Scope, p.opt.IdempotencyKey)
		switch {
		case err == nil && k.BodyDigest == p.opt.BodyDigest:
			p.replay = &k
			return true, nil
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return false, err
		}
	}
	p.fail = &ReplayError{EventID: owner}
	return true, nil
}
