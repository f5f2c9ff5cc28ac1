package checkpoint_test

import (
	"context"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/checkpoint"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/faultstore"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

// On a full disk the checkpointer opens with the stored checkpoint (a write
// outage must not become a read outage) and signs the new one once there is
// room again.
func TestFullDiskCheckpointResumes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	_, key, err := checkpoint.GenerateKey("example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	opt := checkpoint.Options{Origin: "example.com/log", Key: key, Interval: 10 * time.Millisecond}
	req := []event.Request{{Kind: "request_denied", Source: "s", Payload: []byte(`{}`)}}

	// A log with a checkpoint at 1, then an event the checkpoint does not
	// cover yet (as after a crash between commit and signing).
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	led, err := ledger.Open(ctx, st, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checkpoint.Open(ctx, st, led.Feed(), opt); err != nil {
		t.Fatal(err)
	}
	if _, err := led.Append(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := checkpoint.Open(ctx, st, led.Feed(), opt); err != nil {
		t.Fatal(err)
	}
	if _, err := led.Append(ctx, req); err != nil {
		t.Fatal(err)
	}
	led.Close(ctx)
	st.Close()

	// Restart with the disk full.
	st, err = sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fs := faultstore.New(st)
	fs.Fail(faultstore.SetMeta, faultstore.ErrDiskFull)
	fs.Fail(faultstore.AppendBeforeCommit, faultstore.ErrDiskFull)
	led, err = ledger.Open(ctx, fs, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close(ctx)
	checkpointer, err := checkpoint.Open(ctx, fs, led.Feed(), opt)
	if err != nil {
		t.Fatalf("open on a full disk: %v", err)
	}
	if got := checkpointer.Latest().Size; got != 1 {
		t.Fatalf("checkpoint on a full disk covers %d, want the stored 1", got)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); checkpointer.Run(runCtx) }()
	defer func() { stop(); <-done }()
	if _, err := led.Append(ctx, req); !store.IsFull(err) {
		t.Fatalf("append on a full disk: %v", err)
	}
	time.Sleep(50 * time.Millisecond) // several intervals of failed signing
	if got := checkpointer.Latest().Size; got != 1 {
		t.Fatalf("checkpoint moved to %d without being stored", got)
	}

	fs.HealAll()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, _, err := checkpointer.Wait(wctx, 2); err != nil {
		t.Fatalf("no checkpoint after space returned: %v", err)
	}
	if b, err := st.Meta(ctx, "checkpoint"); err != nil || len(b) == 0 {
		t.Fatalf("stored checkpoint: %v", err)
	}
}
