package ledger

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
)

// ErrKeyReused is returned by AppendWith when the idempotency key was
// already used, in the same scope, for a different request.
var ErrKeyReused = errors.New("idempotency key already used for a different request")

// AppendOptions makes an append idempotent. With an empty IdempotencyKey
// AppendWith is Append.
type AppendOptions struct {
	// IdempotencyKey names the request, as the client sent it.
	IdempotencyKey string
	// Scope is whose key it is (a token id): the same key in two scopes
	// names two requests.
	Scope string
	// BodyDigest identifies the request's content, so a retry can be told
	// from a reuse of the key for something else.
	BodyDigest [sha256.Size]byte
	// Stamp, if set, is the request's provenance: a record of it is
	// written with its events, and its signatures are refused if already
	// stored (provenance.go).
	Stamp *Stamp
}

// AppendWith is Append with options. With an idempotency key, the first
// request appends and stores the key in the same transaction as its events;
// any later request with the same scope, key and digest writes nothing and
// gets the events the first one wrote, with replayed true, even across
// restarts; the same key with another digest gets ErrKeyReused.
//
// Duplicates that arrive while the first is still queued or being committed
// wait for it (the in-flight map below) and then replay it, so concurrent
// duplicates produce exactly one event and every caller learns its id.
func (l *Ledger) AppendWith(ctx context.Context, reqs []event.Request, opt AppendOptions) (events []event.Event, replayed bool, err error) {
	if len(reqs) == 0 {
		return nil, false, nil
	}
	if opt.IdempotencyKey == "" {
		r := l.enqueue(ctx, reqs, opt)
		return r.events, false, r.err
	}
	release, err := l.holdKey(ctx, opt.Scope+"\x00"+opt.IdempotencyKey)
	if err != nil {
		return nil, false, err
	}
	r := l.enqueue(ctx, reqs, opt)
	release()
	if r.err != nil || r.replay == nil {
		return r.events, false, r.err
	}
	events, err = l.replay(ctx, r.replay)
	return events, err == nil, err
}

// holdKey makes the caller the only append in flight with this key on this
// instance, waiting for the one before it if needed. While a key is held no
// other request with it reaches the sequencer, so one group never carries
// the same key twice; several instances sharing a database are kept apart
// by the lookup inside the transaction (claimKey) instead.
func (l *Ledger) holdKey(ctx context.Context, id string) (release func(), err error) {
	for {
		l.imu.Lock()
		wait, busy := l.inflight[id]
		if !busy {
			done := make(chan struct{})
			l.inflight[id] = done
			l.imu.Unlock()
			return func() {
				l.imu.Lock()
				delete(l.inflight, id)
				l.imu.Unlock()
				close(done)
			}, nil
		}
		l.imu.Unlock()
		select {
		case <-wait:
			// The first is answered: its key is committed (we will
			// replay it) or it failed (we append in its place).
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// claimKey runs inside the append transaction, in build. It reports whether
// p appends; if the key is already stored it sets p.replay or p.fail
// instead. Otherwise it stores the key for the events p is about to get,
// starting at firstID, in the same transaction.
func (l *Ledger) claimKey(tx store.Tx, p *pending, firstID int64, now time.Time) (bool, error) {
	err := tx.PutKey(store.IdempotencyKey{
		Scope: p.opt.Scope, Key: p.opt.IdempotencyKey, BodyDigest: p.opt.BodyDigest,
		FirstID: firstID, Count: int64(len(p.reqs)), Created: now,
	})
	if !errors.Is(err, store.ErrKeyExists) {
		return err == nil, err // new key, stored with the events
	}
	// A retry (or a reuse) of a key committed earlier: the rare path.
	k, err := tx.Key(p.opt.Scope, p.opt.IdempotencyKey)
	switch {
	case err != nil:
		return false, err
	case k.BodyDigest == p.opt.BodyDigest:
		p.replay = &k
	default:
		p.fail = fmt.Errorf("%w: key %q was first used for event %d", ErrKeyReused, p.opt.IdempotencyKey, k.FirstID)
	}
	return false, nil
}

// replay reads the events a stored key points to. It runs on the caller's
// goroutine, never the sequencer's.
func (l *Ledger) replay(ctx context.Context, k *store.IdempotencyKey) ([]event.Event, error) {
	out := make([]event.Event, 0, k.Count)
	err := l.st.Scan(ctx, store.Filter{After: k.FirstID - 1, Until: k.FirstID + k.Count - 1}, int(k.Count), func(e *event.Event) error {
		out = append(out, *e) // Payload is fresh per event
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: replay idempotency key: %w", err)
	}
	if int64(len(out)) != k.Count {
		return nil, fmt.Errorf("ledger: replay idempotency key: %d of its %d events found from %d", len(out), k.Count, k.FirstID)
	}
	return out, nil
}

// ExpireKeys deletes idempotency keys older than ttl every interval until
// ctx ends. Keys live at least ttl: a retry within it always replays.
func (l *Ledger) ExpireKeys(ctx context.Context, ttl, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := l.st.PruneKeys(ctx, l.opt.Now().Add(-ttl))
		switch {
		case err != nil && ctx.Err() == nil:
			l.log.Warn("expiring idempotency keys failed", "err", err)
		case n > 0:
			l.log.Debug("expired idempotency keys", "count", n)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}
