package bench

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/e2e"
)

// procMemory reads a process's resident memory in KiB: anonymous (heap,
// stacks) and file-backed (the memory-mapped database, which the kernel can
// drop at any time).
func procMemory(pid int) (anon, file int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1, -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "RssAnon:":
			anon = n
		case "RssFile:":
			file = n
		}
	}
	return anon, file
}

// BenchmarkServeStartup1M starts the real binary on a 1,000,000-event store
// and measures the time until it listens and its resident memory then, and
// again after it has verified the whole log.
func BenchmarkServeStartup1M(b *testing.B) {
	dir := bigStore(b)
	e2e.Binary(b)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		p := e2e.Start(b, dir, "")
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms-to-listen")
		anon, file := procMemory(p.Pid())
		b.ReportMetric(float64(anon)/1024, "MiB-anon-at-start")
		b.ReportMetric(float64(file)/1024, "MiB-file-at-start")
		resp, err := http.Get(p.URL + "/verify")
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		anon, file = procMemory(p.Pid())
		b.ReportMetric(float64(anon)/1024, "MiB-anon-after-verify")
		b.ReportMetric(float64(file)/1024, "MiB-file-after-verify")
		p.Kill()
	}
}
