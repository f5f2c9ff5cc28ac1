package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	asclient "github.com/audit-stream/audit-stream/client"
	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/checkpoint"
	"github.com/audit-stream/audit-stream/internal/e2e"
	"github.com/audit-stream/audit-stream/verify"
	"github.com/audit-stream/audit-stream/witness"
	"golang.org/x/mod/sumdb/note"
)

// TestVerifiedTailCosigned runs the verifying tail against the real binary
// cosigning with two witness processes (quorum 2): the stream carries the
// cosigned checkpoints, a reader demanding both cosignatures verifies every
// event, holds events while a witness hangs (the log goes on; nothing
// uncosigned is yielded) and yields them once it is back; a reader that
// demands a witness the log does not have stops with a quorum error.
func TestVerifiedTailCosigned(t *testing.T) {
	const origin = "log.test/e2e-tailverify"
	keyFile := filepath.Join(t.TempDir(), "signing.key")
	skey, key, err := checkpoint.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.WriteKeyFile(keyFile, skey); err != nil {
		t.Fatal(err)
	}
	var ws []*witnessProc
	args := []string{"--origin", origin, "--signing-key", keyFile, "--checkpoint-interval", "100ms",
		"--witness-quorum", "2", "--witness-timeout", "10s", "--witness-retry", "200ms"}
	for i := 1; i <= 2; i++ {
		w := startWitnessProc(t, fmt.Sprintf("witness.test/w%d", i), key.VerifierKey, t.TempDir())
		ws = append(ws, w)
		args = append(args, "--witness", fmt.Sprintf("w%d=%s+%s", i, w.URL, w.vkey))
	}
	p := e2e.Start(t, t.TempDir(), "", args...)
	appendN(t, p.URL, 30, "before")
	c, err := asclient.New(p.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var mu sync.Mutex
	var got []int64
	var early []int64
	var tailErr error
	zero := int64(0)
	opt := asclient.TailOptions{After: &zero, Verify: &asclient.TailVerify{
		LogKeys: []string{key.VerifierKey}, WitnessKeys: []string{ws[0].vkey, ws[1].vkey}, Quorum: 2,
		OnUnverified: func(e event.Event) { mu.Lock(); early = append(early, e.ID); mu.Unlock() },
		OnCheckpoint: func(cp verify.Checkpoint, signed []byte) {
			if valid, err := witness.CheckQuorum(signed, []note.Verifier{ws[0].v, ws[1].v}, 2); err != nil || len(valid) != 2 {
				t.Errorf("checkpoint %d passed to OnCheckpoint without both cosignatures: %v", cp.Size, err)
			}
		},
	}}
	go func() {
		for ev, err := range c.Tail(ctx, opt) {
			mu.Lock()
			if err != nil {
				tailErr = err
			} else {
				got = append(got, ev.ID)
			}
			mu.Unlock()
		}
	}()
	upTo := func(n int) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			if tailErr != nil {
				t.Fatalf("the verifying tail failed: %v", tailErr)
			}
			return len(got) >= n
		}
	}
	waitFor(t, "30 events verified against cosigned checkpoints", 30*time.Second, upTo(30))

	// A witness hangs: no new quorum, so events appended now are seen
	// early but not yielded.
	if err := ws[1].Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // a submission in flight may still land
	mu.Lock()
	held := len(got)
	mu.Unlock()
	appendN(t, p.URL, 20, "hung")
	waitFor(t, "the new events seen unverified", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(early) >= held+20
	})
	time.Sleep(time.Second) // ten checkpoint intervals
	mu.Lock()
	if len(got) != held {
		t.Errorf("%d events yielded while no quorum cosigned them (had %d)", len(got), held)
	}
	mu.Unlock()
	if err := ws[1].Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the held events yielded once cosigned", 30*time.Second, upTo(held+20))
	mu.Lock()
	for i, id := range got {
		if id != int64(i+1) {
			t.Fatalf("yielded %v, want 1…%d in order", got, len(got))
		}
	}
	mu.Unlock()

	// Demanding a witness the log does not have.
	_, stranger, _ := witness.GenerateKey("witness.test/stranger")
	opt.Verify = &asclient.TailVerify{LogKeys: []string{key.VerifierKey}, WitnessKeys: []string{ws[0].vkey, ws[1].vkey, stranger}, Quorum: 3}
	for _, err := range c.Tail(ctx, opt) {
		var ve *asclient.VerifyError
		if !errors.As(err, &ve) || ve.Check != asclient.CheckQuorum {
			t.Fatalf("a reader demanding three witnesses of two: %v, want a quorum VerifyError", err)
		}
		break
	}
}
