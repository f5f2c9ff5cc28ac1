package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/audit-stream/audit-stream/client"
	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
	"github.com/audit-stream/audit-stream/provenance"
)

// provVerifyReport is what verify --provenance prints.
type provVerifyReport struct {
	Valid      bool               `json:"valid"`
	Reason     *string            `json:"reason"`
	Provenance *provenance.Report `json:"provenance"`
}

func runVerifyJSON(t *testing.T, args ...string) (int, provVerifyReport, string) {
	t.Helper()
	code, out, errs := runCmd(t, "", append([]string{"verify", "--quiet"}, args...)...)
	var rep provVerifyReport
	if out != "" {
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("verify printed %q: %v", out, err)
		}
	}
	return code, rep, errs
}

func provReason(r provVerifyReport) string {
	if r.Reason == nil {
		return ""
	}
	return *r.Reason
}

// TestProducerSignaturesEndToEnd: producer keys made with keygen and
// registered with token create --signing-key; events appended with
// append --sign-key; verify --url --producer-key checks every signature and
// the provenance seal; a rotated producer key's old events verify with the
// old key given; and editing the provenance table in the SQLite file —
// naively, or with every chain value recomputed — is caught by verify.
func TestProducerSignaturesEndToEnd(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	dir := t.TempDir()
	keygen := func(name string) (keyFile, pubFile string) {
		keyFile = filepath.Join(dir, name+".key")
		code, out, errs := runCmd(t, "", "keygen", "--name", name, "--out", keyFile)
		if code != 0 {
			t.Fatalf("keygen: %d %s", code, errs)
		}
		pubFile = filepath.Join(dir, name+".pub")
		os.WriteFile(pubFile, []byte(out), 0o644)
		return keyFile, pubFile
	}
	token := func(args ...string) string {
		code, out, errs := runCmd(t, "", append([]string{"token", "create", "--data", env.Dir}, args...)...)
		if code != 0 {
			t.Fatalf("token create %v: %d %s", args, code, errs)
		}
		return strings.SplitN(out, "\n", 2)[0]
	}
	oldKey, oldPub := keygen("billing.example.com")
	newKey, newPub := keygen("billing.example.com-2027")
	_, strangerPub := keygen("stranger.example.com")

	// A private key is refused as a token's key.
	if code, _, errs := runCmd(t, "", "token", "create", "--data", env.Dir, "--role", "producer", "--source", "billing", "--signing-key", oldKey); code != 2 || !strings.Contains(errs, "private key") {
		t.Fatalf("token create with a private key: %d %s", code, errs)
	}
	producer := token("--role", "producer", "--source", "billing", "--signing-key", oldPub)
	reader := token("--role", "reader")
	appendSigned := func(tok, key string, payload string) {
		t.Helper()
		code, out, errs := runCmd(t, "", "append", "--url", env.URL, "--token", tok, "--kind", "other", "--source", "billing", "--payload", payload, "--sign-key", key)
		if code != 0 {
			t.Fatalf("append --sign-key: %d %s %s", code, out, errs)
		}
	}
	for _, p := range []string{`{"n":1}`, `{"n":1}`, `{"n":2}`} { // equal events sign differently
		appendSigned(producer, oldKey, p)
	}
	// Unsigned, by a keyed token: refused.
	if code, _, errs := runCmd(t, "", "append", "--url", env.URL, "--token", producer, "--kind", "other", "--source", "billing"); code != 1 || !strings.Contains(errs, "missing Audit-Signature") {
		t.Fatalf("unsigned append by a keyed token: %d %s", code, errs)
	}
	// Rotation: the producer gets a new token with its new key.
	rotated := token("--role", "producer", "--source", "billing", "--signing-key", newPub)
	appendSigned(rotated, newKey, `{"n":3}`)
	if code, _, errs := runCmd(t, "", "append", "--url", env.URL, "--token", rotated, "--kind", "other", "--source", "billing", "--sign-key", oldKey); code != 1 || !strings.Contains(errs, "unknown keyid") {
		t.Fatalf("old key on the rotated token: %d %s", code, errs)
	}

	// An admin token may append in any source's name, unsigned.
	admin := token("--role", "admin")
	if code, _, errs := runCmd(t, "", "append", "--url", env.URL, "--token", admin, "--kind", "other", "--source", "billing", "--payload", `{"forged":true}`); code != 0 {
		t.Fatalf("admin append: %d %s", code, errs)
	}

	logPub := filepath.Join(dir, "log.pub")
	os.WriteFile(logPub, []byte(env.Key.VerifierKey), 0o644)
	waitCheckpoint(t, env.URL, 5)
	base := []string{"--url", env.URL, "--token", reader, "--key", "@" + logPub}

	code, rep, errs := runVerifyJSON(t, append(base, "--producer-key", "@"+oldPub, "--producer-key", "@"+newPub)...)
	if code != 0 || !rep.Valid || rep.Provenance == nil || rep.Provenance.Signed != 4 || rep.Provenance.Records != 5 || !rep.Provenance.SignaturesChecked {
		t.Fatalf("verify with both producer keys: %d %+v %s %s", code, rep.Provenance, provReason(rep), errs)
	}
	// A verifier that requires billing's events to be signed catches the
	// one appended in its name without its key.
	code, rep, _ = runVerifyJSON(t, append(base, "--producer-key", "@"+oldPub, "--producer-key", "@"+newPub, "--signed-source", "billing")...)
	if code != 1 || !strings.Contains(provReason(rep), `event 5 of source "billing" is not signed (appended by token:`) {
		t.Fatalf("verify --signed-source billing: %d %s", code, provReason(rep))
	}
	if code, _, errs := runCmd(t, "", append([]string{"verify"}, append(base, "--signed-source", "billing")...)...); code != 2 || !strings.Contains(errs, "needs the producers' keys") {
		t.Fatalf("--signed-source without keys: %d %s", code, errs)
	}
	code, rep, _ = runVerifyJSON(t, append(base, "--producer-key", "@"+newPub)...)
	if code != 1 || !strings.Contains(provReason(rep), "no --producer-key names it") {
		t.Fatalf("verify without the old key: %d %s", code, provReason(rep))
	}
	code, rep, _ = runVerifyJSON(t, append(base, "--producer-key", "@"+strangerPub)...)
	if code != 1 || !strings.Contains(provReason(rep), "events 1-1 are signed by billing.example.com+") {
		t.Fatalf("verify with a stranger's key: %d %s", code, provReason(rep))
	}
	code, rep, _ = runVerifyJSON(t, append(base, "--provenance")...)
	if code != 0 || rep.Provenance.SignaturesChecked || rep.Provenance.Signed != 4 {
		t.Fatalf("verify --provenance without producer keys: %d %+v %s", code, rep.Provenance, provReason(rep))
	}

	// Offline: an export, the checkpoint, the records and the seal, as an
	// auditor archives them.
	ctx := context.Background()
	rc, err := client.New(env.URL, client.WithToken(reader))
	if err != nil {
		t.Fatal(err)
	}
	cpText, err := rc.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp := waitCheckpoint(t, env.URL, 5)
	sealText, err := rc.ProvenanceSeal(ctx, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	recs0, err := rc.ProvenanceRecords(ctx, 0, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	recText, _ := io.ReadAll(recs0)
	recs0.Close()
	files := map[string][]byte{"cp.txt": cpText, "seal.txt": sealText, "prov.ndjson": recText}
	for name, b := range files {
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	exported := filepath.Join(dir, "events.ndjson")
	if code, _, errs := runCmd(t, "", "export", "--url", env.URL, "--token", reader, "--out", exported); code != 0 {
		t.Fatalf("export: %d %s", code, errs)
	}
	offline := []string{"--file", exported, "--checkpoint", filepath.Join(dir, "cp.txt"), "--key", "@" + logPub,
		"--provenance-file", filepath.Join(dir, "prov.ndjson"), "--seal", filepath.Join(dir, "seal.txt"),
		"--producer-key", "@" + oldPub, "--producer-key", "@" + newPub}
	code, rep, errs = runVerifyJSON(t, offline...)
	if code != 0 || rep.Provenance == nil || rep.Provenance.Signed != 4 {
		t.Fatalf("offline verify: %d %+v %s %s", code, rep.Provenance, provReason(rep), errs)
	}
	os.WriteFile(filepath.Join(dir, "prov.ndjson"), []byte(strings.Replace(string(recText), `"received_at":"`, `"received_at":"1`, 1)), 0o644)
	code, rep, _ = runVerifyJSON(t, offline...)
	if code != 1 || !strings.Contains(provReason(rep), "events 1-1 does not hash to its chain value") {
		t.Fatalf("offline verify of an edited record: %d %s", code, provReason(rep))
	}

	// An insider edits the provenance table behind the server's back.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(env.Dir, sqlite.FileName)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("UPDATE provenance SET appended_by = 'token:tok_somebodyelse' WHERE first_id = 2")
	code, rep, _ = runVerifyJSON(t, append(base, "--provenance")...)
	if code != 1 || !strings.Contains(provReason(rep), "events 2-2 does not hash to its chain value") {
		t.Fatalf("verify after editing a record: %d %s", code, provReason(rep))
	}
	// ... and recomputes every later chain value, which needs no key.
	var recs []provenance.Record
	if err := env.Store.ScanProvenance(context.Background(), 0, 0, func(r *provenance.Record) error {
		recs = append(recs, *r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var prev event.Hash
	for _, r := range recs {
		r.Chain = r.ChainHash(prev)
		prev = r.Chain
		exec("UPDATE provenance SET chain = ? WHERE first_id = ?", r.Chain[:], r.FirstID)
	}
	code, rep, _ = runVerifyJSON(t, append(base, "--provenance")...)
	if code != 1 || !strings.Contains(provReason(rep), "do not reach the value the log sealed") {
		t.Fatalf("verify after rewriting the chain: %d %s", code, provReason(rep))
	}
	// Records appended after the rewrite chain from the server's own
	// value, not the rewritten one: still caught.
	appendSigned(rotated, newKey, `{"n":4}`)
	waitCheckpoint(t, env.URL, 6)
	code, rep, _ = runVerifyJSON(t, append(base, "--provenance")...)
	if code != 1 || !strings.Contains(provReason(rep), "tampered") {
		t.Fatalf("verify after a new checkpoint over the rewritten chain: %d %s", code, provReason(rep))
	}
	// The insider rewrites the chain again, up to the last record, and
	// restarts the server, which now continues from the rewritten value:
	// its checkpointer recomputes the chain from its last seal and will
	// not seal it.
	recs = recs[:0]
	if err := env.Store.ScanProvenance(context.Background(), 0, 0, func(r *provenance.Record) error {
		recs = append(recs, *r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	prev = event.Hash{}
	for _, r := range recs {
		r.Chain = r.ChainHash(prev)
		prev = r.Chain
		exec("UPDATE provenance SET chain = ? WHERE first_id = ?", r.Chain[:], r.FirstID)
	}
	db.Close()
	env.Stop()
	logs := &syncWriter{}
	env = apitest.Start(t, apitest.Options{Dir: env.Dir, Log: logs})
	base[1] = env.URL
	appendSigned(rotated, newKey, `{"n":5}`)
	waitCheckpoint(t, env.URL, 7)
	code, rep, _ = runVerifyJSON(t, append(base, "--provenance")...)
	if code != 1 || !strings.Contains(provReason(rep), "no provenance seal for its checkpoint at size 7") {
		t.Fatalf("verify after a restart on the rewritten chain: %d %s", code, provReason(rep))
	}
	if !strings.Contains(logs.String(), "ALERT: the provenance records do not continue the chain this log sealed") {
		t.Fatalf("no ALERT logged:\n%s", logs.String())
	}
}

// syncWriter collects log lines written from many goroutines.
type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
