package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/apitest"
)

func runCmd(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestAppendCommand(t *testing.T) {
	env := apitest.Start(t, apitest.Options{})
	file := filepath.Join(t.TempDir(), "payload.json")
	os.WriteFile(file, []byte("{\"from\": \"file\"}\n"), 0o644)

	code, out, errs := runCmd(t, "", "append", "--url", env.URL, "--kind", "request_denied", "--source", "gw", "--payload", `{"b":1,"a":"x"}`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	ev, err := event.ParseStored([]byte(strings.TrimSuffix(out, "\n")))
	if err != nil || ev.ID != 1 || ev.Kind != "request_denied" || string(ev.Payload) != `{"a":"x","b":1}` || strings.Count(out, "\n") != 1 {
		t.Fatalf("printed %q (%v)", out, err)
	}
	if h, _ := ev.ComputeHash(nil); h != ev.Hash {
		t.Fatal("printed event does not re-hash")
	}

	code, out, errs = runCmd(t, "", "append", "--url", env.URL, "--kind", "other", "--source", "f", "--payload", "@"+file)
	if code != 0 || !strings.Contains(out, `"payload":{"from":"file"}`) {
		t.Fatalf("@file: exit %d %q %s", code, out, errs)
	}
	bom := filepath.Join(t.TempDir(), "bom.json")
	os.WriteFile(bom, []byte("\xef\xbb\xbf{\"from\": \"bom\"}\n"), 0o644)
	code, out, errs = runCmd(t, "", "append", "--url", env.URL, "--kind", "other", "--source", "f", "--payload", "@"+bom)
	if code != 0 || !strings.Contains(out, `"payload":{"from":"bom"}`) {
		t.Fatalf("@file with a BOM: exit %d %q %s", code, out, errs)
	}
	code, out, errs = runCmd(t, `{"from":"stdin"}`, "append", "--url", env.URL, "--kind", "other", "--source", "f", "--payload", "@-")
	if code != 0 || !strings.Contains(out, `"payload":{"from":"stdin"}`) {
		t.Fatalf("@-: exit %d %q %s", code, out, errs)
	}
	// The URL from the environment.
	t.Setenv("AUDIT_STREAM_URL", env.URL)
	code, out, errs = runCmd(t, "", "append", "--kind", "other", "--source", "env")
	if code != 0 || !strings.Contains(out, `"event_id":5`) || !strings.Contains(out, `"payload":{}`) {
		t.Fatalf("env URL: exit %d %q %s", code, out, errs)
	}

	// A retry with the same idempotency key appends nothing.
	for i, want := range []string{"", "was used before"} {
		code, out, errs = runCmd(t, "", "append", "--kind", "other", "--source", "f", "--payload", `{"order":7731}`, "--idempotency-key", "order-7731")
		if code != 0 || !strings.Contains(out, `"event_id":6,`) || !strings.Contains(errs, want) {
			t.Fatalf("keyed append %d: exit %d %q %s", i, code, out, errs)
		}
	}

	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"--source", "s"}, 2, "--kind and --source are required"},
		{[]string{"--kind", "other", "--source", "f", "--idempotency-key", "order-7731"}, 1, "422"},
		{[]string{"--kind", "other", "--source", "f", "--idempotency-key", strings.Repeat("k", 300)}, 1, "Idempotency-Key"},
		{[]string{"--kind", "other"}, 2, "--kind and --source are required"},
		{[]string{"--kind", "other", "--source", "s", "--payload", "{nope"}, 2, "not valid JSON"},
		{[]string{"--kind", "other", "--source", "s", "--payload", "@/does/not/exist"}, 2, "no such file"},
		{[]string{"--kind", "other", "--source", "s", "extra"}, 2, "unexpected argument"},
		{[]string{"--kind", "other", "--source", "s", "--url", "nope"}, 2, "bad base URL"},
		{[]string{"--kind", "nope", "--source", "s"}, 1, `422 Unprocessable Entity: kind: unknown kind "nope"`},
		{[]string{"--kind", "other", "--source", "s", "--payload", "[1]"}, 1, "422"},
		{[]string{"--kind", "other", "--source", "s", "--timestamp", "yesterday"}, 1, "timestamp"},
	} {
		code, out, errs := runCmd(t, "", append([]string{"append"}, tc.args...)...)
		if code != tc.code || out != "" || !strings.Contains(errs, tc.stderr) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d and %q", tc.args, code, out, errs, tc.code, tc.stderr)
		}
	}
	if h := env.Ledger.Head().ID; h != 6 {
		t.Fatalf("rejected appends wrote events: head %d", h)
	}
}

func TestTailCommand(t *testing.T) {
	env := apitest.Start(t, apitest.Options{})
	for _, k := range []string{"request_denied", "other", "request_denied"} {
		runCmd(t, "", "append", "--url", env.URL, "--kind", k, "--source", "gw")
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var errb bytes.Buffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"tail", "--url", env.URL, "--after", "0", "--kind", "request_denied", "--kind", "request_allowed"}, nil, pw, &errb)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	next := func() event.Event {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("tail output ended: %v", lines.Err())
		}
		ev, err := event.ParseStored(lines.Bytes())
		if err != nil {
			t.Fatalf("not an event line %q: %v", lines.Text(), err)
		}
		return ev
	}
	if a, b := next(), next(); a.ID != 1 || b.ID != 3 {
		t.Fatalf("replayed %d, %d", a.ID, b.ID)
	}
	runCmd(t, "", "append", "--url", env.URL, "--kind", "other", "--source", "gw")
	runCmd(t, "", "append", "--url", env.URL, "--kind", "request_allowed", "--source", "gw")
	if e := next(); e.ID != 5 {
		t.Fatalf("live: %d", e.ID)
	}
	cancel()
	go io.Copy(io.Discard, pr)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("interrupted tail exit %d: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tail did not stop")
	}

	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"--after", "-1"}, 2, "non-negative"},
		{[]string{"--after", "x"}, 2, "non-negative"},
		{[]string{"--kind", "nope"}, 1, `unknown kind "nope"`},
		{[]string{"--after", "99"}, 1, "beyond the head"},
	} {
		code, out, errs := runCmd(t, "", append([]string{"tail", "--url", env.URL}, tc.args...)...)
		if code != tc.code || out != "" || !strings.Contains(errs, tc.stderr) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d and %q", tc.args, code, out, errs, tc.code, tc.stderr)
		}
	}
}
