// Package store defines the durable storage contract of audit-stream. Every
// backend (SQLite, PostgreSQL) implements Store and passes the conformance
// suite in package storetest.
//
// The contract keeps the ledger the only writer: backends never assign ids or
// hashes themselves, they check that what they are given extends the head they
// hold, under their own write lock, so that several stateless instances can
// share one database without forking the chain.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"golang.org/x/mod/sumdb/tlog"
)

var (
	// ErrNotFound is returned by Get for an id not in the log.
	ErrNotFound = errors.New("store: not found")
	// ErrKeyExists is returned by Tx.PutKey for a key already stored.
	ErrKeyExists = errors.New("store: idempotency key exists")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("store: closed")
	// ErrConflict is returned by SwapMeta when the stored value is not the
	// expected previous one: another writer replaced it first.
	ErrConflict = errors.New("store: meta value changed by another writer")
)

// Head is the last event of the log: ID 0 and the zero hash when it is empty.
type Head struct {
	ID   int64
	Hash event.Hash
}

// Record is an event with the Merkle tree hashes its append adds to the tree:
// tlog.StoredHashesForRecordHash of its hash, in stored-hash-index order
// (first the leaf hash, then one hash per completed subtree). Keeping them in
// the event's own row makes the tree exactly as durable as the chain, and a
// crash can never leave the two out of step.
type Record struct {
	event.Event
	Tree []tlog.Hash
}

// Filter selects events; Matches is its reference meaning. Empty Kinds or
// Sources match everything; several values within one field are alternatives
// (OR) and the fields combine with AND. After and Until bound the event ids to
// (After, Until]; Until 0 means no upper bound. TimeFrom and TimeTo bound the
// event's timestamp to [TimeFrom, TimeTo); a zero time is no bound, and an
// event whose timestamp does not parse is outside every time range. Payload
// equalities all hold (AND); Text, if set, is a substring of the canonical
// payload (see TextNeedle).
type Filter struct {
	Kinds   []string
	Sources []string
	After   int64
	Until   int64

	TimeFrom time.Time
	TimeTo   time.Time
	Payload  []PayloadMatch
	Text     string

	// Desc makes Scan deliver events newest first, from Until (or the
	// head) down to After.
	Desc bool
	// MaxScan, if positive, bounds how many events a backend examines
	// one by one for conditions its indexes cannot answer (an unindexed
	// payload path, Text): past it Scan stops with *ScanLimitError.
	MaxScan int
}

// PayloadIndexer is a store that can index payload paths, so that payload
// equality on them is an index lookup rather than a row-by-row check.
// IndexPayload makes exactly the listed dotted paths indexed: it creates
// missing indexes and drops those it made for paths no longer listed.
type PayloadIndexer interface {
	IndexPayload(ctx context.Context, paths []string) error
}

// Tx is the log as seen inside one write transaction. It is valid only during
// the build function that receives it.
type Tx interface {
	// Head is the head as of the start of the transaction; no other writer can
	// move it until the transaction ends.
	Head() Head
	// ReadHashes returns the stored Merkle hashes at the given stored-hash
	// indexes (see tlog.StoredHashIndex). Every index must belong to a
	// record that is already in the log.
	ReadHashes(indexes []int64) ([]tlog.Hash, error)
	// Key returns the idempotency key (scope, key) as committed before
	// this transaction, or ErrNotFound.
	Key(scope, key string) (IdempotencyKey, error)
	// PutKey records an idempotency key unless one with the same scope and
	// key exists, in which case it writes nothing and returns ErrKeyExists
	// (one statement on the common path, where the key is new). The key
	// becomes durable with the
	// records the build function returns, and is discarded with them.
	PutKey(k IdempotencyKey) error
	ProvenanceTx
}

// BuildFunc turns the head into the records to append. It must return
// records whose ids continue the head without a gap and whose first prev_hash
// is the head's hash. It may be called again (with a newer head) if the
// backend must retry the transaction.
type BuildFunc func(tx Tx) ([]Record, error)

