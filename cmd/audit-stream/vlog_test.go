package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/client"
	"github.com/audit-stream/audit-stream/internal/e2e"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/tlog"
)

// startServer runs the real binary on dir, signing checkpoints often so
// that tests need not wait.
func startServer(t *testing.T, dir string) *e2e.Process {
	t.Helper()
	return e2e.Start(t, dir, "", "--checkpoint-interval", "50ms")
}

// stop sends SIGTERM and requires a clean exit.
func stop(t *testing.T, p *e2e.Process) {
	t.Helper()
	if code := p.Terminate(t); code != 0 {
		t.Fatalf("server exit status %d\n%s", code, p.Log())
	}
}

func postEvent(url string, i int) (int, error) {
	c, err := client.New(url)
	if err != nil {
		return 0, err
	}
	return appendStatus(c, client.AppendRequest{Kind: "request_denied", Source: "svc", Payload: json.RawMessage(fmt.Sprintf(`{"i":%d,"note":"n%d"}`, i, i))})
}

// appendStatus appends r and returns the status the server answered with:
// 201, or the status of its refusal. A transport failure is an error.
func appendStatus(c *client.Client, r client.AppendRequest) (int, error) {
	_, err := c.Append(context.Background(), r)
	var e *client.Error
	switch {
	case err == nil:
		return http.StatusCreated, nil
	case errors.As(err, &e):
		return e.Status, nil
	}
	return 0, err
}

