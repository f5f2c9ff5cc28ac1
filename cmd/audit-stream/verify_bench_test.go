package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/cputime"
)

// BenchmarkVerifyURL1M runs audit-stream verify --url (in-process) against
// a real server holding 1,000,000 events: fetch and check the checkpoint,
// stream the export over HTTP, re-walk the chain, rebuild the Merkle root.
// Server and verifier share the process, so cpu-µs/event is both sides.
func BenchmarkVerifyURL1M(b *testing.B) {
	const n = 1_000_000
	env := apitest.Start(b, apitest.Options{Dir: apitest.BenchDir(b, n)})
	vkey := env.Key.VerifierKey
	b.ResetTimer()
	start := time.Now()
	cpu := cputime.Start()
	for i := 0; i < b.N; i++ {
		var out bytes.Buffer
		code := run(context.Background(), []string{"verify", "--url", env.URL, "--key", vkey, "--quiet"}, strings.NewReader(""), &out, io.Discard)
		if code != 0 || !strings.Contains(out.String(), `"checked":1000000`) {
			b.Fatalf("verify exit %d: %s", code, out.String())
		}
	}
	b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(cpu.PerOp(b.N*n), "cpu-µs/event")
}
