package e2e_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/e2e"
)

type ack struct {
	EventID int64  `json:"event_id"`
	Hash    string `json:"hash"`
}

var client = &http.Client{Timeout: 10 * time.Second}

// SIGKILL the server while 16 producers append; after a restart every
// acknowledged event is there with the hash it was acknowledged with, and
// the chain is valid. Repeated, to kill at different moments of a commit.
func TestKillDuringAppends(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	acked := map[int64]string{}
	var mu sync.Mutex
	rounds := 4
	for round := range rounds {
		p := e2e.Start(t, dir, "")
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					body := fmt.Sprintf(`{"kind":"other","source":"w%d","payload":{"round":%d,"i":%d}}`, w, round, i)
					resp, err := client.Post(p.URL+"/events", "application/json", strings.NewReader(body))
					if err != nil {
						return // the server died: this append is unacknowledged
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 201 {
						continue
					}
					var a ack
					if json.Unmarshal(b, &a) != nil {
						continue // cut off mid-body: not acknowledged
					}
					mu.Lock()
					if prev, dup := acked[a.EventID]; dup && prev != a.Hash {
						t.Errorf("event %d acknowledged twice with different hashes", a.EventID)
					}
					acked[a.EventID] = a.Hash
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(200+rand.IntN(400)) * time.Millisecond)
		p.Kill()
		close(stop)
		wg.Wait()
	}
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	if n == 0 {
		t.Fatal("no append was acknowledged before the kills")
	}

	p := e2e.Start(t, dir, "")
	for id, hash := range acked {
		resp, err := client.Get(fmt.Sprintf("%s/events/%d", p.URL, id))
		if err != nil {
			t.Fatal(err)
		}
		var got ack
		json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if resp.StatusCode != 200 || got.Hash != hash {
			t.Fatalf("acknowledged event %d: status %d hash %q, want %q", id, resp.StatusCode, got.Hash, hash)
		}
	}
	resp, err := client.Get(p.URL + "/verify")
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Valid   bool  `json:"valid"`
		Checked int64 `json:"checked"`
	}
	json.NewDecoder(resp.Body).Decode(&rep)
	resp.Body.Close()
	var maxAcked int64
	for id := range acked {
		maxAcked = max(maxAcked, id)
	}
	if !rep.Valid || rep.Checked < maxAcked {
		t.Fatalf("after %d kills: verify %+v, highest acknowledged id %d", rounds, rep, maxAcked)
	}
	t.Logf("%d acknowledged events survived %d kills; log holds %d", n, rounds, rep.Checked)
}

// SIGTERM lets in-flight appends finish, then exits 0.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := e2e.Start(t, dir, "")
	resp, err := client.Post(p.URL+"/events", "application/json", strings.NewReader(`{"kind":"other","source":"s"}`))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("append: %v %v", resp, err)
	}
	resp.Body.Close()
	if code := p.Terminate(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM:\n%s", code, p.Log())
	}
	if !strings.Contains(p.Log(), "msg=stopped events=1") {
		t.Fatalf("log lacks a clean stop:\n%s", p.Log())
	}
}
