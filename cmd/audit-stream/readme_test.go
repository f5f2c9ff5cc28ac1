package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/internal/e2e"
)

// readmeMarker, on the line before a sh block of the README, marks the
// block as runnable against a freshly started server.
const readmeMarker = "<!-- readme-test: fresh server -->"

// readmeBlocks returns the README's marked sh blocks.
func readmeBlocks(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var blocks []string
	for i := 0; i+1 < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != readmeMarker {
			continue
		}
		if lines[i+1] != "```sh" {
			t.Fatalf("README line %d: %s must be followed by a ```sh block", i+1, readmeMarker)
		}
		var block []string
		for i += 2; i < len(lines) && lines[i] != "```"; i++ {
			block = append(block, lines[i])
		}
		blocks = append(blocks, strings.Join(block, "\n"))
	}
	return blocks
}

// The README's marked examples run as written against a real server on a
// fresh data directory: every command exits 0 (curl fails on any HTTP
// error), except that streams and tails, which never end by themselves,
// are cut after a few seconds.
func TestReadmeExamplesRun(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	blocks := readmeBlocks(t)
	if len(blocks) < 2 {
		t.Fatalf("found %d marked README blocks, want at least 2", len(blocks))
	}
	p := e2e.Start(t, t.TempDir(), "")
	bin := e2e.Binary(t)
	prelude := `set -euo pipefail
curl() { command curl --max-time 3 --fail-with-body "$@" || { rc=$?; [ $rc -eq 28 ] || return $rc; }; }
audit-stream() { timeout 3 "$AUDIT_STREAM_BIN" "$@" || { rc=$?; [ $rc -eq 124 ] || return $rc; }; }
`
	for i, block := range blocks {
		script := prelude + strings.ReplaceAll(block, "localhost:8093", p.Addr)
		cmd := exec.Command("bash", "-c", script)
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), "AUDIT_STREAM_BIN="+bin, "AUDIT_STREAM_URL="+p.URL, "AUDIT_STREAM_TOKEN=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("README block %d failed: %v\n--- block\n%s\n--- output\n%s", i+1, err, block, out)
		}
	}
}
