package apitest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/checkpoint"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store/backend"
)

// Populate appends n events to the store in dir through the real ledger, in
// large groups (one transaction each), which is the fast way to build a big
// log for benchmarks. It returns how long that took.
func Populate(tb testing.TB, dir string, n int) time.Duration {
	tb.Helper()
	ctx := context.Background()
	start := time.Now()
	st, err := backend.Open(ctx, backend.Spec{Dir: dir}, backend.Serve, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	const group = 10000
	led, err := ledger.Open(ctx, st, ledger.Options{MaxGroup: group})
	if err != nil {
		tb.Fatal(err)
	}
	// Sign as the server does, with the key and origin it would use, so
	// that the server starts on the log: it refuses a non-empty log
	// without a checkpoint.
	id, err := checkpoint.LogID(ctx, st)
	if err != nil {
		tb.Fatal(err)
	}
	origin := "audit-stream/" + id
	key, _, err := checkpoint.LoadOrCreateKey(dir, origin)
	if err != nil {
		tb.Fatal(err)
	}
	checkpoints, err := checkpoint.Open(ctx, st, led.Feed(), checkpoint.Options{Origin: origin, Key: key})
	if err != nil {
		tb.Fatal(err)
	}
	defer func() {
		led.Close(ctx)
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if err := checkpoints.Run(cancelled); err != nil { // signs the final checkpoint
			tb.Fatal(err)
		}
	}()
	reqs := make([]event.Request, group)
	for done := 0; done < n; {
		k := min(group, n-done)
		for i := range reqs[:k] {
			reqs[i] = event.Request{Kind: "request_denied", Source: "bench",
				Payload: []byte(`{"note":"benchmark event","ratio":0.5,"seq":` + strconv.Itoa(done+i) + `}`)}
		}
		if _, err := led.Append(ctx, reqs[:k]); err != nil {
			tb.Fatal(err)
		}
		done += k
	}
	return time.Since(start)
}

// BenchDir returns a data directory holding a log of n events, built once
// and kept in the system temp directory across benchmark runs (building a
// million events takes a while). It logs how long the build took.
func BenchDir(tb testing.TB, n int) string {
	tb.Helper()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("audit-stream-bench-%d", n))
	marker := filepath.Join(dir, "complete.signed") // logs built before checkpoints were required lack one
	if _, err := os.Stat(marker); err == nil {
		return dir
	}
	os.RemoveAll(dir)
	d := Populate(tb, dir, n)
	tb.Logf("generated %d events in %s (%.0f events/s)", n, d.Round(time.Millisecond), float64(n)/d.Seconds())
	if err := os.WriteFile(marker, []byte(d.String()+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return dir
}
