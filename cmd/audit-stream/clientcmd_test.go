package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/internal/apitest"
)

// Every client command takes the one flag set, with the same environment
// defaults: AUDIT_STREAM_URL where nothing else names what to work on,
// AUDIT_STREAM_TOKEN or AUDIT_STREAM_TOKEN_FILE for the token.
func TestClientCommandsShareTheEnvironment(t *testing.T) {
	env := apitest.Start(t, apitest.Options{})
	for i := 1; i <= 3; i++ {
		if code, err := postEvent(env.URL, i); err != nil || code != 201 {
			t.Fatalf("append %d: %d %v", i, code, err)
		}
	}
	waitCheckpoint(t, env.URL, 3)
	dir := t.TempDir()
	t.Setenv("AUDIT_STREAM_URL", env.URL)
	t.Setenv("AUDIT_STREAM_STORE", "")
	t.Setenv("AUDIT_STREAM_DATA", "")
	t.Setenv("AUDIT_STREAM_TOKEN", "")
	t.Setenv("AUDIT_STREAM_TOKEN_FILE", "")

	exported := filepath.Join(dir, "events.ndjson")
	for _, tc := range []struct {
		name   string
		args   []string
		stdout string // a substring
		lines  int    // of stdout, -1: any
	}{
		{"health", []string{"health"}, `{"status":"ok"}`, 1},
		{"ready", []string{"health", "--ready"}, `{"status":"ready"}`, 1},
		{"append", []string{"append", "--kind", "other", "--source", "env"}, `"event_id":4,`, 1},
		{"export", []string{"export"}, `"event_id":4,`, 4},
		{"export to a file", []string{"export", "--out", exported, "--until", "3"}, "", 0},
		{"verify", []string{"verify", "--quiet"}, `"valid":true,"checked":`, 1},
		{"witness", []string{"witness", "--once", "--key", env.Checkpoints.VerifierKey(), "--state", filepath.Join(dir, "witness.state")}, "", 0},
		// Where a store or a file is named, the environment's URL is not used.
		{"export from a data directory", []string{"export", "--data", filepath.Join(dir, "empty")}, "", 0},
		{"verify a file", []string{"verify", "--quiet", "--file", exported}, `"valid":true,"checked":3,`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "export from a data directory" {
				os.Mkdir(tc.args[2], 0o700)
			}
			code, out, errs := runCmd(t, "", tc.args...)
			if code != 0 || !strings.Contains(out, tc.stdout) || tc.lines >= 0 && strings.Count(out, "\n") != tc.lines {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
			}
		})
	}
}

// AUDIT_STREAM_TOKEN_FILE gives every client command its token.
func TestClientCommandsTokenFile(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.json")
	os.WriteFile(tokens, []byte(`{"tokens":[{"id":"ops","roles":["producer","reader"],"sources":["s"],"token":"0123456789abcdef-ops"}]}`), 0o600)
	secret := filepath.Join(dir, "token")
	os.WriteFile(secret, []byte("0123456789abcdef-ops\n"), 0o600)
	addr, _ := serveInProcess(t, "--data", filepath.Join(dir, "data"), "--tokens-file", tokens, "--auth", "required", "--checkpoint-interval", "20ms")
	t.Setenv("AUDIT_STREAM_URL", "http://"+addr)
	t.Setenv("AUDIT_STREAM_TOKEN", "")
	t.Setenv("AUDIT_STREAM_TOKEN_FILE", "")
	t.Setenv("AUDIT_STREAM_STORE", "")
	t.Setenv("AUDIT_STREAM_DATA", "")

	if code, _, errs := runCmd(t, "", "append", "--kind", "other", "--source", "s"); code != 1 || !strings.Contains(errs, "401") {
		t.Fatalf("append without a token: exit %d, %s", code, errs)
	}
	if code, _, errs := runCmd(t, "", "export"); code != 2 || !strings.Contains(errs, "401") {
		t.Fatalf("export without a token: exit %d, %s", code, errs)
	}
	t.Setenv("AUDIT_STREAM_TOKEN_FILE", secret)
	if code, out, errs := runCmd(t, "", "append", "--kind", "other", "--source", "s"); code != 0 || !strings.Contains(out, `"event_id":1,`) {
		t.Fatalf("append with the token file: exit %d, %s", code, errs)
	}
	if code, out, errs := runCmd(t, "", "export"); code != 0 || strings.Count(out, "\n") != 1 {
		t.Fatalf("export with the token file: exit %d, %q, %s", code, out, errs)
	}
}
