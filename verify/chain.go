// Package verify holds the pure verification core of audit-stream: walking
// the hash chain, and (with the Merkle tree) checking proofs and checkpoints.
// The server, the CLI verifier, the witness and the Go client all use it, so
// that there is exactly one definition of "valid".
package verify

import (
	"fmt"

	"github.com/audit-stream/audit-stream/event"
)

// Report is the answer of a chain walk, in the shape GET /verify serves.
type Report struct {
	Valid        bool    `json:"valid"`
	Checked      int64   `json:"checked"`
	FirstBreakAt *int64  `json:"first_break_at"`
	Reason       *string `json:"reason"`
}

// ChainError is the first break found in a chain: the position (1-based, the
// event id it should have had) and the reason, worded exactly as the original
// service worded it so that existing tooling keeps matching on it.
type ChainError struct {
	At     int64
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("chain broken at event #%d: %s", e.At, e.Reason)
}

// Chain checks events one at a time, in order, from event 1. The zero value
// is not usable; call NewChain.
type Chain struct {
	next int64
	prev event.Hash
	buf  []byte
}

// NewChain returns a walker expecting event 1 with the all-zero prev_hash.
func NewChain() *Chain { return &Chain{next: 1} }

// Checked is how many events passed.
func (c *Chain) Checked() int64 { return c.next - 1 }

// Add checks the next event, re-hashing it.
func (c *Chain) Add(e *event.Event) error {
	var h event.Hash
	h, c.buf = e.ComputeHash(c.buf)
	return c.AddHashed(e, h)
}

// AddHashed checks the next event given its recomputed hash, so that callers
// can hash many events in parallel and check the links in order. The checks
// run in the original's order: id, then prev_hash, then hash.
func (c *Chain) AddHashed(e *event.Event, computed event.Hash) error {
	at := c.next
	if e.ID != at {
		return &ChainError{At: at, Reason: fmt.Sprintf("event_id should be %d, got %d", at, e.ID)}
	}
	if e.PrevHash != c.prev {
		return &ChainError{At: at, Reason: fmt.Sprintf("prev_hash mismatch at event #%d", at)}
	}
	if e.Hash != computed {
		return &ChainError{At: at, Reason: fmt.Sprintf("hash mismatch at event #%d", at)}
	}
	c.next++
	c.prev = e.Hash
	return nil
}

// Report turns the outcome of a walk into a Report: err is nil or the
// *ChainError that stopped it.
func (c *Chain) Report(err *ChainError) Report {
	r := Report{Valid: err == nil, Checked: c.Checked()}
	if err != nil {
		at, reason := err.At, err.Reason
		r.FirstBreakAt, r.Reason = &at, &reason
	}
	return r
}
