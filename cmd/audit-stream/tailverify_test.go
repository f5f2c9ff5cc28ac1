package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/apitest"
	"golang.org/x/mod/sumdb/note"
)

// runFor runs the command until it ends or d has passed (then as Ctrl-C).
func runFor(t *testing.T, d time.Duration, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestTailVerify(t *testing.T) {
	env := apitest.Start(t, apitest.Options{})
	for i := range 40 {
		kind := []string{"request_denied", "other"}[i%2]
		if code, _, errs := runCmd(t, "", "append", "--url", env.URL, "--kind", kind, "--source", "gw", "--payload", fmt.Sprintf(`{"i":%d}`, i)); code != 0 {
			t.Fatal(errs)
		}
	}
	pub := filepath.Join(t.TempDir(), "log.pub")
	os.WriteFile(pub, []byte(env.Key.VerifierKey+"\n"), 0o644)

	t.Run("verified events, filtered here", func(t *testing.T) {
		code, out, errs := runFor(t, 2*time.Second, "tail", "--url", env.URL, "--after", "10", "--kind", "request_denied", "--verify", "--key", "@"+pub)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 15 {
			t.Fatalf("%d lines, want the 15 request_denied events after 10: %s", len(lines), out)
		}
		for i, l := range lines {
			e, err := event.ParseStored([]byte(l))
			if err != nil || e.ID != int64(11+2*i) || e.Kind != "request_denied" {
				t.Fatalf("line %d: %q %v", i, l, err)
			}
		}
	})

	t.Run("another key: exit 3 with the evidence", func(t *testing.T) {
		_, vkey, _ := note.GenerateKey(nil, env.Checkpoints.Origin())
		code, out, errs := runFor(t, 5*time.Second, "tail", "--url", env.URL, "--after", "0", "--verify", "--key", vkey)
		if code != 3 || out != "" || !strings.Contains(errs, "verification failed (signature)") || !strings.Contains(errs, "--- offending checkpoint ---\n"+env.Checkpoints.Origin()+"\n") {
			t.Fatalf("exit %d, stdout %q, stderr %s", code, out, errs)
		}
	})

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--verify"}, "--verify needs --key"},
		{[]string{"--key", "@" + pub}, "go with --verify"},
		{[]string{"--quorum", "1"}, "go with --verify"},
		{[]string{"--verify", "--key", "nonsense"}, "--key: verifier key"},
		{[]string{"--verify", "--key", "@/nonexistent/log.pub"}, "--key: open /nonexistent/log.pub"},
		{[]string{"--verify", "--key", "@" + pub, "--quorum", "1"}, "--quorum needs --witness-key"},
		{[]string{"--verify", "--key", "@" + pub, "--witness-key", "nonsense"}, "--witness-key"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, errs := runCmd(t, "", append([]string{"tail", "--url", env.URL}, tc.args...)...)
			if code != 2 || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d: %s; want 2 and %q", code, errs, tc.want)
			}
		})
	}
}
