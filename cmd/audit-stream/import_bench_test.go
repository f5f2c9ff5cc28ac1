package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/cputime"
)

// writeExport writes an n-event NDJSON export of ~200-byte events, chained
// and hashed, to a file in dir.
func writeExport(b testing.TB, dir string, n int) string {
	b.Helper()
	path := filepath.Join(dir, "export.ndjson")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var prev event.Hash
	var buf, line []byte
	kinds := []string{"request_denied", "decision_card_signed", "tool_invocation_denied", "other"}
	for i := 1; i <= n; i++ {
		e := event.Event{
			ID: int64(i), Timestamp: "2026-05-15T03:14:15.123456+00:00",
			Kind: kinds[i%len(kinds)], Source: fmt.Sprintf("service-%d", i%50),
			Payload:  []byte(fmt.Sprintf(`{"path":"/admin/users/%d","reason":"policy no-pii-export","user":"u-%d"}`, i, i%997)),
			PrevHash: prev,
		}
		e.Hash, buf = e.ComputeHash(buf)
		prev = e.Hash
		line = append(e.AppendJSON(line[:0]), '\n')
		w.Write(line)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return path
}

// BenchmarkImport1M imports a 1,000,000-event export into an empty store
// (one pass verifying and loading, index build, sync, checkpoint), and, in
// the same run, verifies the same file with verify --file: the same
// reading, decoding and hashing without the storing, as a baseline for the
// ratio.
func BenchmarkImport1M(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("IMPORT_BENCH_EVENTS"); s != "" {
		fmt.Sscan(s, &n)
	}
	dir := b.TempDir()
	path := writeExport(b, dir, n)
	var importTime, verifyTime time.Duration
	cpu := cputime.Start()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		data := filepath.Join(dir, fmt.Sprintf("data%d", i))
		start := time.Now()
		code := run(context.Background(), []string{"import", "--quiet", "--data", data, path}, strings.NewReader(""), io.Discard, io.Discard)
		importTime += time.Since(start)
		if code != 0 {
			b.Fatalf("import exit %d", code)
		}
		b.StopTimer()
		os.RemoveAll(data)
		start = time.Now()
		if code := run(context.Background(), []string{"verify", "--quiet", "--file", path}, strings.NewReader(""), io.Discard, io.Discard); code != 0 {
			b.Fatalf("verify exit %d", code)
		}
		verifyTime += time.Since(start)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*n)/importTime.Seconds(), "events/s")
	b.ReportMetric(float64(b.N*n)/verifyTime.Seconds(), "verify-events/s")
	// The import does what verify does and stores the result: this ratio
	// is what storing costs, on whatever machine and load the run had.
	b.ReportMetric(verifyTime.Seconds()/importTime.Seconds(), "import/verify")
	b.ReportMetric(cpu.PerOp(b.N*n), "cpu-µs/event")
}
