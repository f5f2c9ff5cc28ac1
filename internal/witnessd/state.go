package witnessd

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"

	"github.com/audit-stream/audit-stream/verify"
)

// WriteAtomic replaces path with data so that a crash leaves the old or the
// new content, never a mix, and the new content survives a power loss once
// it returns: a temporary file in the same directory, fsynced, renamed over
// path, then the directory fsynced so that the rename itself is durable.
func WriteAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
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
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// noteBody parses the checkpoint of a signed note without checking its
// signatures: for state this process wrote itself, after checking them.
func noteBody(signed []byte) (verify.Checkpoint, error) {
	i := bytes.LastIndex(signed, []byte("\n\n"))
	if i < 0 {
		return verify.Checkpoint{}, errors.New("not a signed note")
	}
	return verify.ParseCheckpoint(signed[:i+1])
}
