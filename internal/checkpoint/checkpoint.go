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
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/audit-stream/audit-stream/internal/clock"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/provenance"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/tlog"
)

// metaKey is the store meta key of the latest signed checkpoint.
const metaKey = "checkpoint"

// Store is what the checkpointer needs of the store: the tree, and the meta
// values it publishes checkpoints in with compare-and-swap (so that several
// instances sharing one database publish one sequence of checkpoints) and
// records recoveries in.
type Store interface {
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	Meta(ctx context.Context, key string) ([]byte, error)
	SetMeta(ctx context.Context, key string, value []byte) error
	SwapMeta(ctx context.Context, key string, old, value []byte) error
	// ScanProvenance reads the provenance records a seal covers
	// (seal.go).
	ScanProvenance(ctx context.Context, after, until int64, fn func(*provenance.Record) error) error
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
	// Clock is what the interval is measured and waited out by; default
	// clock.Real.
	Clock clock.Clock
	// FinalTimeout bounds signing and storing the last checkpoint when
	// the log closes; default 5 s.
	FinalTimeout time.Duration
	// Copy, if set, is a file that also holds the latest signed
	// checkpoint. Kept outside the data directory, it lets start-up catch
	// a data directory restored from an older copy, whose own checkpoint
	// went back with it (copy.go).
	Copy string
	// Recover starts even when the log fails the start-up checks (no
	// checkpoint for a non-empty log, a log shorter than or diverging from
	// the last checkpoint): the failure is logged at ERROR, recorded in
	// the store's metadata, and the log is signed as it now stands.
	// Witnesses holding an earlier checkpoint will still report the break.
	Recover bool
	// Rotate accepts an origin or a signing key other than the ones the
	// log's latest checkpoint was signed with: the latest checkpoint is
	// re-signed under them. Without it such a start is refused
	// (ErrIdentity), so that a mistyped --origin or a wrong key file
	// cannot quietly fork what verifiers and witnesses pin.
	Rotate bool
	Logger *slog.Logger
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

	// sealed is the provenance chain as of the last seal this
	// checkpointer signed or checked (seal.go); guarded by mu.
	sealed provenance.Chain
}

// ErrMismatch reports a stored tree that no longer has the root of the last
// signed checkpoint: the database was rewritten or restored from an older
// copy. The checkpointer refuses to sign over it.
var ErrMismatch = errors.New("checkpoint: stored Merkle tree does not match the latest signed checkpoint")

// ErrUnsigned reports a log that holds events but no signed checkpoint:
// the stored checkpoint was removed, which is what someone rewriting the
// history would do first. The checkpointer refuses to sign over it.
var ErrUnsigned = errors.New("checkpoint: the log holds events but no signed checkpoint is stored")

// ErrIdentity reports a start with another origin or signing key than the
// log's latest checkpoint was signed with, and no rotation asked for.
var ErrIdentity = errors.New("checkpoint: the log's origin or signing key differs from this start's")

