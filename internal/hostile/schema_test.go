package hostile

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Payloads crafted to be slow to check against a kind's schema (a megabyte
// against a pattern with alternation: about a hundred times its parse) from
// many producers at once: each check stays linear, at most one per CPU runs
// at a time and the rest are refused with 503 + Retry-After, so health
// checks and ordinary appends keep being answered.
func TestSlowSchemaPayloads(t *testing.T) {
	// Not parallel: it measures latency, which the other attacks disturb.
	kindsFile := filepath.Join(t.TempDir(), "kinds.yaml")
	if err := os.WriteFile(kindsFile, []byte(`
kinds:
  - name: slow_check
    description: a kind whose schema has a pattern with alternation
    schema: {properties: {v: {pattern: "^(a|b|ab)*c$"}}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := start(t, "--kinds", kindsFile)
	control := start(t) // a server nobody attacks: see finish
	body := `{"kind":"slow_check","source":"hostile","payload":{"v":"` + strings.Repeat("a", 1<<20-100) + `"}}`
	var failed, refused, other atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: time.Minute}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Post(s.URL+"/events", "application/json", strings.NewReader(body))
				if err != nil {
					other.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == 422:
					failed.Add(1)
				case resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "":
					refused.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	p, pc := startProbe(s), startProbe(control)
	p.finish(t, 4*time.Second, 500*time.Millisecond, pc)
	close(stop)
	wg.Wait()
	t.Logf("1 MiB slow-to-check payloads from 16 producers: %d checked and refused (422), %d turned away (503), %d other", failed.Load(), refused.Load(), other.Load())
	if failed.Load() == 0 || refused.Load() == 0 || other.Load() != 0 {
		t.Errorf("want some checked (422), some turned away with 503 + Retry-After, nothing else")
	}
}
