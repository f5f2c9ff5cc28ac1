package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// exitAlert is the witness's exit status when the log misbehaved: a bad
// signature, a shrinking tree, or a history that does not extend the one it
// saw before.
const exitAlert = 3

func runWitness(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("witness", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rawURL := fs.String("url", "", "the log to watch (required)")
	key := fs.String("key", "", "the log's verifier key, name+hash+base64, or @FILE (required)")
	origin := fs.String("origin", "", "expected checkpoint origin (default: the key's name)")
	state := fs.String("state", "", "file holding the last checkpoint this witness trusted (required)")
	interval := fs.Duration("interval", 10*time.Second, "time between two checks in daemon mode")
	conn := connectionFlags(fs)
	once := fs.Bool("once", false, "check once and exit: 0 consistent, 3 misbehaviour, 2 usage or I/O error")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: audit-stream witness --url URL --key KEY --state FILE [--interval 10s] [--once]

Watch a log: fetch its signed checkpoint, check the signature and origin,
check the consistency proof from the last checkpoint this witness stored,
then store the new one (atomically). A bad signature, a shrinking tree or a
failed consistency proof (history rewritten or forked) is reported loudly
with both checkpoints; --once then exits 3, the daemon keeps alerting every
interval and exits 3 when stopped. The first run trusts what it sees.

Examples:
  audit-stream witness --url https://audit.example.com --key @log.pub --state witness.state --once
  audit-stream witness --url https://audit.example.com --key "$(cat log.pub)" --state /var/lib/witness/state

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *rawURL == "" || *key == "" || *state == "" {
		fmt.Fprintln(stderr, "witness: --url, --key and --state are required")
		return 2
	}
	if *interval <= 0 {
		fmt.Fprintln(stderr, "witness: --interval must be positive")
		return 2
	}
	v, err := verifierKey(*key)
	if err != nil {
		fmt.Fprintf(stderr, "witness: %v\n", err)
		return 2
	}
	r, err := newRemote(*rawURL, conn)
	if err != nil {
		fmt.Fprintf(stderr, "witness: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	w := &witness{r: r, v: v, origin: *origin, state: *state, log: log}
	if *once {
		err := w.check(ctx)
		return w.exit(err)
	}
	alerted := false
	for {
		err := w.check(ctx)
		if code := w.exit(err); code == exitAlert {
			alerted = true
		}
		select {
		case <-ctx.Done():
			if alerted {
				return exitAlert
			}
			return 0
		case <-time.After(*interval):
		}
	}
}

type witness struct {
	r      *remote
	v      note.Verifier
	origin string
	state  string
	log    *slog.Logger
}

// alert is misbehaviour by the log, as opposed to a failure to reach it.
type alert struct{ err error }

func (a *alert) Error() string { return a.err.Error() }
func (a *alert) Unwrap() error { return a.err }

func (w *witness) exit(err error) int {
	var a *alert
	switch {
	case err == nil:
		return 0
	case errors.As(err, &a):
		w.log.Error("ALERT: the log misbehaved", "url", w.r.base, "err", a.err)
		return exitAlert
	default:
		w.log.Warn("check failed", "url", w.r.base, "err", err)
		return 2
	}
}

// check runs one round.
func (w *witness) check(ctx context.Context) error {
	signed, err := w.r.get(ctx, "/checkpoint", verify.MaxCheckpointSize)
	if err != nil {
		return err
	}
	cp, err := verify.OpenCheckpoint(signed, w.v, w.origin)
	if err != nil {
		return &alert{fmt.Errorf("checkpoint rejected: %w\n--- checkpoint served ---\n%s", err, signed)}
	}
	oldSigned, err := os.ReadFile(w.state)
	if errors.Is(err, os.ErrNotExist) {
		w.log.Info("first checkpoint trusted", "size", cp.Size)
		return writeAtomic(w.state, signed)
	}
	if err != nil {
		return err
	}
	old, err := verify.OpenCheckpoint(oldSigned, w.v, w.origin)
	if err != nil {
		return fmt.Errorf("state file %s: %w", w.state, err)
	}
	if cp.Size < old.Size {
		return &alert{&verify.InconsistencyError{Old: oldSigned, New: signed, Reason: fmt.Sprintf("tree shrank from %d to %d", old.Size, cp.Size)}}
	}
	var proof []tlog.Hash
	if cp.Size > old.Size && old.Size > 0 {
		if proof, err = w.r.consistency(ctx, old.Size, cp.Size); err != nil {
			return err
		}
	}
	if err := verify.CheckConsistency(old, cp, proof, oldSigned, signed); err != nil {
		return &alert{err}
	}
	if cp.Size == old.Size {
		return nil
	}
	w.log.Info("checkpoint consistent", "from", old.Size, "to", cp.Size)
	return writeAtomic(w.state, signed)
}

// writeAtomic replaces path with data so that a crash leaves the old or
// the new content, never a mix.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