// Open loads the latest checkpoint from st and checks that the stored tree
// still matches it, and the copy outside the data directory if there is
// one. Call Run to sign new ones.
func Open(ctx context.Context, st Store, heads Heads, opt Options) (*Checkpointer, error) {
	if opt.Interval <= 0 {
		opt.Interval = time.Second
	}
	if opt.FinalTimeout <= 0 {
		opt.FinalTimeout = 5 * time.Second
	}
	if opt.Clock == nil {
		opt.Clock = clock.Real
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Checkpointer{st: st, heads: heads, opt: opt, log: opt.Logger, changed: make(chan struct{})}
	head := heads.Head()
	err := c.load(ctx, head)
	if err != nil && (errors.Is(err, ErrMismatch) || errors.Is(err, ErrUnsigned)) && opt.Recover {
		// The operator vouches for the log as it stands: sign it, and
		// leave a durable trace of having done so.
		c.log.Error("STARTING ON A LOG THAT FAILED THE CHECKPOINT CHECK: signing it as it stands because recovery was requested; "+
			"witnesses holding an earlier checkpoint will report this", "err", err, "events", head)
		if err := c.recordRecovery(ctx, head, err); err != nil {
			return nil, err
		}
		if err := c.sign(ctx, head); err != nil {
			return nil, err
		}
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	if c.signed == nil {
		// A new log: its first checkpoint is the one for the tree as it is.
		if err := c.sign(ctx, head); err != nil {
			return nil, err
		}
		return c, nil
	}
	cp, signed := c.latest, c.signed
	// A rotated key re-signs the same tree, so that what is served always
	// verifies under the key that is served.
	rotated := false
	if v, err := verify.ParseVerifierKey(opt.Key.VerifierKey); err != nil {
		return nil, err
	} else if _, err := verify.OpenCheckpoint(signed, v, cp.Origin); err != nil {
		if !opt.Rotate {
			return nil, fmt.Errorf("%w: the latest checkpoint was not signed by this key (%s)", ErrIdentity, opt.Key.VerifierKey)
		}
		c.log.Warn("signing key rotated: re-signing the latest checkpoint under the new key", "size", cp.Size, "verifier_key", opt.Key.VerifierKey)
		rotated = true
	}
	if cp.Origin != opt.Origin {
		if !opt.Rotate {
			return nil, fmt.Errorf("%w: the log's origin is %q, this start's %q", ErrIdentity, cp.Origin, opt.Origin)
		}
		c.log.Warn("origin rotated: checkpoints from now on are for a different log name", "was", cp.Origin, "now", opt.Origin)
	}
	if heads.Head() > cp.Size || cp.Origin != opt.Origin || rotated {
		if err := c.sign(ctx, heads.Head()); store.IsFull(err) {
			// A full disk must not turn a write outage into a read
			// outage: serve the stored checkpoint, and let Run sign the
			// new one once there is room.
			c.log.Warn("storage full: serving the stored checkpoint until a new one can be stored", "size", cp.Size, "events", heads.Head(), "err", err)
		} else if err != nil {
			return nil, err
		}
	} else {
		c.keepCopy(signed) // a copy configured for the first time starts now
	}
	return c, nil
}

// load reads the stored checkpoint (and the copy, if configured) and
// checks that the log of head events extends both. It leaves c.signed nil
// for a new, empty log.
func (c *Checkpointer) load(ctx context.Context, head int64) error {
	copied, err := readCopy(c.opt.Copy)
	if err != nil {
		return err
	}
	signed, err := c.st.Meta(ctx, metaKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if head > 0 {
			return fmt.Errorf("%w: %d events, and no checkpoint to check them against", ErrUnsigned, head)
		}
		if copied != nil && copied.Size > 0 {
			return fmt.Errorf("%w: the log is empty but %s holds a checkpoint of %d events", ErrMismatch, c.opt.Copy, copied.Size)
		}
		return nil
	case err != nil:
		return err
	}
	// The stored note is our own: trust its body, whichever key signed it
	// (the key may have been rotated since).
	cp, err := noteBody(signed)
	if err != nil {
		return fmt.Errorf("checkpoint: stored checkpoint: %w", err)
	}
	c.latest, c.signed = cp, signed
	if err := c.check(ctx, head); err != nil {
		return err
	}
	c.loadSeal(ctx, cp)
	if copied != nil {
		if err := c.checkAgainst(ctx, head, *copied, "the checkpoint copy "+c.opt.Copy); err != nil {
			return err
		}
	}
	return nil
}

// noteBody parses the checkpoint of a signed note without checking the
// signature.
func noteBody(signed []byte) (verify.Checkpoint, error) {
	text, _, ok := bytes.Cut(signed, []byte("\n\n"))
	if !ok {
		return verify.Checkpoint{}, errors.New("not a signed note")
	}
	return verify.ParseCheckpoint(append(text, '\n'))
}

// StoredOrigin is the origin of the log's latest checkpoint, the one a
// start must use unless it rotates; "" for a log never signed.
func StoredOrigin(ctx context.Context, st store.Store) (string, error) {
	signed, err := st.Meta(ctx, metaKey)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	cp, err := noteBody(signed)
	if err != nil {
		return "", fmt.Errorf("checkpoint: stored checkpoint: %w", err)
	}
	return cp.Origin, nil
}

// recoveriesKey is the store meta key under which every recovery start is
// recorded, one JSON line each, oldest first.
const recoveriesKey = "recoveries"

// recordRecovery appends a line saying when and why the start-up check was
// overridden, and which checkpoint was signed over.
func (c *Checkpointer) recordRecovery(ctx context.Context, head int64, why error) error {
	prev, err := c.st.Meta(ctx, recoveriesKey)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	rec := map[string]any{
		"at":     time.Now().UTC().Format(time.RFC3339Nano),
		"reason": why.Error(),
		"events": head,
	}
	if c.signed != nil {
		rec["previous_checkpoint"] = string(c.signed)
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := c.st.SetMeta(ctx, recoveriesKey, append(append(prev, line...), '\n')); err != nil {
		return fmt.Errorf("checkpoint: record recovery: %w", err)
	}
	return nil
}

// Recoveries returns the recovery starts recorded in st, one JSON line each.
func Recoveries(ctx context.Context, st MetaStore) ([]byte, error) {
	b, err := st.Meta(ctx, recoveriesKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return b, err
}

// check makes sure that the tree of size head extends the latest checkpoint.
func (c *Checkpointer) check(ctx context.Context, head int64) error {
	return c.checkAgainst(ctx, head, c.latest, "the checkpoint")
}

func (c *Checkpointer) checkAgainst(ctx context.Context, head int64, old verify.Checkpoint, which string) error {
	if head < old.Size {
		return fmt.Errorf("%w: %s covers %d events but the log holds only %d", ErrMismatch, which, old.Size, head)
	}
	root, err := tlog.TreeHash(old.Size, hashReader{ctx, c.st})
	if err != nil {
		return fmt.Errorf("checkpoint: tree hash at %d: %w", old.Size, err)
	}
	if root != old.Hash {
		return fmt.Errorf("%w: root at tree size %d is %x, %s says %x", ErrMismatch, old.Size, root[:], which, old.Hash[:])
	}
	return nil
}

// sign signs a checkpoint for the tree of size n and makes it the latest.
//
// It publishes with compare-and-swap, replacing only the checkpoint this
// checkpointer holds. If another instance published one first, sign takes
// that one instead when it covers n (a checkpoint never goes backwards),
// or signs n again on top of it.
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
		// The seal is stored before the checkpoint is published, so every
		// checkpoint anyone is served has one.
		if err := c.seal(ctx, cp); err != nil {
			return err
		}
		err = c.st.SwapMeta(ctx, metaKey, prev, signed)
		if err == nil {
			c.keepCopy(signed)
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
		other, err := noteBody(theirs)
		if err != nil {
			return fmt.Errorf("checkpoint: stored checkpoint: %w", err)
		}
		// It must be of our tree: one log, one tree, whoever signed.
		if err := c.checkAgainst(ctx, max(n, other.Size), other, "the checkpoint another instance published"); err != nil {
			return err
		}
		c.mu.Lock()
		c.signed = theirs // the value to swap from next time
		c.mu.Unlock()
		if other.Size >= n && c.ours(theirs, other) {
			c.keepCopy(theirs)
			c.publish(other, theirs)
			return nil
		}
		n = max(n, other.Size) // sign no less than what is published
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

// Run signs a checkpoint whenever the log has grown, at most once per
// interval, until ctx ends or the log closes; it then signs a last one for
// whatever is left, at once and within FinalTimeout, so a clean shutdown
// leaves every event covered without waiting for the interval.
func (c *Checkpointer) Run(ctx context.Context) error {
	last := c.opt.Clock.Now()
	for {
		ch := c.heads.Changed()
		if c.heads.Closed() {
			return c.final()
		}
		if c.heads.Head() <= c.Latest().Size {
			select {
			case <-ch:
			case <-ctx.Done():
				return c.final()
			}
			continue
		}
		// Wait out the interval, but not past the log closing: a
		// shutdown must not wait for a checkpoint to fall due.
		if wait := c.opt.Interval - c.opt.Clock.Now().Sub(last); wait > 0 {
			t := c.opt.Clock.NewTimer(wait)
			closing := false
			for !closing {
				select {
				case <-t.C():
				case <-ctx.Done():
					t.Stop()
					return c.final()
				case <-ch:
					ch = c.heads.Changed()
					closing = c.heads.Closed()
					continue
				}
				break
			}
			t.Stop()
			if closing {
				return c.final()
			}
		}
		last = c.opt.Clock.Now()
		if err := c.advance(ctx); err != nil {
			if ctx.Err() != nil {
				return c.final()
			}
			if errors.Is(err, ErrMismatch) {
				c.log.Error("checkpoint failed", "err", err)
				return err
			}
			// A transient store error: try again next interval.
			if store.IsFull(err) {
				c.log.Warn("checkpoint not stored: storage full; retrying", "err", err)
			} else {
				c.log.Error("checkpoint failed", "err", err)
			}
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

// final covers what was appended since the last checkpoint, on shutdown, in
// one attempt bounded by FinalTimeout.
func (c *Checkpointer) final() error {
	if c.heads.Head() <= c.Latest().Size {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opt.FinalTimeout)
	defer cancel()
	return c.advance(ctx)
}

// Latest returns the latest checkpoint; Signed adds its signed note.
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
