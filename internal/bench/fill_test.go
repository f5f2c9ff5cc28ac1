package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/checkpoint"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/loadgen"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

var benchKinds = loadgen.SampleKinds

// sampleRequest is a typical governance event of about 200 bytes.
func sampleRequest(i int) event.Request { return loadgen.SampleRequest(i) }

var (
	bigOnce sync.Once
	bigDir  string
	bigErr  error
	bigKeep bool
)

const bigSize = 1_000_000

// bigStore returns the data directory of a store with 1,000,000 events,
// built once per process through the real ledger (ids, hashes, Merkle tree)
// in large groups.
func bigStore(b *testing.B) string {
	b.Helper()
	bigOnce.Do(func() {
		// AUDIT_STREAM_BENCH_DIR keeps the store between runs: building
		// it takes about a minute.
		if keep := os.Getenv("AUDIT_STREAM_BENCH_DIR"); keep != "" {
			bigDir, bigKeep = keep, true
			if _, err := os.Stat(filepath.Join(keep, sqlite.FileName)); err == nil {
				return
			}
		} else if bigDir, bigErr = os.MkdirTemp("", "audit-stream-bench-1m-"); bigErr != nil {
			return
		}
		ctx := context.Background()
		start := time.Now()
		st, err := sqlite.Open(ctx, bigDir)
		if err != nil {
			bigErr = err
			return
		}
		defer st.Close()
		led, err := ledger.Open(ctx, st, ledger.Options{MaxGroup: 10000})
		if err != nil {
			bigErr = err
			return
		}
		// The server refuses a log with events but no signed
		// checkpoint: sign it with the key and origin the server would
		// use (as apitest.Populate does) when the ledger closes.
		id, err := checkpoint.LogID(ctx, st)
		if err != nil {
			bigErr = err
			return
		}
		origin := "audit-stream/" + id
		key, _, err := checkpoint.LoadOrCreateKey(bigDir, origin)
		if err != nil {
			bigErr = err
			return
		}
		checkpoints, err := checkpoint.Open(ctx, st, led.Feed(), checkpoint.Options{Origin: origin, Key: key})
		if err != nil {
			bigErr = err
			return
		}
		defer func() {
			led.Close(ctx)
			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			if err := checkpoints.Run(cancelled); err != nil && bigErr == nil { // signs the final checkpoint
				bigErr = err
			}
		}()
		const group = 10000
		reqs := make([]event.Request, group)
		for done := 0; done < bigSize; done += group {
			for i := range reqs {
				reqs[i] = sampleRequest(done + i)
			}
			if _, err := led.Append(ctx, reqs); err != nil {
				bigErr = err
				return
			}
		}
		fmt.Fprintf(os.Stderr, "bench: built a %d-event store in %v\n", bigSize, time.Since(start).Round(time.Millisecond))
	})
	if bigErr != nil {
		b.Fatal(bigErr)
	}
	return bigDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bigDir != "" && !bigKeep {
		os.RemoveAll(bigDir)
	}
	os.Exit(code)
}