// testClient is a client for the server at url.
func testClient(t *testing.T, url string) *client.Client {
	t.Helper()
	c, err := client.New(url, client.WithTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serverVerify is the server's own GET /verify.
func serverVerify(t *testing.T, url string) verify.TreeReport {
	t.Helper()
	rep, err := testClient(t, url).Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// fetch GETs the raw bytes a user would save with curl: an export, a
// checkpoint, a receipt.
func fetch(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	return b
}

// waitCheckpoint waits until the served checkpoint covers n events.
func waitCheckpoint(t *testing.T, url string, n int64) verify.Checkpoint {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	c := testClient(t, url)
	for {
		signed, err := c.Checkpoint(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		text, _, _ := bytes.Cut(signed, []byte("\n\n"))
		cp, err := verify.ParseCheckpoint(append(text, '\n'))
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size >= n {
			return cp
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint stuck at %d, want %d", cp.Size, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cli runs a subcommand in-process.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// rewriteHistory is the insider attack: with the server stopped, change
// the payload of event id in the SQLite file and recompute every later
// hash, prev_hash and stored Merkle tree node, so that the chain and the
// tree are both self-consistent again.
func rewriteHistory(t *testing.T, dir string, id int64) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	rows, err := tx.Query(`SELECT event_id, timestamp, kind, source, payload, prev_hash, hash, tree FROM events ORDER BY event_id`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		e    event.Event
		tree []byte
	}
	var all []row
	for rows.Next() {
		var r row
		var prev, hash []byte // 32 raw bytes each
		if err := rows.Scan(&r.e.ID, &r.e.Timestamp, &r.e.Kind, &r.e.Source, &r.e.Payload, &prev, &hash, &r.tree); err != nil {
			t.Fatal(err)
		}
		r.e.PrevHash, r.e.Hash = event.Hash(prev), event.Hash(hash)
		all = append(all, r)
	}
	rows.Close()
	// Stored hashes by stored-hash index, rebuilt as the ledger does.
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	prev := event.ZeroHash
	for i := range all {
		e := &all[i].e
		if e.ID == id {
			e.Payload = []byte(`{"i":0,"note":"rewritten by an insider"}`)
		}
		if e.ID >= id {
			e.PrevHash = prev
			e.Hash, _ = e.ComputeHash(nil)
		}
		hs, err := tlog.StoredHashesForRecordHash(e.ID-1, tlog.RecordHash(e.Hash[:]), reader)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
		if e.ID >= id {
			var blob []byte
			for _, h := range hs {
				blob = append(blob, h[:]...)
			}
			if _, err := tx.Exec(`UPDATE events SET payload = ?, prev_hash = ?, hash = ?, tree = ? WHERE event_id = ?`,
				e.Payload, e.PrevHash[:], e.Hash[:], blob, e.ID); err != nil {
				t.Fatal(err)
			}
		}
		prev = e.Hash
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestInsiderAttackIsCaught(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir)
	for i := 1; i <= 30; i++ {
		if code, err := postEvent(srv.URL, i); err != nil || code != 201 {
			t.Fatalf("append %d: %d %v", i, code, err)
		}
	}
	waitCheckpoint(t, srv.URL, 30)
	code, vkey, errs := cli(t, "key", "show", "--data", dir)
	if code != 0 {
		t.Fatalf("key show: %d %s", code, errs)
	}
	vkey = strings.TrimSpace(vkey)
	if served, err := testClient(t, srv.URL).VerifierKey(context.Background()); err != nil || served != vkey {
		t.Fatalf("served key %q, key show %q", served, vkey)
	}
	state := filepath.Join(t.TempDir(), "witness.state")
	if code, _, errs := cli(t, "witness", "--url", srv.URL, "--key", vkey, "--state", state, "--once"); code != 0 {
		t.Fatalf("witness before the attack: %d %s", code, errs)
	}
	receipt := filepath.Join(t.TempDir(), "event-5.tlog-proof")
	os.WriteFile(receipt, fetch(t, srv.URL+"/events/5/receipt"), 0o600)
	keyFile := filepath.Join(t.TempDir(), "log.pub")
	os.WriteFile(keyFile, []byte(vkey+"\n"), 0o600)
	if code, out, errs := cli(t, "verify", "--receipt", receipt, "--key", "@"+keyFile, "--url", srv.URL); code != 0 {
		t.Fatalf("receipt before the attack: %d %s %s", code, out, errs)
	}
	stop(t, srv)

	rewriteHistory(t, dir, 3)
	// The server itself notices that its tree no longer has the root it
	// signed, and refuses to start over it.
	out, err := exec.Command(e2e.Binary(t), "serve", "--addr", "127.0.0.1:0", "--data", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "does not match the latest signed checkpoint") {
		t.Fatalf("server started over a rewritten tree: %v\n%s", err, out)
	}
	// A thorough insider also deletes the checkpoint the server kept.
	db, _ := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
	if _, err := db.Exec(`DELETE FROM meta WHERE key = 'checkpoint'`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// The server refuses a log with events and no checkpoint...
	out, err = exec.Command(e2e.Binary(t), "serve", "--addr", "127.0.0.1:0", "--data", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no signed checkpoint") {
		t.Fatalf("server started on a log whose checkpoint was deleted: %v\n%s", err, out)
	}
	// ...but an insider holding the data directory (and so the key in it)
	// can make it sign anyway: the server's own check cannot stop whoever
	// holds the key. Doing so is logged at ERROR and recorded.
	srv = e2e.Start(t, dir, "", "--checkpoint-interval", "50ms", "--recover-resign")
	if !strings.Contains(srv.Log(), "level=ERROR") {
		t.Fatalf("a recovery start was not logged at ERROR:\n%s", srv.Log())
	}
	postEvent(srv.URL, 31)
	waitCheckpoint(t, srv.URL, 31)
	rep := serverVerify(t, srv.URL)
	if !rep.Valid {
		t.Fatalf("the rewrite was meant to fool /verify: %+v", rep)
	}
	if code, out, errs := cli(t, "verify", "--url", srv.URL, "--key", vkey); code != 0 {
		t.Fatalf("verify --url (no earlier state) should pass: %d %s %s", code, out, errs)
	}
	// What held an earlier checkpoint catches it.
	code, _, errs = cli(t, "witness", "--url", srv.URL, "--key", vkey, "--state", state, "--once")
	if code != 3 || !strings.Contains(errs, "ALERT") || !strings.Contains(errs, "consistency proof from size 30 to 31 does not verify") {
		t.Fatalf("witness after the attack: exit %d\n%s", code, errs)
	}
	code, rout, errs := cli(t, "verify", "--receipt", receipt, "--key", vkey, "--url", srv.URL)
	if code != 1 || !strings.Contains(rout, `"valid":false`) {
		t.Fatalf("receipt after the attack: exit %d %s %s", code, rout, errs)
	}
	// Offline, the receipt is still what the log signed then: evidence.
	if code, _, errs := cli(t, "verify", "--receipt", receipt, "--key", vkey); code != 0 {
		t.Fatalf("offline receipt: %d %s", code, errs)
	}
}

func TestCrashKeepsTreeChainAndCheckpointInStep(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir)
	var acked atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if code, err := postEvent(srv.URL, i); err != nil || code != 201 {
					return
				}
				acked.Add(1)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	before := waitCheckpoint(t, srv.URL, 1)
	time.Sleep(200 * time.Millisecond)
	srv.Kill()
	close(stop)
	wg.Wait()

	srv = startServer(t, dir)
	rep := serverVerify(t, srv.URL)
	if !rep.Valid || rep.Checked < acked.Load() || rep.TreeSize != rep.Checked {
		t.Fatalf("after kill -9: /verify %+v, %d appends acknowledged", rep, acked.Load())
	}
	after := waitCheckpoint(t, srv.URL, rep.Checked)
	if after.Size < before.Size {
		t.Fatalf("checkpoint went backwards: %d → %d", before.Size, after.Size)
	}
	if after.Size == rep.TreeSize && event.Hash(after.Hash).String() != rep.RootHash {
		t.Fatalf("checkpoint root %x, tree %s", after.Hash, rep.RootHash)
	}
	// The checkpoint signed before the crash is consistent with today's.
	code, vkey, _ := cli(t, "key", "show", "--data", dir)
	if code != 0 {
		t.Fatal("key show")
	}
	if code, out, errs := cli(t, "verify", "--url", srv.URL, "--key", strings.TrimSpace(vkey), "--quiet"); code != 0 {
		t.Fatalf("verify --url after crash: %d %s %s", code, out, errs)
	}
	t.Logf("%d acknowledged before kill -9, %d in the log, checkpoint %d before, %d after", acked.Load(), rep.Checked, before.Size, after.Size)
}

func TestVerifiableLogUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"verify"},
		{"verify", "--url", "http://x", "--file", "f"},
		{"verify", "--url", "ftp://x"},
		{"verify", "--file", "/nonexistent"},
		{"verify", "--file", "f", "--checkpoint", "c"},
		{"verify", "--receipt", "/nonexistent", "--key", "a+b+c"},
		{"verify", "--receipt", "r"},
		{"verify", "--url", "http://127.0.0.1:1", "--key", "not a key"},
		{"witness", "--url", "http://x", "--key", "k"},
		{"witness", "--url", "http://x", "--key", "k", "--state", "s", "--interval", "0s"},
		{"witness", "--url", "http://x", "--key", "@/nonexistent", "--state", "s"},
		{"export", "--after", "5", "--until", "4"},
		{"export", "--after", "-1"},
		{"keygen", "--name", "x"},
		{"keygen", "--out", "x"},
		{"key"},
		{"key", "show", "--data", "/nonexistent"},
		{"verify", "extra-arg"},
	} {
		if code, _, _ := cli(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

func TestKeygenAndServeWithKey(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "signing.key")
	code, vkey, errs := cli(t, "keygen", "--name", "example.com/audit", "--out", keyFile)
	if code != 0 {
		t.Fatalf("keygen: %s", errs)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	if code, _, _ := cli(t, "keygen", "--name", "example.com/audit", "--out", keyFile); code != 2 {
		t.Fatal("keygen overwrote a key")
	}
	code, shown, _ := cli(t, "key", "show", "--signing-key", keyFile)
	if code != 0 || shown != vkey {
		t.Fatalf("key show %q, keygen %q", shown, vkey)
	}
	v, err := verify.ParseVerifierKey(vkey)
	if err != nil || v.Name() != "example.com/audit" {
		t.Fatalf("verifier key %q: %v", vkey, err)
	}
}
