package checkpoint_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/audit-stream/audit-stream/internal/checkpoint"
)

// The key goes in whole or not at all, never over an existing file, and no
// temporary file is left behind.
func TestWriteKeyFileAtomic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "signing.key")
	skey, _, err := checkpoint.GenerateKey("example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.WriteKeyFile(path, skey); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v", err, fi.Mode())
	}
	if _, err := checkpoint.ReadKeyFile(path); err != nil {
		t.Fatal(err)
	}
	other, _, _ := checkpoint.GenerateKey("example.com/other")
	if err := checkpoint.WriteKeyFile(path, other); !os.IsExist(err) {
		t.Fatalf("overwrite: err = %v, want it refused", err)
	}
	if k, err := checkpoint.ReadKeyFile(path); err != nil || k.Signer.Name() != "example.com/log" {
		t.Fatalf("the refused write changed the key: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want only the key: %v", len(ents), ents)
	}
}

// An empty key file in the data directory, as a crash during key creation
// left it before writes were atomic, is replaced instead of blocking start.
func TestEmptyKeyFileReplaced(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, checkpoint.KeyFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	k, created, err := checkpoint.LoadOrCreateKey(dir, "example.com/log")
	if err != nil || !created || k == nil {
		t.Fatalf("LoadOrCreateKey over an empty key file: %v, created %v", err, created)
	}
	// A damaged, non-empty key is never replaced: it may have signed.
	if err := os.WriteFile(filepath.Join(dir, checkpoint.KeyFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := checkpoint.LoadOrCreateKey(dir, "example.com/log"); err == nil {
		t.Fatal("a damaged key file was accepted or replaced")
	}
}
