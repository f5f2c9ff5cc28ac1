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
		defer led.Close(ctx)
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
