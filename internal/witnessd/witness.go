// Package witnessd is a transparency-log witness: the server side of
// c2sp.org/tlog-witness. It follows any number of logs, each known by its
// origin and verifier keys; for each it keeps the latest checkpoint it
// cosigned, durably, and cosigns a new one only if a consistency proof shows
// that it extends that one. It also holds the watcher, the pull-mode
// cousin that fetches a log's checkpoint and proofs itself.
package witnessd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"

	"github.com/audit-stream/audit-stream/verify"
	"github.com/audit-stream/audit-stream/witness"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Log is a log the witness follows.
type Log struct {
	Origin string
	// Keys verify the log's checkpoints; any one of them suffices (a log
	// rotating its key is listed with both).
	Keys []note.Verifier
}

// Options configures a Witness.
type Options struct {
	// Dir holds the state: one file per log, the latest checkpoint
	// cosigned, with the log's signatures and the cosignature.
	Dir    string
	Signer *witness.Signer
	Logs   []Log
	Logger *slog.Logger
}

// Witness cosigns checkpoints.
type Witness struct {
	dir    string
	signer *witness.Signer
	log    *slog.Logger
	logs   map[string]*logState
	lock   *os.File
}

type logState struct {
	origin string
	keys   []note.Verifier
	nkeys  []string
	path   string

	// mu makes the check of the old size and the write of the new state
	// one step: two requests racing must not roll the state back.
	mu     sync.Mutex
	size   int64
	hash   tlog.Hash
	signed []byte // the cosigned note served to monitors; nil before the first
}

// Errors of AddCheckpoint, each mapped to its tlog-witness status code.
var (
	ErrUnknownLog   = errors.New("unknown log")                                                   // 404
	ErrForbidden    = errors.New("checkpoint not signed by a key the witness trusts for its log") // 403
	ErrMalformed    = errors.New("malformed request")                                             // 400
	ErrInconsistent = errors.New("checkpoint inconsistent with the one last cosigned")            // 422
)

// ConflictError is a 409: the old size is not the size last cosigned.
type ConflictError struct{ Size int64 }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("old size does not match: the witness last cosigned tree size %d", e.Size)
}