// Store is the durable log. All methods are safe for concurrent use.
type Store interface {
	Tokens
	Idempotency
	Provenances

	// Head returns the last committed event. Backends that share a database
	// with other instances read it from the database.
	Head(ctx context.Context) (Head, error)

	// Append runs build inside a write transaction and commits what it
	// returns. It returns nil only once the records are durable: committed
	// and fsynced, surviving kill -9 and power loss. On error nothing from
	// this call is visible. Records that do not extend the head are refused
	// with an error and not written.
	Append(ctx context.Context, build BuildFunc) ([]Record, error)

	// Get returns the event with the given id, or ErrNotFound.
	Get(ctx context.Context, id int64) (event.Event, error)

	// Latest returns the last limit events matching f, oldest first.
	Latest(ctx context.Context, f Filter, limit int) ([]event.Event, error)

	// Scan calls fn for each event matching f in ascending id order
	// (descending with f.Desc), at most
	// limit of them (limit <= 0: no limit), without holding them all in
	// memory. The *event.Event is reused between calls, so fn must copy the
	// struct to keep it; its Payload, though, is fresh for every event and
	// may be kept without copying (streaming a large log copies no payload
	// twice). An error from fn stops the scan and is returned.
	Scan(ctx context.Context, f Filter, limit int, fn func(*event.Event) error) error

	// ReadHashes returns stored Merkle hashes by stored-hash index, as Tx does.
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)

	// Meta returns a value stored with SetMeta or SwapMeta, or ErrNotFound.
	Meta(ctx context.Context, key string) ([]byte, error)
	// SetMeta durably stores a small value, replacing whatever is there.
	SetMeta(ctx context.Context, key string, value []byte) error
	// SwapMeta durably replaces the value of key with value only if the
	// stored value is exactly old (old nil: only if there is none), in one
	// atomic step across every instance sharing the storage; otherwise it
	// writes nothing and returns ErrConflict. Checkpoints and the log id
	// are published with it, so two instances can never both replace the
	// same checkpoint.
	SwapMeta(ctx context.Context, key string, old, value []byte) error

	// WatchHead returns a channel that receives the head after every
	// commit by any writer sharing the storage, this store included, in
	// commit order. Heads may be coalesced (a slow receiver sees only the
	// newest) but never go backwards. After the backend lost track of
	// other writers (a dropped database connection) it sends the head as
	// it reads it once it is back. The channel is closed when ctx ends or
	// the store closes.
	WatchHead(ctx context.Context) <-chan Head

	// Close releases the store. It does not wait for in-flight readers
	// beyond what the backend needs for a clean shutdown.
	Close() error
}

// RecordOfHash maps a stored-hash index to the id of the event whose append
// stored it and the position of that hash in the event's Tree. Backends that
// keep Tree beside the event use it to serve ReadHashes.
func RecordOfHash(index int64) (eventID int64, pos int) {
	level, n := tlog.SplitStoredHashIndex(index)
	// The hash at (level, n) is created by appending the last leaf of the
	// subtree it covers: leaf ((n+1) << level) - 1, which is event id
	// (n+1) << level, and it is that append's level-th stored hash.
	return (n + 1) << level, level
}

// CheckExtends reports whether recs may be appended after head: consecutive
// ids starting at head.ID+1 and a prev_hash chain that starts at head.Hash.
func CheckExtends(head Head, recs []Record) error {
	want, prev := head.ID+1, head.Hash
	for i := range recs {
		r := &recs[i]
		if r.ID != want {
			return &SequenceError{Want: want, Got: r.ID}
		}
		if r.PrevHash != prev {
			return &SequenceError{Want: want, Got: r.ID, PrevHash: true}
		}
		want, prev = want+1, r.Hash
	}
	return nil
}

// SequenceError reports a batch that does not extend the head: a bug in the
// caller or another writer that the backend failed to exclude.
type SequenceError struct {
	Want, Got int64
	PrevHash  bool
}

func (e *SequenceError) Error() string {
	if e.PrevHash {
		return fmt.Sprintf("store: prev_hash of event %d does not match the head", e.Got)
	}
	return fmt.Sprintf("store: append would not extend the head: want event %d, got %d", e.Want, e.Got)
}
