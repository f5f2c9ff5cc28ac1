package hostile_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/audit-stream/audit-stream/internal/e2e"
)

// TestProvenanceEndpointsHostile: the provenance routes against the real
// binary: anonymous callers are refused where the route needs a reader
// (and counted), the seal stays open verification material; ids and
// sizes no log can hold are clean 4xx; and many concurrent readers of the
// record stream get their answer or a 503 with Retry-After, never a 5xx
// of the server's own, while appends go on.
func TestProvenanceEndpointsHostile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := e2e.Start(t, dir, "", "--max-heavy-reads", "2")
	reader, _ := authzToken(t, dir, "--role", "reader")
	producer, _ := authzToken(t, dir, "--role", "producer", "--source", "hostile")
	for i := range 50 {
		if r := authzDo(t, "POST", p.URL+"/events", fmt.Sprintf(`{"kind":"other","source":"hostile","payload":{"i":%d}}`, i), append(authzBearer(producer), "Content-Type", "application/json")...); r.status != 201 {
			t.Fatalf("append: %d %s", r.status, r.body)
		}
	}
	authzWaitCheckpoint(t, p.URL, 50)

	// Anonymous.
	denied := authzMetric(t, p.URL, "audit_stream_auth_denied_total", authzBearer(reader)...)
	for _, path := range []string{"/events/1/provenance", "/provenance", "/provenance?after=0&until=50"} {
		if r := authzDo(t, "GET", p.URL+path, ""); r.status != http.StatusUnauthorized || r.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("anonymous GET %s: %d %s", path, r.status, r.body)
		}
	}
	if got := authzMetric(t, p.URL, "audit_stream_auth_denied_total", authzBearer(reader)...); got != denied+3 {
		t.Errorf("anonymous refusals counted %v, want %v", got-denied, 3)
	}
	if r := authzDo(t, "GET", p.URL+"/provenance/seal?size=50", ""); r.status != http.StatusOK || !strings.HasPrefix(string(r.body), "audit-stream provenance seal v1\n") {
		t.Errorf("anonymous seal (open verification material): %d %s", r.status, r.body)
	}

	// Huge and malformed ids and sizes.
	huge := strings.Repeat("9", 5000)
	for _, c := range []struct {
		path   string
		status int
	}{
		{"/events/" + huge + "/provenance", 404},
		{"/events/-1/provenance", 404},
		{"/events/1e9/provenance", 422},
		{"/events/%00/provenance", 422},
		{"/provenance?after=" + huge, 400},
		{"/provenance?until=" + huge, 400},
		{"/provenance/seal?size=" + huge, 400},
		{"/provenance/seal?size=9223372036854775807", 404},
	} {
		r := authzDo(t, "GET", p.URL+c.path, "", authzBearer(reader)...)
		if r.status != c.status || r.header.Get("Content-Type") != "application/problem+json" || r.detail() == "" {
			t.Errorf("GET %.80s: %d %.200s; want %d problem+json with a detail", c.path, r.status, r.body, c.status)
		}
	}

	// Many at once, while appends go on.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			authzDo(t, "POST", p.URL+"/events", fmt.Sprintf(`{"kind":"other","source":"hostile","payload":{"i":%d}}`, i), append(authzBearer(producer), "Content-Type", "application/json")...)
		}
	}()
	const n = 64
	statuses := make([]int, n)
	var readers sync.WaitGroup
	for i := range n {
		readers.Add(1)
		go func() {
			defer readers.Done()
			path := "/provenance"
			if i%2 == 1 {
				path = "/events/" + []string{"1", "25", "50"}[i%3] + "/provenance"
			}
			r := authzDo(t, "GET", p.URL+path, "", authzBearer(reader)...)
			statuses[i] = r.status
			if r.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
		}()
	}
	readers.Wait()
	close(stop)
	wg.Wait()
	ok := 0
	for i, s := range statuses {
		switch s {
		case http.StatusOK:
			ok++
		case http.StatusServiceUnavailable:
		default:
			t.Errorf("concurrent reader %d: %d", i, s)
		}
	}
	if ok < n/2 {
		t.Errorf("only %d of %d concurrent provenance reads were answered", ok, n)
	}
	if strings.Contains(p.Log(), "level=ERROR") {
		t.Errorf("the server logged errors:\n%s", p.Log())
	}
}