// Open loads the state in opt.Dir (creating it) and takes an exclusive lock
// on it, so that two witness processes never share one state.
func Open(opt Options) (*Witness, error) {
	if opt.Signer == nil {
		return nil, errors.New("witness: no signing key")
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opt.Dir, 0o700); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(opt.Dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("witness: state directory %s is in use by another witness process: %w", opt.Dir, err)
	}
	w := &Witness{dir: opt.Dir, signer: opt.Signer, log: opt.Logger, logs: map[string]*logState{}, lock: lock}
	for _, l := range opt.Logs {
		ls := w.logs[l.Origin]
		if ls == nil {
			sum := sha256.Sum256([]byte(l.Origin))
			ls = &logState{origin: l.Origin, path: filepath.Join(opt.Dir, hex.EncodeToString(sum[:])+".checkpoint")}
			w.logs[l.Origin] = ls
		}
		for _, k := range l.Keys {
			ls.nkeys = append(ls.nkeys, k.Name())
		}
		ls.keys = append(ls.keys, l.Keys...)
	}
	for _, ls := range w.logs {
		if err := ls.load(); err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

func (ls *logState) load() error {
	b, err := os.ReadFile(ls.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	cp, err := noteBody(b)
	if err != nil {
		return fmt.Errorf("witness state %s: %w", ls.path, err)
	}
	if cp.Origin != ls.origin {
		return fmt.Errorf("witness state %s holds a checkpoint of %q, not %q", ls.path, cp.Origin, ls.origin)
	}
	ls.size, ls.hash, ls.signed = cp.Size, cp.Hash, b
	return nil
}

// Close releases the state directory.
func (w *Witness) Close() error { return w.lock.Close() }

// VerifierKey is the witness's cosignature verifier key.
func (w *Witness) VerifierKey() string { return w.signer.VerifierKey() }

// Name is the witness's name.
func (w *Witness) Name() string { return w.signer.Name() }

// LogInfo describes a followed log.
type LogInfo struct {
	Origin     string   `json:"origin"`
	OriginHash string   `json:"origin_hash"`
	Keys       []string `json:"key_names"`
	Size       int64    `json:"cosigned_size"`
}

// Logs lists the followed logs and the size last cosigned for each.
func (w *Witness) Logs() []LogInfo {
	var out []LogInfo
	for _, ls := range w.logs {
		ls.mu.Lock()
		sum := sha256.Sum256([]byte(ls.origin))
		out = append(out, LogInfo{Origin: ls.origin, OriginHash: hex.EncodeToString(sum[:]), Keys: ls.nkeys, Size: ls.size})
		ls.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Origin < out[j].Origin })
	return out
}

// Checkpoint returns the latest cosigned checkpoint of the log whose origin
// hashes (SHA-256, lowercase hex) to originHash, nil if there is none.
func (w *Witness) Checkpoint(originHash string) []byte {
	for _, ls := range w.logs {
		sum := sha256.Sum256([]byte(ls.origin))
		if hex.EncodeToString(sum[:]) == originHash {
			ls.mu.Lock()
			defer ls.mu.Unlock()
			return ls.signed
		}
	}
	return nil
}

// originOf is the first line of a note, read before anything is verified to
// pick the keys to verify it with.
func originOf(signed []byte) (string, bool) {
	line, _, ok := bytes.Cut(signed, []byte{'\n'})
	return string(line), ok && len(line) > 0
}

// AddCheckpoint checks req and, when it extends the state, persists the new
// checkpoint and returns the cosignature line. The state is on disk before
// it returns.
func (w *Witness) AddCheckpoint(ctx context.Context, req *witness.AddCheckpoint) ([]byte, error) {
	origin, ok := originOf(req.Checkpoint)
	if !ok {
		return nil, fmt.Errorf("%w: the checkpoint has no origin line", ErrMalformed)
	}
	ls := w.logs[origin]
	if ls == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownLog, clip(origin))
	}
	if len(req.Checkpoint) > verify.MaxCheckpointSize {
		return nil, fmt.Errorf("%w: the checkpoint is %d bytes, more than %d", ErrMalformed, len(req.Checkpoint), verify.MaxCheckpointSize)
	}
	n, err := note.Open(req.Checkpoint, note.VerifierList(ls.keys...))
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified):
		return nil, fmt.Errorf("%w: no signature by a key of %s (trusted: %v)", ErrForbidden, origin, ls.nkeys)
	case errors.As(err, &invalid):
		return nil, fmt.Errorf("%w: the signature by %s does not verify", ErrForbidden, invalid.Name)
	case err != nil:
		return nil, fmt.Errorf("%w: checkpoint note: %v", ErrMalformed, err)
	}
	cp, err := verify.ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if req.OldSize > cp.Size {
		return nil, fmt.Errorf("%w: old size %d is larger than the checkpoint's %d", ErrMalformed, req.OldSize, cp.Size)
	}
	if cp.Size == 0 && cp.Hash != verify.EmptyTreeHash {
		return nil, fmt.Errorf("%w: a checkpoint of size 0 must have the empty tree's root", ErrInconsistent)
	}

	ls.mu.Lock()
	defer ls.mu.Unlock()
	if req.OldSize != ls.size {
		return nil, &ConflictError{Size: ls.size}
	}
	if err := ls.consistent(req, cp); err != nil {
		// A validly signed checkpoint that does not extend what the
		// log showed before is evidence of a fork: keep it in the log.
		w.log.Error("ALERT: the log signed a checkpoint inconsistent with the one this witness cosigned",
			"origin", origin, "err", err, "cosigned", string(ls.signed), "submitted", string(req.Checkpoint))
		return nil, fmt.Errorf("%w: %v", ErrInconsistent, err)
	}
	signed, err := note.Sign(&note.Note{Text: n.Text}, w.signer)
	if err != nil {
		return nil, err
	}
	line := signed[len(n.Text)+1:]
	// The state served to monitors: the body, the log signatures this
	// witness verified, and its own cosignature.
	var state bytes.Buffer
	state.WriteString(n.Text)
	state.WriteByte('\n')
	for _, s := range n.Sigs {
		state.WriteString("— " + s.Name + " " + s.Base64 + "\n")
	}
	state.Write(line)
	if err := WriteAtomic(ls.path, state.Bytes()); err != nil {
		return nil, fmt.Errorf("witness: persist state: %w", err)
	}
	if cp.Size != ls.size {
		w.log.Info("cosigned", "origin", origin, "from", ls.size, "to", cp.Size)
	}
	ls.size, ls.hash, ls.signed = cp.Size, cp.Hash, state.Bytes()
	return line, nil
}

// consistent checks that cp extends the state, with ls.mu held.
func (ls *logState) consistent(req *witness.AddCheckpoint, cp verify.Checkpoint) error {
	switch {
	case req.OldSize == 0:
		if len(req.Proof) != 0 {
			return errors.New("a consistency proof from size 0 must be empty")
		}
		return nil
	case req.OldSize == cp.Size:
		if len(req.Proof) != 0 {
			return errors.New("a consistency proof between equal sizes must be empty")
		}
		if cp.Hash != ls.hash {
			return fmt.Errorf("two different roots for tree size %d", cp.Size)
		}
		return nil
	}
	if err := tlog.CheckTree(req.Proof, cp.Size, cp.Hash, ls.size, ls.hash); err != nil {
		return fmt.Errorf("consistency proof from size %d to %d does not verify", ls.size, cp.Size)
	}
	return nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
