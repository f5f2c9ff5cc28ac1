package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/client"
	"github.com/audit-stream/audit-stream/internal/e2e"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

// TestKill9DuringBatches: SIGKILL while batches are being appended never
// leaves half a batch, and every acknowledged batch is whole.
func TestKill9DuringBatches(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	dir := t.TempDir()
	const size = 300
	var (
		next  atomic.Int64
		ackMu sync.Mutex
		acked = map[string]bool{}
	)
	for round := 0; round < 3; round++ {
		p := e2e.Start(t, dir, "")
		c, err := client.New(p.URL)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var sent atomic.Int64
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					src := fmt.Sprintf("batch-%d", next.Add(1))
					batch := make([]client.AppendRequest, size)
					for i := range batch {
						batch[i] = client.AppendRequest{Kind: "other", Source: src, Payload: json.RawMessage(fmt.Sprintf(`{"i":"%d"}`, i))}
					}
					_, err := c.AppendBatch(ctx, batch, client.AppendOptions{})
					var refused *client.Error
					if err != nil && !errors.As(err, &refused) {
						return // the server is gone
					}
					if err == nil {
						ackMu.Lock()
						acked[src] = true
						ackMu.Unlock()
						sent.Add(1)
					}
				}
			}()
		}
		// Kill once some batches are in, while others are in flight.
		deadline := time.Now().Add(20 * time.Second)
		for sent.Load() < int64(3+round*2) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(round*7) * time.Millisecond)
		p.Kill()
		cancel()
		wg.Wait()
	}

	st, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	counts := map[string]int{}
	var prev event.Event
	err = st.Scan(context.Background(), store.Filter{}, 0, func(e *event.Event) error {
		if e.ID != prev.ID+1 || e.PrevHash != prev.Hash {
			return fmt.Errorf("event %d does not follow event %d", e.ID, prev.ID)
		}
		if h, _ := e.ComputeHash(nil); h != e.Hash {
			return fmt.Errorf("event %d: hash mismatch", e.ID)
		}
		counts[e.Source]++
		prev = *e
		prev.Payload = nil
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for src, n := range counts {
		if n != size {
			t.Errorf("%s has %d of its %d events: half a batch survived the crash", src, n, size)
		}
	}
	for src := range acked {
		if counts[src] != size {
			t.Errorf("acknowledged %s has %d events, want %d", src, counts[src], size)
		}
	}
	t.Logf("%d batches in the log (%d events), %d acknowledged, %d attempted", len(counts), prev.ID, len(acked), next.Load())
	if len(acked) == 0 {
		t.Fatal("no batch was acknowledged: the test proved nothing")
	}
}
