package checkpoint_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/checkpoint"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

// unsignedLog appends n events to a new store in dir without ever signing
// a checkpoint, and returns the store and ledger, open.
func unsignedLog(t *testing.T, dir string, n int, source string) (*sqlite.Store, *ledger.Ledger) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	led, err := ledger.Open(ctx, st, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close(ctx); st.Close() })
	reqs := make([]event.Request, n)
	for i := range reqs {
		reqs[i] = event.Request{Kind: "other", Source: source, Payload: []byte(`{}`)}
	}
	if n > 0 {
		if _, err := led.Append(ctx, reqs); err != nil {
			t.Fatal(err)
		}
	}
	return st, led
}

func TestUnsignedLogRefusedUnlessRecovering(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, key, _ := checkpoint.GenerateKey("example.com/log")
	st, led := unsignedLog(t, t.TempDir(), 5, "s")
	opt := checkpoint.Options{Origin: "example.com/log", Key: key}
	if _, err := checkpoint.Open(ctx, st, led.Feed(), opt); !errors.Is(err, checkpoint.ErrUnsigned) {
		t.Fatalf("Open on 5 events without a checkpoint: %v, want ErrUnsigned", err)
	}
	if rec, _ := checkpoint.Recoveries(ctx, st); rec != nil {
		t.Fatalf("a refused start recorded a recovery: %s", rec)
	}
	var logs bytes.Buffer
	opt.Recover = true
	opt.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	checkpoints, err := checkpoint.Open(ctx, st, led.Feed(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if checkpoints.Latest().Size != 5 {
		t.Fatalf("recovery signed size %d, want 5", checkpoints.Latest().Size)
	}
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("recovery not logged at ERROR:\n%s", logs.String())
	}
	rec, err := checkpoint.Recoveries(ctx, st)
	if err != nil || strings.Count(string(rec), "\n") != 1 || !strings.Contains(string(rec), `"events":5`) {
		t.Fatalf("recovery record %q, %v", rec, err)
	}
	// Signed now: an ordinary start passes, records nothing more.
	opt.Recover = false
	if _, err := checkpoint.Open(ctx, st, led.Feed(), opt); err != nil {
		t.Fatalf("start after the recovery: %v", err)
	}
	if rec2, _ := checkpoint.Recoveries(ctx, st); !bytes.Equal(rec2, rec) {
		t.Fatalf("an ordinary start changed the recovery record: %q", rec2)
	}
}

func TestCheckpointCopy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, key, _ := checkpoint.GenerateKey("example.com/log")
	copyFile := filepath.Join(t.TempDir(), "checkpoint")
	opt := checkpoint.Options{Origin: "example.com/log", Key: key, Copy: copyFile}

	// A log of 5 events leaves its checkpoint in the copy.
	st, led := unsignedLog(t, t.TempDir(), 0, "s")
	checkpoints, err := checkpoint.Open(ctx, st, led.Feed(), opt)
	if err != nil {
		t.Fatal(err)
	}
	reqs := []event.Request{{Kind: "other", Source: "s"}, {Kind: "other", Source: "s"}, {Kind: "other", Source: "s"}, {Kind: "other", Source: "s"}, {Kind: "other", Source: "s"}}
	if _, err := led.Append(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	led.Close(ctx)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := checkpoints.Run(cancelled); err != nil {
		t.Fatal(err)
	}
	_, signed := checkpoints.Signed()
	if b, err := os.ReadFile(copyFile); err != nil || !bytes.Equal(b, signed) {
		t.Fatalf("copy %q (%v) is not the latest checkpoint %q", b, err, signed)
	}

	// Against that copy: an empty log (the data directory replaced), and
	// another log of as many events, are both refused.
	st2, led2 := unsignedLog(t, t.TempDir(), 0, "s")
	if _, err := checkpoint.Open(ctx, st2, led2.Feed(), opt); !errors.Is(err, checkpoint.ErrMismatch) {
		t.Fatalf("empty log against a copy of 5: %v, want ErrMismatch", err)
	}
	dir3 := t.TempDir()
	st3, led3 := unsignedLog(t, dir3, 6, "other-source")
	noCopy := opt
	noCopy.Copy, noCopy.Recover = "", true
	if _, err := checkpoint.Open(ctx, st3, led3.Feed(), noCopy); err != nil { // signed on its own
		t.Fatal(err)
	}
	if _, err := checkpoint.Open(ctx, st3, led3.Feed(), opt); !errors.Is(err, checkpoint.ErrMismatch) || !strings.Contains(err.Error(), copyFile) {
		t.Fatalf("diverging log against the copy: %v, want ErrMismatch naming the copy", err)
	}
}

// A copy that cannot be written only lags: signing goes on.
func TestCheckpointCopyUnwritable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, key, _ := checkpoint.GenerateKey("example.com/log")
	var logs bytes.Buffer
	opt := checkpoint.Options{Origin: "example.com/log", Key: key, Interval: 10 * time.Millisecond,
		Copy: filepath.Join(t.TempDir(), "missing-dir", "checkpoint"), Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	st, led := unsignedLog(t, t.TempDir(), 0, "s")
	checkpoints, err := checkpoint.Open(ctx, st, led.Feed(), opt)
	if err != nil {
		t.Fatal(err)
	}
	go checkpoints.Run(ctx)
	if _, err := led.Append(ctx, []event.Request{{Kind: "other", Source: "s"}}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, _, err := checkpoints.Wait(wctx, 1); err != nil {
		t.Fatalf("signing stopped with the copy unwritable: %v", err)
	}
	if !strings.Contains(logs.String(), "checkpoint copy not updated") {
		t.Fatalf("unwritable copy not logged:\n%s", logs.String())
	}
}
