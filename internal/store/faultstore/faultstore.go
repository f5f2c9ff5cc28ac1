// Package faultstore wraps a real store.Store and makes chosen operations
// fail on demand, so that the failure paths of the ledger, the checkpointer
// and the HTTP layer can be tested against a real backend: a disk that fills
// up, a commit whose acknowledgement is lost, a scan that breaks half-way.
//
// Faults are armed and healed at run time and are safe to change while the
// store is in use. Everything not armed passes straight to the wrapped store.
package faultstore

import (
	"context"
	"fmt"
	"sync"
	"syscall"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
)

// Op is an operation that can be made to fail.
type Op int

const (
	// AppendBeforeCommit fails Append without calling the wrapped store:
	// nothing is written, as when the disk is full.
	AppendBeforeCommit Op = iota
	// AppendAfterCommit calls the wrapped store's Append and, once it has
	// committed, returns the error instead of the records: the write is
	// durable but the caller is told it failed (a lost acknowledgement).
	AppendAfterCommit
	// SetMeta fails meta writes, SetMeta and SwapMeta (which publishes
	// checkpoints), without writing.
	SetMeta
	// Scan fails Scan at the event set with FailScanAt (the first by
	// default): events before it are delivered, then the error returned.
	Scan
	numOps
)

func (o Op) String() string {
	switch o {
	case AppendBeforeCommit:
		return "append-before-commit"
	case AppendAfterCommit:
		return "append-after-commit"
	case SetMeta:
		return "set-meta"
	case Scan:
		return "scan"
	}
	return fmt.Sprintf("op(%d)", int(o))
}

// ErrDiskFull is what a full disk looks like to the callers of a backend:
// store.ErrFull wrapping ENOSPC, so both store.IsFull and
// errors.Is(err, syscall.ENOSPC) recognise it.
var ErrDiskFull = fmt.Errorf("faultstore: %w: %w", store.ErrFull, syscall.ENOSPC)

type fault struct {
	err   error
	times int // remaining failures; < 0 means until healed
}

// Store is a store.Store whose operations fail while a fault is armed.
type Store struct {
	store.Store

	mu     sync.Mutex
	faults [numOps]fault
	scanAt int64 // 1-based position within one Scan call at which it fails
	calls  [numOps]int
	failed [numOps]int
}

var _ store.Store = (*Store)(nil)

// New wraps st. No fault is armed.
func New(st store.Store) *Store { return &Store{Store: st, scanAt: 1} }

// Fail makes every call of op fail with err until Heal.
func (s *Store) Fail(op Op, err error) { s.FailTimes(op, err, -1) }

// FailTimes makes the next n calls of op fail with err, then heals it
// (n < 0: until Heal).
func (s *Store) FailTimes(op Op, err error, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[op] = fault{err: err, times: n}
}

// FailScanAt makes Scan deliver n-1 events and then fail with err, in every
// call until Heal(Scan). n counts the events of each Scan call from 1.
func (s *Store) FailScanAt(n int64, err error) {
	s.mu.Lock()
	s.scanAt = max(n, 1)
	s.mu.Unlock()
	s.Fail(Scan, err)
}

// Heal disarms op.
func (s *Store) Heal(op Op) { s.FailTimes(op, nil, 0) }

// HealAll disarms every fault.
func (s *Store) HealAll() {
	for op := range numOps {
		s.Heal(op)
	}
}

// Calls returns how many times op was called, failed or not. For the two
// Append ops it is the number of Append calls.
func (s *Store) Calls(op Op) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Failed returns how many calls of op were failed by the wrapper.
func (s *Store) Failed(op Op) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed[op]
}

// take reports the error op must fail with now, if any, and counts the call.
func (s *Store) take(op Op) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[op]++
	f := &s.faults[op]
	if f.err == nil || f.times == 0 {
		return nil
	}
	if f.times > 0 {
		f.times--
	}
	s.failed[op]++
	return f.err
}

// Append implements store.Store.
func (s *Store) Append(ctx context.Context, build store.BuildFunc) ([]store.Record, error) {
	before := s.take(AppendBeforeCommit)
	after := s.take(AppendAfterCommit)
	if before != nil {
		return nil, before
	}
	recs, err := s.Store.Append(ctx, build)
	if err != nil {
		return nil, err
	}
	if after != nil {
		return nil, after
	}
	return recs, nil
}

// SetMeta implements store.Store.
func (s *Store) SetMeta(ctx context.Context, key string, value []byte) error {
	if err := s.take(SetMeta); err != nil {
		return err
	}
	return s.Store.SetMeta(ctx, key, value)
}

// SwapMeta implements store.Store; the SetMeta fault covers it.
func (s *Store) SwapMeta(ctx context.Context, key string, old, value []byte) error {
	if err := s.take(SetMeta); err != nil {
		return err
	}
	return s.Store.SwapMeta(ctx, key, old, value)
}

// Scan implements store.Store.
func (s *Store) Scan(ctx context.Context, f store.Filter, limit int, fn func(*event.Event) error) error {
	err := s.take(Scan)
	if err == nil {
		return s.Store.Scan(ctx, f, limit, fn)
	}
	s.mu.Lock()
	at := s.scanAt
	s.mu.Unlock()
	var n int64
	serr := s.Store.Scan(ctx, f, limit, func(e *event.Event) error {
		n++
		if n >= at {
			return err
		}
		return fn(e)
	})
	if serr != nil {
		return serr
	}
	// The scan ended before reaching the faulty event: fail at its end,
	// as a read error after the last row would.
	return err
}
