// Package checkpoint signs the log's checkpoints: whenever the Merkle tree
// has grown, at most once per interval, it signs a C2SP tlog-checkpoint for
// the current tree and stores it durably. The latest checkpoint never goes
// backwards, also across restarts, and never contradicts the previous one:
// before signing, the checkpointer checks that the stored tree still has the
// root it signed last time.
package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/tlog"
)

// metaKey is the store meta key of the latest signed checkpoint.
const metaKey = "checkpoint"

// Heads tells the checkpointer when the log grows; *ledger.Feed is one.
type Heads interface {
	// Head is the id of the last committed event.
	Head() int64
	// Changed is closed when the head moves past what it is now, or when
	// the log closes (then Closed is true).
	Changed() <-chan struct{}
	Closed() bool
}

// Options configures a Checkpointer.
type Options struct {
	Origin string
	Key    *Key
	// Interval is the least time between two checkpoints; default 1 s.
	Interval time.Duration
	Logger   *slog.Logger
}

// Checkpointer signs and serves checkpoints.
type Checkpointer struct {
	st    store.Store
	heads Heads
	opt   Options
	log   *slog.Logger

	mu      sync.Mutex
	latest  verify.Checkpoint
	signed  []byte
	changed chan struct{} // closed when a new checkpoint is signed
}

// ErrMismatch reports a stored tree that no longer has the root of the last
// signed checkpoint: the database was rewritten or restored from an older
// copy. The checkpointer refuses to sign over it.
var ErrMismatch = errors.New("checkpoint: stored Merkle tree does not match the latest signed checkpoint")

// Open loads the latest checkpoint from st and checks that the stored tree
// still matches it. Call Run to sign new ones.
func Open(ctx context.Context, st store.Store, heads Heads, opt Options) (*Checkpointer, error) {
	if opt.Interval <= 0 {
		opt.Interval = time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Checkpointer{st: st, heads: heads, opt: opt, log: opt.Logger, changed: make(chan struct{})}
	signed, err := st.Meta(ctx, metaKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// A new log: its first checkpoint is the one for the tree as it is.
		if err := c.sign(ctx, heads.Head()); err != nil {
			return nil, err
		}
		return c, nil
	case err != nil:
		return nil, err
	}
	// The stored note is our own: trust its body, whichever key signed it
	// (the key may have been rotated since).
	text, _, ok := bytes.Cut(signed, []byte("\n\n"))
	if !ok {
		return nil, fmt.Errorf("checkpoint: stored checkpoint is not a signed note")
	}
	cp, err := verify.ParseCheckpoint(append(text, '\n'))
	if err != nil {
		return nil, fmt.Errorf("checkpoint: stored checkpoint: %w", err)
	}
	c.latest, c.signed = cp, signed
	if cp.Origin != opt.Origin {
		c.log.Warn("origin changed: checkpoints from now on are for a different log name", "was", cp.Origin, "now", opt.Origin)
	}
	if err := c.check(ctx, heads.Head()); err != nil {
		return nil, err
	}
	// A rotated key re-signs the same tree, so that what is served always
	// verifies under the key that is served.
	rotated := false
	if v, err := verify.ParseVerifierKey(opt.Key.VerifierKey); err != nil {
		return nil, err
	} else if _, err := verify.OpenCheckpoint(signed, v, cp.Origin); err != nil {
		c.log.Warn("signing key changed: re-signing the latest checkpoint", "size", cp.Size)
		rotated = true
	}
	if heads.Head() > cp.Size || cp.Origin != opt.Origin || rotated {
		if err := c.sign(ctx, heads.Head()); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// check makes sure that the tree of size head extends the latest checkpoint.
func (c *Checkpointer) check(ctx context.Context, head int64) error {
	old := c.latest
	if head < old.Size {
		return fmt.Errorf("%w: the checkpoint covers %d events but the log holds %d", ErrMismatch, old.Size, head)
	}
	root, err := tlog.TreeHash(old.Size, hashReader{ctx, c.st})
	if err != nil {
		return fmt.Errorf("checkpoint: tree hash at %d: %w", old.Size, err)
	}
	if root != old.Hash {
		return fmt.Errorf("%w: root at tree size %d is %x, the checkpoint says %x", ErrMismatch, old.Size, root[:], old.Hash[:])
	}
	return nil
}

// sign signs a checkpoint for the tree of size n and makes it the latest.
func (c *Checkpointer) sign(ctx context.Context, n int64) error {
	root, err := tlog.TreeHash(n, hashReader{ctx, c.st})
	if err != nil {
		return fmt.Errorf("checkpoint: tree hash at %d: %w", n, err)
	}
	cp := verify.Checkpoint{Origin: c.opt.Origin, Size: n, Hash: root}
	signed, err := verify.SignCheckpoint(cp, c.opt.Key.Signer)
	if err != nil {
		return fmt.Errorf("checkpoint: sign: %w", err)
	}
	if err := c.st.SetMeta(ctx, metaKey, signed); err != nil {
		return fmt.Errorf("checkpoint: store: %w", err)
	}
	c.mu.Lock()
	c.latest, c.signed = cp, signed
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	c.log.Debug("signed checkpoint", "size", n)
	return nil
}

// Run signs a checkpoint whenever the log has grown, at most once per
// interval, until ctx ends or the log closes; it then signs a last one for
// whatever is left, so a clean shutdown leaves every event covered.
func (c *Checkpointer) Run(ctx context.Context) error {
	last := time.Now()
	for {
		ch := c.heads.Changed()
		if head := c.heads.Head(); head > c.Latest().Size {
			if wait := c.opt.Interval - time.Since(last); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return c.final()
				}
			}
			last = time.Now()
			if err := c.advance(ctx); err != nil {
				if ctx.Err() != nil {
					return c.final()
				}
				// A transient store error: try again next interval.
				c.log.Error("checkpoint failed", "err", err)
				if errors.Is(err, ErrMismatch) {
					return err
				}
			}
			continue
		}
		if c.heads.Closed() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return c.final()
		}
	}
}

func (c *Checkpointer) advance(ctx context.Context) error {
	head := c.heads.Head()
	if err := c.check(ctx, head); err != nil {
		return err
	}
	return c.sign(ctx, head)
}

// final covers what was appended since the last checkpoint, on shutdown.
func (c *Checkpointer) final() error {
	if c.heads.Head() <= c.Latest().Size {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.advance(ctx)
}

// Latest returns the latest checkpoint and its signed note.
func (c *Checkpointer) Latest() verify.Checkpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.latest
}

// Signed returns the latest checkpoint with its signed note.
func (c *Checkpointer) Signed() (verify.Checkpoint, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.latest, c.signed
}

// Wait returns the first checkpoint that covers at least size events,
// waiting for it if needed.
func (c *Checkpointer) Wait(ctx context.Context, size int64) (verify.Checkpoint, []byte, error) {
	for {
		c.mu.Lock()
		cp, signed, ch := c.latest, c.signed, c.changed
		c.mu.Unlock()
		if cp.Size >= size {
			return cp, signed, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return cp, signed, ctx.Err()
		}
	}
}

// VerifierKey is the note verifier key of the signing key.
func (c *Checkpointer) VerifierKey() string { return c.opt.Key.VerifierKey }

// Origin is the origin line of the checkpoints.
func (c *Checkpointer) Origin() string { return c.opt.Origin }

// hashReader reads the stored tree.
type hashReader struct {
	ctx context.Context
	st  store.Store
}

func (r hashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	return r.st.ReadHashes(r.ctx, indexes)
}
