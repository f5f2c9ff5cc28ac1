package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A kinds file with a mistake refuses the start, with one message naming
// the file, the kind and what is wrong, before the store is opened.
func TestKindsFileRefusedAtStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, file string
		env        bool // through AUDIT_STREAM_KINDS instead of --kinds
		want       string
	}{
		{"bad schema", write("bad.yaml", "kinds:\n  - {name: payment_approved, description: x, schema: {type: objekt}}\n"), false,
			`kinds file ` + filepath.Join(dir, "bad.yaml") + `: kind \"payment_approved\" (kinds[0]): schema: not a valid JSON Schema: at /type`},
		{"no description", write("nodesc.json", `{"kinds":[{"name":"shipment_sent"}]}`), true,
			`kind \"shipment_sent\" (kinds[0]): no description`},
		{"missing file", filepath.Join(dir, "none.yaml"), false, "none.yaml: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			args := []string{"serve", "--addr", "127.0.0.1:0", "--data", data}
			if !tc.env {
				args = append(args, "--kinds", tc.file)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, Binary(t), args...)
			cmd.Env = append(os.Environ(), "HOST=", "PORT=", "AUDIT_STREAM_DATA=", "AUDIT_STREAM_STORE=", "AUDIT_STREAM_KINDS=")
			if tc.env {
				cmd.Env = append(cmd.Env, "AUDIT_STREAM_KINDS="+tc.file)
			}
			out, err := cmd.CombinedOutput()
			if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 {
				t.Fatalf("exit %v, want 1:\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("the refusal does not say %q:\n%s", tc.want, out)
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Errorf("a refused start created the data directory (%v)", err)
			}
		})
	}
}

// The real binary loads a kinds file from the environment and applies it.
func TestKindsFileServed(t *testing.T) {
	file := filepath.Join(t.TempDir(), "kinds.yaml")
	if err := os.WriteFile(file, []byte(`
kinds:
  - name: payment_approved
    description: A payment was approved.
    schema: {type: object, required: [amount], properties: {amount: {type: number, minimum: 0}}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AUDIT_STREAM_KINDS", file)
	p := Start(t, t.TempDir(), "")
	if !strings.Contains(p.Log(), "kinds file loaded") {
		t.Errorf("no start-up line about the kinds file:\n%s", p.Log())
	}
	post := func(body string) int {
		res, err := http.Post(p.URL+"/events", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if s := post(`{"kind":"payment_approved","source":"b","payload":{"amount":3}}`); s != 201 {
		t.Errorf("valid: %d", s)
	}
	if s := post(`{"kind":"payment_approved","source":"b","payload":{"amount":-3}}`); s != 422 {
		t.Errorf("failing its schema: %d", s)
	}
}
