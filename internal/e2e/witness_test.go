package e2e_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/checkpoint"
	"github.com/audit-stream/audit-stream/internal/e2e"
	"github.com/audit-stream/audit-stream/verify"
	"github.com/audit-stream/audit-stream/witness"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// witnessProc is a running `audit-stream witness serve`.
type witnessProc struct {
	*e2e.Process
	name, vkey, keyFile string
	v                   note.Verifier
}

func startWitnessProc(t *testing.T, name, logVKey, state string) *witnessProc {
	t.Helper()
	skey, vkey, err := witness.GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "witness.key")
	if err := os.WriteFile(keyFile, []byte(skey), 0o600); err != nil {
		t.Fatal(err)
	}
	w := &witnessProc{name: name, vkey: vkey, keyFile: keyFile}
	w.v, _ = witness.NewVerifier(vkey)
	w.Process = e2e.StartCommand(t, "witness", "serve", "--addr", "127.0.0.1:0", "--key", keyFile, "--state", state, "--log", logVKey)
	return w
}

// restart runs the same witness (key) again on addr with a state directory.
func (w *witnessProc) restart(t *testing.T, addr, logVKey, state string) {
	w.Kill()
	w.Process = e2e.StartCommand(t, "witness", "serve", "--addr", addr, "--key", w.keyFile, "--state", state, "--log", logVKey)
}

func waitFor(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func appendN(t *testing.T, url string, n int, src string) {
	t.Helper()
	for i := range n {
		code, _, _, ok := post(url+"/events", singleBody(src, i), "")
		if !ok || code != http.StatusCreated {
			t.Fatalf("append %d: status %d, answered %v", i, code, ok)
		}
	}
}

func getStatus(url string) (int, []byte) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.Bytes()
}

