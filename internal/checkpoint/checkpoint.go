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

// Store is what the checkpointer needs of the store: the tree, and the meta
// value it publishes checkpoints in with compare-and-swap, so that several
// instances sharing one database publish one sequence of checkpoints.
type Store interface {
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	Meta(ctx context.Context, key string) ([]byte, error)
	SwapMeta(ctx context.Context, key string, old, value []byte) error
}

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
	st    Store
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
func Open(ctx context.Context, st Store, heads Heads, opt Options) (*Checkpointer, error) {
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
	cp, err := parseStored(signed)
	if err != nil {
		return nil, err
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
	return c.checkRoot(ctx, old)
}

// parseStored reads a checkpoint from the store. The stored note is ours
// (this instance's or another's sharing the database): trust its body,
// whichever key signed it (the key may have been rotated since).
func parseStored(signed []byte) (verify.Checkpoint, error) {
	text, _, ok := bytes.Cut(signed, []byte("\n\n"))
	if !ok {
		return verify.Checkpoint{}, fmt.Errorf("checkpoint: stored checkpoint is not a signed note")
	}
	cp, err := verify.ParseCheckpoint(append(text, '\n'))
	if err != nil {
		return verify.Checkpoint{}, fmt.Errorf("checkpoint: stored checkpoint: %w", err)
	}
	return cp, nil
}

// sign signs a checkpoint for the tree of size n and publishes it as the
// latest, replacing the one this checkpointer holds. If another instance
// published one first, sign takes that one instead when it covers n (a
// checkpoint never goes backwards), or signs n again on top of it.
func (c *Checkpointer) sign(ctx context.Context, n int64) error {
	for {
		c.mu.Lock()
		prev := c.signed
		c.mu.Unlock()
		root, err := tlog.TreeHash(n, hashReader{ctx, c.st})
		if err != nil {
			return fmt.Errorf("checkpoint: tree hash at %d: %w", n, err)
		}
		cp := verify.Checkpoint{Origin: c.opt.Origin, Size: n, Hash: root}
		signed, err := verify.SignCheckpoint(cp, c.opt.Key.Signer)
		if err != nil {
			return fmt.Errorf("checkpoint: sign: %w", err)
		}
		err = c.st.SwapMeta(ctx, metaKey, prev, signed)
		if err == nil {
			c.publish(cp, signed)
			c.log.Debug("signed checkpoint", "size", n)
			return nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("checkpoint: store: %w", err)
		}
		// Another instance published a checkpoint since we read ours.
		theirs, err := c.st.Meta(ctx, metaKey)
		if err != nil {
			return fmt.Errorf("checkpoint: read the checkpoint another instance published: %w", err)
		}
		other, err := parseStored(theirs)
		if err != nil {
			return err
		}
		// It must be of our tree: one log, one tree, whoever signed.
		if err := c.checkRoot(ctx, other); err != nil {
			return err
		}
		c.mu.Lock()
		c.signed = theirs // the value to swap from next time
		c.mu.Unlock()
		if other.Size >= n && c.ours(theirs, other) {
			c.publish(other, theirs)
			return nil
		}
		if other.Size > n {
			n = other.Size // sign no less than what is published
		}
	}
}

// ours reports whether a published note verifies under this checkpointer's
// key and origin, so that it may be served as it is.
func (c *Checkpointer) ours(signed []byte, cp verify.Checkpoint) bool {
	if cp.Origin != c.opt.Origin {
		return false
	}
	v, err := verify.ParseVerifierKey(c.opt.Key.VerifierKey)
	if err != nil {
		return false
	}
	_, err = verify.OpenCheckpoint(signed, v, cp.Origin)
	return err == nil
}

// publish makes cp the checkpoint served, unless a later one already is.
func (c *Checkpointer) publish(cp verify.Checkpoint, signed []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.signed = signed
	if cp.Size < c.latest.Size {
		return
	}
	c.latest = cp
	close(c.changed)
	c.changed = make(chan struct{})
}

// checkRoot checks that the stored tree has cp's root at cp's size.
func (c *Checkpointer) checkRoot(ctx context.Context, cp verify.Checkpoint) error {
	root, err := tlog.TreeHash(cp.Size, hashReader{ctx, c.st})
	if err != nil {
		return fmt.Errorf("checkpoint: tree hash at %d: %w", cp.Size, err)
	}
	if root != cp.Hash {
		return fmt.Errorf("%w: root at tree size %d is %x, the checkpoint says %x", ErrMismatch, cp.Size, root[:], cp.Hash[:])
	}
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
	st  Store
}

func (r hashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	return r.st.ReadHashes(r.ctx, indexes)
}
