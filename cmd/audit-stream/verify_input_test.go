package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/checkpoint"
)

// verify tells input errors from tampering: what is not an export, not a
// receipt, or not signed by the key given exits 2 with a message saying so,
// never valid:false (which an auditor reads as tampering); a damaged log
// exits 1; a byte-order mark is ignored.
func TestVerifyTellsInputErrorsFromTampering(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	for i := 1; i <= 5; i++ {
		if code, err := postEvent(env.URL, i); err != nil || code != 201 {
			t.Fatalf("append %d: %d %v", i, code, err)
		}
	}
	waitCheckpoint(t, env.URL, 5)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	export := fetch(t, env.URL+"/export?until=5")
	good := write("events.ndjson", export)
	bom := write("bom.ndjson", append([]byte("\xef\xbb\xbf"), export...))
	bomArray := write("bom.json", append([]byte("\xef\xbb\xbf["), append([]byte(strings.ReplaceAll(strings.TrimSpace(string(export)), "\n", ",\n")), ']')...))
	tampered := write("tampered.ndjson", []byte(strings.Replace(string(export), `"i":3`, `"i":33`, 1)))
	unauthorized := write("401.json", []byte(`{"type":"about:blank","title":"Unauthorized","status":401,"detail":"this endpoint requires a token: send Authorization: Bearer <token>"}`+"\n"))
	unauthorizedArray := write("401-array.json", []byte(`[{"status":401,"title":"Unauthorized","detail":"no"}]`))
	html := write("page.html", []byte("<html><body>Bad Gateway</body></html>\n"))
	otherJSON := write("other.json", []byte(`{"name":"audit-stream","version":"0.1.0"}`+"\n"))
	cp := write("checkpoint.txt", fetch(t, env.URL+"/checkpoint"))
	notCp := write("not-a-checkpoint.txt", []byte("hello\n"))
	receipt := write("event-3.tlog-proof", fetch(t, env.URL+"/events/3/receipt"))
	notReceipt := write("not-a-receipt", []byte(`{"status":401,"detail":"no"}`))
	bomReceipt := write("bom.tlog-proof", append([]byte("\xef\xbb\xbf"), fetch(t, env.URL+"/events/3/receipt")...))
	key := env.Checkpoints.VerifierKey()
	_, other, err := checkpoint.GenerateKey("audit-stream/test")
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := other.VerifierKey

	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string // a substring, "" for none
		stderr     string
		noValidOut bool // nothing on stdout: no report an auditor could misread
	}{
		{"intact export", []string{"--file", good}, 0, `"valid":true,"checked":5`, "", false},
		{"intact export with a BOM", []string{"--file", bom}, 0, `"valid":true,"checked":5`, "", false},
		{"JSON array dump with a BOM", []string{"--file", bomArray}, 0, `"valid":true,"checked":5`, "", false},
		{"with its checkpoint", []string{"--file", bom, "--checkpoint", cp, "--key", key}, 0, `"valid":true`, "", false},
		{"tampered export", []string{"--file", tampered}, 1, `"valid":false,"checked":2,"first_break_at":3`, "", false},
		{"a saved 401 answer", []string{"--file", unauthorized}, 2, "", "not an export but an HTTP error answer (401 Unauthorized", true},
		{"a 401 answer in an array", []string{"--file", unauthorizedArray}, 2, "", "HTTP error answer (401", true},
		{"an HTML page", []string{"--file", html}, 2, "", `not an export: it starts with '<'`, true},
		{"some other JSON", []string{"--file", otherJSON}, 2, "", "none of an event's members", true},
		{"wrong key for the checkpoint", []string{"--file", good, "--checkpoint", cp, "--key", wrongKey}, 2, "", "is not signed by --key audit-stream/test", true},
		{"a checkpoint file that is not one", []string{"--file", good, "--checkpoint", notCp, "--key", key}, 2, "", "is not a signed checkpoint", true},
		{"wrong key against the server", []string{"--url", env.URL, "--key", wrongKey}, 2, "", "is not signed by --key", true},
		{"wrong origin", []string{"--url", env.URL, "--key", key, "--origin", "example.com/other"}, 2, "", "check --origin", true},
		{"receipt", []string{"--receipt", receipt, "--key", key}, 0, `"event":{"event_id":3,"hash":"`, "proves event 3 (request_denied from svc", false},
		{"receipt with a BOM, against the live log", []string{"--receipt", bomReceipt, "--key", key, "--url", env.URL}, 0, `"event_id":3`, "proves event 3", false},
		{"receipt, wrong key", []string{"--receipt", receipt, "--key", wrongKey}, 2, "", "is not signed by --key", true},
		{"not a receipt", []string{"--receipt", notReceipt, "--key", key}, 2, "", "is not an audit-stream receipt", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCmd(t, "", append([]string{"verify", "--quiet"}, tt.args...)...)
			if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errs, tt.stderr) || tt.noValidOut && out != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q", code, out, errs, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}

func TestServeRefusesAnUnknownTimestampPrecision(t *testing.T) {
	t.Parallel()
	code, _, errs := runCmd(t, "", "serve", "--data", t.TempDir(), "--timestamp-precision", "minutes")
	if code != 2 || !strings.Contains(errs, "seconds or microseconds") {
		t.Fatalf("exit %d: %s", code, errs)
	}
}
