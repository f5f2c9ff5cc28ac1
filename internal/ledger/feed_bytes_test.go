package ledger

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

// The ring keeps at most RecentBytes alive, whatever the size of the events,
// and a reader still gets every event exactly once: what the ring dropped
// comes from storage, in reads of bounded size.
func TestFeedBoundedInBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const maxBytes = 64 << 10
	led, err := Open(ctx, st, Options{RecentEvents: 1024, RecentBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close(ctx)
	feed := led.Feed()
	// Encodings are made and counted too.
	defer feed.Subscribe(&Encoder{
		Append: func(dst []byte, e *event.Event) []byte { return e.AppendJSON(dst) },
		Size:   func(e *event.Event) int { return 256 + len(e.Payload) },
	}).Close()

	sizes := []int{10, 5 << 10, 100, 200 << 10, 20 << 10, 1}
	var n int
	for round := range 20 {
		var reqs []event.Request
		for j := range 1 + round%3 {
			sz := sizes[(round+j)%len(sizes)]
			reqs = append(reqs, event.Request{Kind: "request_denied", Source: "s", Payload: []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, n, strings.Repeat("x", sz)))})
			n++
		}
		if _, err := led.Append(ctx, reqs); err != nil {
			t.Fatal(err)
		}
		feed.mu.Lock()
		used := feed.bytes
		var live int64
		for i := range feed.ring {
			if e := feed.ring[i].Load(); e != nil {
				live += e.size
			}
		}
		feed.mu.Unlock()
		if used > maxBytes || used != live {
			t.Fatalf("after %d events the ring accounts %d bytes, holds %d; bound %d", n, used, live, maxBytes)
		}
	}
	// A reader from the start gets every event once, in order, with a
	// bounded amount per read.
	var after int64
	next := int64(1)
	for after < feed.Head() {
		evs, seen, err := feed.Read(ctx, store.Filter{After: after}, 512)
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, e := range evs {
			if e.ID != next {
				t.Fatalf("got event %d, want %d", e.ID, next)
			}
			next++
			total += len(e.Payload)
		}
		if len(evs) > 1 && total-len(evs[len(evs)-1].Payload) >= readBytes {
			t.Fatalf("one read returned %d payload bytes", total)
		}
		after = seen
	}
	if next != int64(n)+1 {
		t.Fatalf("read %d events, want %d", next-1, n)
	}
	if feed.StoreReads() == 0 {
		t.Fatal("no read fell back to storage: the ring kept everything")
	}
}