// TestWitnessCosigning runs a log with three witnesses, each a child
// process, quorum 2: one is down from the start; then a second one hangs
// (cosigning stops, appends do not); then an insider holding the signing
// key forks the log, and the witnesses' cosignatures are what catch it.
func TestWitnessCosigning(t *testing.T) {
	const origin = "log.test/e2e-witness"
	keyFile := filepath.Join(t.TempDir(), "signing.key")
	skey, key, err := checkpoint.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.WriteKeyFile(keyFile, skey); err != nil {
		t.Fatal(err)
	}
	logV, _ := verify.ParseVerifierKey(key.VerifierKey)
	var ws []*witnessProc
	var wflags []string
	for i := 1; i <= 3; i++ {
		w := startWitnessProc(t, fmt.Sprintf("witness.test/w%d", i), key.VerifierKey, t.TempDir())
		ws = append(ws, w)
		wflags = append(wflags, "--witness", fmt.Sprintf("w%d=%s+%s", i, w.URL, w.vkey))
	}
	all := []note.Verifier{ws[0].v, ws[1].v, ws[2].v}
	args := append([]string{"--origin", origin, "--signing-key", keyFile, "--checkpoint-interval", "100ms",
		"--witness-quorum", "2", "--witness-timeout", "60s", "--witness-retry", "200ms"}, wflags...)
	data := t.TempDir()
	p := e2e.Start(t, data, "", args...)

	// One witness hung (stopped, its socket open, so a submission waits
	// the whole --witness-timeout of 60 s): the other two make the quorum
	// at once, without waiting for it.
	if err := ws[2].Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	metric := func(name string) float64 {
		_, b := getStatus(p.URL + "/metrics")
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				return f
			}
		}
		return -1
	}
	appendN(t, p.URL, 20, "before")
	cosignedAt := func(size int64, want ...string) func() bool {
		return func() bool {
			code, b := getStatus(p.URL + "/checkpoint")
			if code != 200 {
				return false
			}
			cp, err := verify.OpenCheckpoint(b, logV, "")
			if err != nil || cp.Size != size {
				return false
			}
			valid, err := witness.CheckQuorum(b, all, 2)
			return err == nil && strings.Join(valid, ",") == strings.Join(want, ",")
		}
	}
	waitFor(t, "a checkpoint of 20 cosigned by w1 and w2", 20*time.Second, cosignedAt(20, "witness.test/w1", "witness.test/w2"))
	// Then it is down for good: its submission in flight fails.
	ws[2].Kill()
	waitFor(t, "the failed submission to w3 counted", 10*time.Second, func() bool {
		return metric(`audit_stream_witness_submissions_total{result="failed",witness="w3"}`) >= 1
	})
	// Receipts carry the cosigned checkpoint.
	code, b := getStatus(p.URL + "/events/20/receipt")
	if code != 200 {
		t.Fatalf("receipt: %d %s", code, b)
	}
	r, err := verify.ParseReceipt(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Verify(logV, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := witness.CheckQuorum(r.Checkpoint, all, 2); err != nil {
		t.Fatalf("receipt's checkpoint: %v", err)
	}
	// The CLI's verdicts: quorum 2 of the three keys holds, 3 does not.
	wkeys := []string{"--witness-key", ws[0].vkey, "--witness-key", ws[1].vkey, "--witness-key", ws[2].vkey}
	receiptFile := filepath.Join(t.TempDir(), "e20.proof")
	os.WriteFile(receiptFile, b, 0o600)
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{append([]string{"--url", p.URL, "--key", key.VerifierKey, "--quorum", "2"}, wkeys...), 0, `"valid":true`},
		{append([]string{"--url", p.URL, "--key", key.VerifierKey}, wkeys...), 1, "the quorum is 3"},
		{append([]string{"--receipt", receiptFile, "--key", key.VerifierKey, "--quorum", "2"}, wkeys...), 0, `"valid":true`},
		{append([]string{"--receipt", receiptFile, "--key", key.VerifierKey, "--quorum", "3"}, wkeys...), 1, "cosigned by witness.test/w1, witness.test/w2"},
		{[]string{"--receipt", receiptFile, "--key", key.VerifierKey, "--quorum", "1"}, 2, "--quorum needs --witness-key"},
		{[]string{"--receipt", receiptFile, "--key", key.VerifierKey, "--witness-key", key.VerifierKey}, 2, "algorithm 0x01"},
	} {
		if code, out := runVerifyCLI(t, c.args...); code != c.code || !strings.Contains(out, c.says) {
			t.Errorf("verify %s: exit %d, want %d saying %q:\n%s", strings.Join(c.args, " "), code, c.code, c.says, out)
		}
	}
	if n := metric(`audit_stream_witness_submissions_total{result="failed",witness="w3"}`); n < 1 {
		t.Errorf("failed submissions to the dead witness counted %v", n)
	}
	if n := metric(`audit_stream_witness_submissions_total{result="cosigned",witness="w1"}`); n < 1 {
		t.Errorf("cosigned submissions to w1 counted %v", n)
	}
	if n := metric("audit_stream_checkpoint_cosigned_size"); n != 20 {
		t.Errorf("audit_stream_checkpoint_cosigned_size %v, want 20", n)
	}

	// A second witness hangs (stopped, its socket open): no quorum. Appends
	// go on exactly as before; only the cosigned checkpoint waits.
	if err := ws[1].Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	appendN(t, p.URL, 30, "during")
	time.Sleep(2 * time.Second) // many checkpoint intervals and witness timeouts
	if !cosignedAt(20, "witness.test/w1", "witness.test/w2")() {
		_, b := getStatus(p.URL + "/checkpoint")
		t.Fatalf("with one witness of three up, /checkpoint moved:\n%s", b)
	}
	if code, b := getStatus(p.URL + "/events/50/receipt"); code != http.StatusServiceUnavailable {
		t.Fatalf("a receipt for an event no quorum cosigned yet: %d %s", code, b)
	}
	if code, b := getStatus(p.URL + "/stats"); code != 200 || !bytes.Contains(b, []byte(`"count":50`)) {
		t.Fatalf("stats: %d %s", code, b)
	}
	ws[1].Signal(syscall.SIGCONT)
	waitFor(t, "a checkpoint of 50 cosigned again", 20*time.Second, cosignedAt(50, "witness.test/w1", "witness.test/w2"))

	// An insider with the signing key rewrites event 10 and signs the
	// forked tree (a split view: some readers are shown this one).
	_, export := getStatus(p.URL + "/export?after=0")
	fork := forkLog(t, export, 10)
	forkedCP := verify.Checkpoint{Origin: origin, Size: int64(len(fork)), Hash: treeOf(t, fork).root(t, int64(len(fork)))}
	forked, err := verify.SignCheckpoint(forkedCP, key.Signer)
	if err != nil {
		t.Fatal(err)
	}
	// An honest witness that cosigned the real tree of 50 refuses it.
	w1 := &witness.Client{URL: ws[0].URL, Verifier: ws[0].v}
	_, err = w1.AddCheckpoint(t.Context(), &witness.AddCheckpoint{OldSize: 50, Checkpoint: forked})
	var se *witness.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusUnprocessableEntity {
		t.Fatalf("an honest witness was fed the fork: %v", err)
	}
	waitFor(t, "the witness logging the fork as evidence", 10*time.Second, func() bool {
		return strings.Contains(ws[0].Log(), "ALERT")
	})
	// A witness that never saw the log trusts its first checkpoint: the
	// fork gets that one cosignature, and no more. (It is fed on an
	// address the log does not know, so that the log's own submission
	// cannot come first.)
	addr3, poisoned := ws[2].Addr, t.TempDir()
	ws[2].restart(t, "127.0.0.1:0", key.VerifierKey, poisoned)
	w3 := &witness.Client{URL: ws[2].URL, Verifier: ws[2].v}
	lines, err := w3.AddCheckpoint(t.Context(), &witness.AddCheckpoint{OldSize: 0, Checkpoint: forked})
	if err != nil {
		t.Fatal(err)
	}
	forgedReceipt := treeOf(t, fork).receipt(t, fork, 10, witness.Append(forked, lines))
	rr, err := verify.ParseReceipt(forgedReceipt)
	if err != nil {
		t.Fatal(err)
	}
	// The log's own key cannot tell: the insider signed it with that key.
	if _, err := rr.Verify(logV, ""); err != nil {
		t.Fatalf("the forged receipt should verify under the log key alone: %v", err)
	}
	var qe *witness.QuorumError
	if _, err := witness.CheckQuorum(rr.Checkpoint, all, 2); !errors.As(err, &qe) || len(qe.Valid) != 1 {
		t.Fatalf("the forked checkpoint reached a quorum of 2: %v", err)
	}
	forgedFile := filepath.Join(t.TempDir(), "forged.proof")
	os.WriteFile(forgedFile, forgedReceipt, 0o600)
	if code, out := runVerifyCLI(t, "--receipt", forgedFile, "--key", key.VerifierKey); code != 0 {
		t.Errorf("without witness keys the insider's receipt should pass (that is the attack): exit %d\n%s", code, out)
	}
	if code, out := runVerifyCLI(t, append([]string{"--receipt", forgedFile, "--key", key.VerifierKey, "--quorum", "2"}, wkeys...)...); code != 1 ||
		!strings.Contains(out, "1 valid cosignature(s) from trusted witnesses, the quorum is 2") {
		t.Errorf("verify of the forged receipt with quorum 2: exit %d\n%s", code, out)
	}
	// The poisoned witness, back on its address, now refuses the real log;
	// w1 and w2 still make the quorum, and the server logs the refusal as
	// an alert.
	ws[2].restart(t, addr3, key.VerifierKey, poisoned)
	appendN(t, p.URL, 5, "after")
	waitFor(t, "a checkpoint of 55 cosigned by w1 and w2", 20*time.Second, cosignedAt(55, "witness.test/w1", "witness.test/w2"))
	waitFor(t, "the server's alert about the refusing witness", 10*time.Second, func() bool {
		return strings.Contains(p.Log(), "ALERT: a witness refused")
	})

	// A restart with every witness down still serves the last cosigned
	// checkpoint, kept in the store, not an uncosigned one.
	for _, w := range ws {
		w.Kill()
	}
	if code := p.Terminate(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	p = e2e.Start(t, data, "", args...)
	if !cosignedAt(55, "witness.test/w1", "witness.test/w2")() {
		_, b := getStatus(p.URL + "/checkpoint")
		t.Fatalf("after a restart with the witnesses down, /checkpoint serves:\n%s", b)
	}
}

// runVerifyCLI runs `audit-stream verify args...` and returns its exit
// status with stdout and stderr together.
func runVerifyCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(e2e.Binary(t), append([]string{"verify", "--quiet"}, args...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// forkLog re-chains an export with event id rewritten.
func forkLog(t *testing.T, export []byte, id int64) []event.Event {
	var evs []event.Event
	for _, line := range bytes.Split(bytes.TrimSpace(export), []byte("\n")) {
		e, err := event.ParseStored(line)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
	var prev event.Hash
	for i := range evs {
		if evs[i].ID == id {
			evs[i].Payload = []byte(`{"rewritten":true}`)
		}
		if i > 0 {
			evs[i].PrevHash = prev
		}
		evs[i].Hash, _ = evs[i].ComputeHash(nil)
		prev = evs[i].Hash
	}
	return evs
}

// memTree is the Merkle tree of a list of events.
type memTree struct{ stored []tlog.Hash }

func (m *memTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = m.stored[x]
	}
	return out, nil
}

func treeOf(t *testing.T, evs []event.Event) *memTree {
	m := &memTree{}
	for i, e := range evs {
		hs, err := tlog.StoredHashesForRecordHash(int64(i), verify.LeafHash(e.Hash), m)
		if err != nil {
			t.Fatal(err)
		}
		m.stored = append(m.stored, hs...)
	}
	return m
}

func (m *memTree) root(t *testing.T, n int64) tlog.Hash {
	h, err := tlog.TreeHash(n, m)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (m *memTree) receipt(t *testing.T, evs []event.Event, id int64, signed []byte) []byte {
	proof, err := tlog.ProveRecord(int64(len(evs)), id-1, m)
	if err != nil {
		t.Fatal(err)
	}
	r := verify.Receipt{Event: evs[id-1], Index: id - 1, Proof: proof, Checkpoint: signed}
	return r.Marshal()
}
