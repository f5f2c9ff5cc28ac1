package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/audit-stream/audit-stream/verify"
)

// The checkpoint copy is the server's own memory of what it signed last,
// kept where a restore of the data directory does not reach. The database
// holds the same note, but a data directory restored from an older copy
// brings an older, self-consistent checkpoint back with it; the copy does
// not go back, so start-up sees that the log is shorter than what was
// signed. It is no defence against someone who can also write the copy,
// or who holds the signing key: that is what witnesses are for.

// readCopy returns the checkpoint in the copy file; nil when no copy is
// configured or it does not exist yet (the first start with one).
func readCopy(path string) (*verify.Checkpoint, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint copy: %w", err)
	}
	cp, err := noteBody(b)
	if err != nil {
		return nil, fmt.Errorf("checkpoint copy %s: %w", path, err)
	}
	return &cp, nil
}

// keepCopy brings the copy up to signed. A copy that cannot be written
// (its disk full, say) only lags: an older checkpoint of the same log still
// passes the start-up check, so it is logged and signing goes on.
func (c *Checkpointer) keepCopy(signed []byte) {
	if c.opt.Copy == "" {
		return
	}
	if old, err := os.ReadFile(c.opt.Copy); err == nil && bytes.Equal(old, signed) {
		return
	}
	if err := writeCopy(c.opt.Copy, signed); err != nil {
		c.log.Error("checkpoint copy not updated; it lags behind the log until the next checkpoint", "file", c.opt.Copy, "err", err)
	}
}

// writeCopy replaces the copy file with signed: a new file, synced, renamed
// over the old one and the rename synced, so a crash leaves the old copy or
// the new one, never a torn file that would block start-up.
func writeCopy(path string, signed []byte) error {
	if path == "" {
		return nil
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("checkpoint copy: %w", err)
	}
	_, err = tmp.Write(signed)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("checkpoint copy: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
