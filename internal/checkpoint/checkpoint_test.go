package checkpoint_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/checkpoint"
	"github.com/audit-stream/audit-stream/internal/clock"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/faultstore"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/tlog"
)

type logUnderTest struct {
	st          *sqlite.Store
	led         *ledger.Ledger
	checkpoints *checkpoint.Checkpointer
	stop        func()
}

func open(t *testing.T, dir string, key *checkpoint.Key, interval time.Duration) *logUnderTest {
	t.Helper()
	l, err := tryOpen(t, dir, checkpoint.Options{Origin: "example.com/log", Key: key, Interval: interval})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func tryOpen(t *testing.T, dir string, opt checkpoint.Options) (*logUnderTest, error) {
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
	checkpoints, err := checkpoint.Open(ctx, st, led.Feed(), opt)
	if err != nil {
		led.Close(ctx)
		st.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() { defer close(done); checkpoints.Run(context.Background()) }()
	l := &logUnderTest{st: st, led: led, checkpoints: checkpoints}
	var stopped bool
	l.stop = func() {
		if stopped {
			return
		}
		stopped = true
		led.Close(ctx)
		<-done
		st.Close()
	}
	t.Cleanup(l.stop)
	return l, nil
}

func (l *logUnderTest) append(t *testing.T, n int) {
	reqs := make([]event.Request, n)
	for i := range reqs {
		reqs[i] = event.Request{Kind: "request_denied", Source: "s", Payload: []byte(`{}`)}
	}
	if _, err := l.led.Append(context.Background(), reqs); err != nil {
		t.Fatal(err)
	}
}

func TestCheckpointsSurviveRestartAndNeverGoBack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, key, err := checkpoint.GenerateKey("example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := verify.ParseVerifierKey(key.VerifierKey)
	l := open(t, dir, key, 10*time.Millisecond)
	l.append(t, 100)
	cp, signed, err := l.checkpoints.Wait(context.Background(), 100)
	if err != nil || cp.Size != 100 {
		t.Fatalf("Wait = %+v, %v", cp, err)
	}
	if _, err := verify.OpenCheckpoint(signed, v, ""); err != nil {
		t.Fatal(err)
	}
	l.append(t, 5)
	// A clean stop covers the last appends.
	l.stop()
	l = open(t, dir, key, time.Hour)
	if got := l.checkpoints.Latest(); got.Size != 105 {
		t.Fatalf("after restart the latest checkpoint covers %d, want 105", got.Size)
	}
}

func TestCheckpointIntervalBoundsSigning(t *testing.T) {
	t.Parallel()
	_, key, _ := checkpoint.GenerateKey("example.com/log")
	clk := clock.NewManual(time.Date(2026, 5, 15, 3, 14, 15, 0, time.UTC))
	const interval = 200 * time.Millisecond
	l, err := tryOpen(t, t.TempDir(), checkpoint.Options{Origin: "example.com/log", Key: key, Interval: interval, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	signedAt := func(size int64) {
		t.Helper()
		if cp, _, err := l.checkpoints.Wait(ctx, size); err != nil || cp.Size != size {
			t.Fatalf("waiting for a checkpoint of %d: %+v %v", size, cp, err)
		}
	}
	unsigned := func(size int64) {
		t.Helper()
		if got := l.checkpoints.Latest().Size; got != size {
			t.Fatalf("a checkpoint of %d within the interval; the last must still be %d", got, size)
		}
	}

	// The log grows at once after Run starts: the first checkpoint waits
	// out the interval, however many appends come meanwhile, and then
	// covers them all.
	l.append(t, 1)
	if err := clk.WaitTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	l.append(t, 4)
	unsigned(0)
	clk.Advance(interval - time.Millisecond)
	unsigned(0)
	clk.Advance(time.Millisecond)
	signedAt(5)

	// Growing right after a checkpoint: again one interval.
	l.append(t, 1)
	if err := clk.WaitTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	unsigned(5)
	clk.Advance(interval)
	signedAt(6)

	// After a quiet spell longer than the interval a checkpoint is due at
	// once: no timer, no waiting.
	clk.Advance(time.Hour)
	l.append(t, 1)
	signedAt(7)
}

func TestKeyFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k1, created, err := checkpoint.LoadOrCreateKey(dir, "example.com/log")
	if err != nil || !created {
		t.Fatalf("first LoadOrCreateKey: %v %v", created, err)
	}
	fi, err := os.Stat(filepath.Join(dir, checkpoint.KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	k2, created, err := checkpoint.LoadOrCreateKey(dir, "example.com/log")
	if err != nil || created || k2.VerifierKey != k1.VerifierKey {
		t.Fatalf("second LoadOrCreateKey made a new key: %v %v", created, err)
	}
	for _, bad := range []string{"", "garbage", "PRIVATE+KEY+x+00000000+AAAA", k1.VerifierKey} {
		if _, err := checkpoint.ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

func TestRotatedKeyResigns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, k1, _ := checkpoint.GenerateKey("example.com/log")
	l := open(t, dir, k1, 10*time.Millisecond)
	l.append(t, 3)
	l.stop()
	_, k2, _ := checkpoint.GenerateKey("example.com/log")
	l, err := tryOpen(t, dir, checkpoint.Options{Origin: "example.com/log", Key: k2, Interval: time.Hour, Rotate: true})
	if err != nil {
		t.Fatal(err)
	}
	cp, signed := l.checkpoints.Signed()
	v, _ := verify.ParseVerifierKey(k2.VerifierKey)
	if _, err := verify.OpenCheckpoint(signed, v, ""); err != nil || cp.Size != 3 {
		t.Fatalf("after key rotation the checkpoint (size %d) does not verify under the new key: %v", cp.Size, err)
	}
	l.stop()
	// From then on the new key is the log's: the old one is refused.
	if _, err := tryOpen(t, dir, checkpoint.Options{Origin: "example.com/log", Key: k1}); !errors.Is(err, checkpoint.ErrIdentity) {
		t.Fatalf("the old key after rotation: %v", err)
	}
}

// A start with another origin or key than the log's is refused unless a
// rotation is asked for, from the very first start on (an empty log
// records its identity in its first, empty checkpoint).
func TestIdentityChangeNeedsRotation(t *testing.T) {
	t.Parallel()
	for _, events := range []int{0, 3} {
		dir := t.TempDir()
		_, k1, _ := checkpoint.GenerateKey("example.com/log")
		l := open(t, dir, k1, 10*time.Millisecond)
		l.append(t, events)
		l.stop()
		_, k2, _ := checkpoint.GenerateKey("example.com/log")
		_, kOther, _ := checkpoint.GenerateKey("example.com/other")
		cases := []struct {
			name   string
			opt    checkpoint.Options
			detail string
		}{
			{"another key", checkpoint.Options{Origin: "example.com/log", Key: k2}, "the latest checkpoint was not signed by this key"},
			{"another origin", checkpoint.Options{Origin: "example.com/other", Key: k1}, `the log's origin is "example.com/log", this start's "example.com/other"`},
			{"both", checkpoint.Options{Origin: "example.com/other", Key: kOther}, "not signed by this key"},
		}
		for _, c := range cases {
			_, err := tryOpen(t, dir, c.opt)
			if !errors.Is(err, checkpoint.ErrIdentity) || !strings.Contains(err.Error(), c.detail) {
				t.Errorf("%d events, %s: %v", events, c.name, err)
			}
		}
		// The refused starts changed nothing: the original identity opens.
		l = open(t, dir, k1, time.Hour)
		if cp := l.checkpoints.Latest(); cp.Origin != "example.com/log" || cp.Size != int64(events) {
			t.Fatalf("after refused starts: %+v", cp)
		}
		l.stop()
		// An origin rotation asked for is taken.
		l, err := tryOpen(t, dir, checkpoint.Options{Origin: "example.com/other", Key: k1, Rotate: true})
		if err != nil {
			t.Fatal(err)
		}
		if cp := l.checkpoints.Latest(); cp.Origin != "example.com/other" {
			t.Fatalf("rotated origin: %+v", cp)
		}
		l.stop()
	}
}

// recordingStore records every checkpoint published with SwapMeta, in the
// order the store accepted them.
type recordingStore struct {
	checkpoint.Store
	mu        sync.Mutex
	published [][]byte
	conflicts int
}

func (r *recordingStore) SwapMeta(ctx context.Context, key string, old, value []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.Store.SwapMeta(ctx, key, old, value)
	if key == "checkpoint" {
		if err == nil {
			r.published = append(r.published, value)
		} else if errors.Is(err, store.ErrConflict) {
			r.conflicts++
		}
	}
	return err
}

// Two checkpointers publishing over one store, as two instances sharing a
// database do, both signing as fast as they can while the log grows: the
// published checkpoints form one sequence that never goes backwards, each
// one's root is the stored tree's, and each is consistent with the one it
// replaced.
func TestTwoCheckpointersNeverFork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, key, err := checkpoint.GenerateKey("example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := verify.ParseVerifierKey(key.VerifierKey)
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	led, err := ledger.Open(ctx, st, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close(ctx)
	l := &logUnderTest{st: st, led: led}
	rec := &recordingStore{Store: l.st}
	second, err := checkpoint.Open(ctx, rec, l.led.Feed(), checkpoint.Options{Origin: "example.com/log", Key: key, Interval: time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	// The first checkpointer publishes through the recording store too.
	first, err := checkpoint.Open(ctx, rec, l.led.Feed(), checkpoint.Options{Origin: "example.com/log", Key: key, Interval: time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, c := range []*checkpoint.Checkpointer{first, second} {
		wg.Go(func() { c.Run(rctx) })
	}
	for range 100 {
		l.append(t, 3)
	}
	for _, c := range []*checkpoint.Checkpointer{first, second} {
		if _, _, err := c.Wait(ctx, 300); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	wg.Wait()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.conflicts == 0 {
		t.Log("no conflicting publication happened in this run")
	}
	hr := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return l.st.ReadHashes(ctx, idx) })
	var prev verify.Checkpoint
	for i, signed := range rec.published {
		cp, err := verify.OpenCheckpoint(signed, v, "")
		if err != nil {
			t.Fatalf("published checkpoint %d: %v", i, err)
		}
		if cp.Size < prev.Size {
			t.Fatalf("checkpoint %d went backwards: size %d after %d", i, cp.Size, prev.Size)
		}
		root, err := tlog.TreeHash(cp.Size, hr)
		if err != nil || root != cp.Hash {
			t.Fatalf("checkpoint %d (size %d) is not of the stored tree: %v", i, cp.Size, err)
		}
		if prev.Size > 0 {
			p, err := tlog.ProveTree(cp.Size, prev.Size, hr)
			if err != nil || tlog.CheckTree(p, cp.Size, cp.Hash, prev.Size, prev.Hash) != nil {
				t.Fatalf("checkpoint %d is not consistent with %d: %v", i, i-1, err)
			}
		}
		prev = cp
	}
	if prev.Size != 300 {
		t.Fatalf("last published checkpoint covers %d events, want 300", prev.Size)
	}
	t.Logf("%d checkpoints published, %d conflicting attempts", len(rec.published), rec.conflicts)
}

// A checkpoint that cannot be stored is not served: the checkpointer keeps
// serving the last stored one and stores a new one once the store heals.
func TestCheckpointStoreFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, key, err := checkpoint.GenerateKey("example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fs := faultstore.New(st)
	led, err := ledger.Open(ctx, fs, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close(ctx)
	checkpoints, err := checkpoint.Open(ctx, fs, led.Feed(), checkpoint.Options{Origin: "example.com/log", Key: key, Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); checkpoints.Run(rctx) }()
	defer func() { cancel(); <-done }()
	fs.Fail(faultstore.SetMeta, faultstore.ErrDiskFull)
	l := &logUnderTest{st: st, led: led}
	l.append(t, 5)
	for fs.Failed(faultstore.SetMeta) < 3 {
		time.Sleep(time.Millisecond)
	}
	if got := checkpoints.Latest().Size; got != 0 {
		t.Fatalf("a checkpoint that was never stored is served: size %d", got)
	}
	fs.Heal(faultstore.SetMeta)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if cp, _, err := checkpoints.Wait(wctx, 5); err != nil || cp.Size != 5 {
		t.Fatalf("after healing: %+v, %v", cp, err)
	}
	stored, err := st.Meta(ctx, "checkpoint")
	if err != nil || !bytes.Contains(stored, []byte("\n5\n")) {
		t.Fatalf("stored checkpoint %q, %v; want size 5", stored, err)
	}
}
