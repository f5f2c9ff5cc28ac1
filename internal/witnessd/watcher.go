package witnessd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Source is a log as a Watcher reads it.
type Source interface {
	// Checkpoint fetches the log's latest signed checkpoint.
	Checkpoint(ctx context.Context) ([]byte, error)
	// Consistency fetches a consistency proof between two tree sizes.
	Consistency(ctx context.Context, from, to int64) ([]tlog.Hash, error)
}

// Watcher pulls a log's checkpoints and checks each against the last one it
// trusted, kept in a file. Unlike a Witness it signs nothing: it is the
// monitor an auditor runs on a machine of their own.
type Watcher struct {
	Source Source
	Key    note.Verifier
	// Origin is the expected origin; the key's name when empty.
	Origin string
	// State is the file holding the last trusted checkpoint.
	State  string
	Logger *slog.Logger
}

// Alert is misbehaviour by the log (a bad signature, a shrinking tree, a
// history that does not extend the one seen before), as opposed to a
// failure to reach it.
type Alert struct{ Err error }

func (a *Alert) Error() string { return a.Err.Error() }
func (a *Alert) Unwrap() error { return a.Err }

// Check runs one round: fetch, verify, check consistency with the state,
// store the new checkpoint. The first round trusts what it sees.
func (w *Watcher) Check(ctx context.Context) error {
	log := w.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	signed, err := w.Source.Checkpoint(ctx)
	if err != nil {
		return err
	}
	cp, err := verify.OpenCheckpoint(signed, w.Key, w.Origin)
	if err != nil {
		return &Alert{fmt.Errorf("checkpoint rejected: %w\n--- checkpoint served ---\n%s", err, signed)}
	}
	oldSigned, err := os.ReadFile(w.State)
	if errors.Is(err, os.ErrNotExist) {
		log.Info("first checkpoint trusted", "size", cp.Size)
		return WriteAtomic(w.State, signed)
	}
	if err != nil {
		return err
	}
	old, err := verify.OpenCheckpoint(oldSigned, w.Key, w.Origin)
	if err != nil {
		return fmt.Errorf("state file %s: %w", w.State, err)
	}
	if cp.Size < old.Size {
		return &Alert{&verify.InconsistencyError{Old: oldSigned, New: signed, Reason: fmt.Sprintf("tree shrank from %d to %d", old.Size, cp.Size)}}
	}
	var proof []tlog.Hash
	if cp.Size > old.Size && old.Size > 0 {
		if proof, err = w.Source.Consistency(ctx, old.Size, cp.Size); err != nil {
			return err
		}
	}
	if err := verify.CheckConsistency(old, cp, proof, oldSigned, signed); err != nil {
		return &Alert{err}
	}
	if cp.Size == old.Size {
		return nil
	}
	log.Info("checkpoint consistent", "from", old.Size, "to", cp.Size)
	return WriteAtomic(w.State, signed)
}
