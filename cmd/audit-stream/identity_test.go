package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/internal/e2e"
)

// The log's origin and key are fixed at its first start; the real binary
// refuses another unless --rotate asks for it.
func TestServeRefusesAnotherIdentity(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := e2e.Start(t, dir, "", "--origin", "example.com/audit")
	stop(t, srv)
	keyFile := filepath.Join(t.TempDir(), "other.key")
	if code, _, errs := cli(t, "keygen", "--name", "example.com/audit", "--out", keyFile); code != 0 {
		t.Fatalf("keygen: %s", errs)
	}
	for _, args := range [][]string{
		{"--origin", "example.com/typo"},
		{"--origin", "example.com/audit", "--signing-key", keyFile},
		{}, // the default origin is audit-stream/<log id>, not what the log was started with
	} {
		cmd := exec.Command(e2e.Binary(t), append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dir}, args...)...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "refusing to start") || !strings.Contains(string(out), "--rotate") {
			t.Errorf("serve %v: %v\n%s", args, err, out)
		}
	}
	srv = e2e.Start(t, dir, "", "--origin", "example.com/audit")
	stop(t, srv)
	srv = e2e.Start(t, dir, "", "--origin", "example.com/audit", "--signing-key", keyFile, "--rotate")
	if !strings.Contains(srv.Log(), "signing key rotated") {
		t.Errorf("no rotation logged:\n%s", srv.Log())
	}
	stop(t, srv)
	srv = e2e.Start(t, dir, "", "--origin", "example.com/audit", "--signing-key", keyFile)
	stop(t, srv)
}
