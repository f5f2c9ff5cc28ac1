package bench

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/checkpoint"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/loadgen"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/postgres"
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
		st, err := sqlite.Open(ctx, bigDir)
		if err != nil {
			bigErr = err
			return
		}
		defer st.Close()
		bigErr = fillBig(ctx, st, bigDir)
	})
	if bigErr != nil {
		b.Fatal(bigErr)
	}
	return bigDir
}

// fillBig appends the 1,000,000 events of the big store to st through the
// real ledger (ids, hashes, Merkle tree) in large groups, and signs the log
// with the key in keyDir as a server would.
func fillBig(ctx context.Context, st store.Store, keyDir string) (err error) {
	start := time.Now()
	led, err := ledger.Open(ctx, st, ledger.Options{MaxGroup: 10000})
	if err != nil {
		return err
	}
	// The server refuses a log with events but no signed checkpoint:
	// sign it with the key and origin the server would use (as
	// apitest.Populate does) when the ledger closes.
	id, err := checkpoint.LogID(ctx, st)
	if err != nil {
		return err
	}
	origin := "audit-stream/" + id
	key, _, err := checkpoint.LoadOrCreateKey(keyDir, origin)
	if err != nil {
		return err
	}
	checkpoints, err := checkpoint.Open(ctx, st, led.Feed(), checkpoint.Options{Origin: origin, Key: key})
	if err != nil {
		return err
	}
	defer func() {
		led.Close(ctx)
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if cerr := checkpoints.Run(cancelled); cerr != nil && err == nil { // signs the final checkpoint
			err = cerr
		}
	}()
	const group = 10000
	reqs := make([]event.Request, group)
	for done := 0; done < bigSize; done += group {
		for i := range reqs {
			reqs[i] = sampleRequest(done + i)
		}
		if _, err := led.Append(ctx, reqs); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "bench: built a %d-event store in %v\n", bigSize, time.Since(start).Round(time.Millisecond))
	return nil
}

var (
	bigPGOnce sync.Once
	bigPGDir  string
	bigPGErr  error
)

// bigTarget is where the query benchmarks run: the SQLite big store, or,
// with AUDIT_STREAM_BENCH_POSTGRES=URL (a database of its own), the same
// 1,000,000 events in PostgreSQL, appended once and kept there. Its signing
// key is kept beside the system temp directory's other bench files, named
// after the URL.
func bigTarget(b *testing.B) apitest.Options {
	b.Helper()
	url := os.Getenv("AUDIT_STREAM_BENCH_POSTGRES")
	if url == "" {
		return apitest.Options{Dir: bigStore(b)}
	}
	bigPGOnce.Do(func() {
		sum := sha256.Sum256([]byte(url))
		bigPGDir = filepath.Join(os.TempDir(), fmt.Sprintf("audit-stream-bench-pg-%x", sum[:6]))
		if bigPGErr = os.MkdirAll(bigPGDir, 0o700); bigPGErr != nil {
			return
		}
		ctx := context.Background()
		st, err := postgres.Open(ctx, url, postgres.Options{})
		if err != nil {
			bigPGErr = err
			return
		}
		defer st.Close()
		head, err := st.Head(ctx)
		switch {
		case err != nil:
			bigPGErr = err
		case head.ID == 0:
			if bigPGErr = fillBig(ctx, st, bigPGDir); bigPGErr == nil {
				// What autovacuum does soon after such a load
				// (the plans depend on it); a server may run
				// with autovacuum off.
				bigPGErr = postgres.Exec(ctx, url, "ANALYZE events")
			}
		case head.ID != bigSize:
			bigPGErr = fmt.Errorf("bench: %d events in the PostgreSQL database, want none or %d", head.ID, bigSize)
		}
	})
	if bigPGErr != nil {
		b.Fatal(bigPGErr)
	}
	return apitest.Options{Dir: bigPGDir, Store: url}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bigDir != "" && !bigKeep {
		os.RemoveAll(bigDir)
	}
	os.Exit(code)
}
