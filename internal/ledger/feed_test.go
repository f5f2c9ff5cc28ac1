package ledger_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

var feedKinds = []string{"request_allowed", "request_denied", "other"}

func appendN(t *testing.T, led *ledger.Ledger, from, n int) {
	t.Helper()
	for i := from; i < from+n; {
		group := min(1+i%7, from+n-i) // groups of varied size
		reqs := make([]event.Request, group)
		for j := range reqs {
			k := i + j
			reqs[j] = event.Request{Kind: feedKinds[k%3], Source: fmt.Sprintf("s%d", k%4), Payload: []byte(fmt.Sprintf(`{"n":%d}`, k))}
		}
		if _, err := led.Append(context.Background(), reqs); err != nil {
			t.Fatal(err)
		}
		i += group
	}
}

// testEncoder stands for a wire format: the feed must serve exactly what it
// makes of each event.
var testEncoder = &ledger.Encoder{
	Append: func(dst []byte, e *event.Event) []byte {
		return fmt.Appendf(dst, "%d %s %s %s|", e.ID, e.Kind, e.Source, e.Payload)
	},
	Size: func(e *event.Event) int { return 64 + len(e.Kind) + len(e.Source) + len(e.Payload) },
}

// readAll pulls from the feed as /stream does, up to the head. Each step
// also reads the same through sub, which must give the encodings of the
// same events by sub's encoder, appended to what dst held.
func readAll(t *testing.T, f *ledger.Feed, sub *ledger.Subscription, enc *ledger.Encoder, flt store.Filter, max int) []int64 {
	t.Helper()
	var ids []int64
	prefix := []byte("kept")
	for flt.After < f.Head() {
		evs, seen, err := f.Read(context.Background(), flt, max)
		if err != nil {
			t.Fatal(err)
		}
		frames, fseen, err := sub.Read(context.Background(), flt, max, [][]byte{prefix})
		if err != nil {
			t.Fatal(err)
		}
		if fseen != seen || len(frames) != 1+len(evs) || !bytes.Equal(frames[0], prefix) {
			t.Fatalf("Subscription.Read after %d: %d frames to %d, Read: %d events to %d", flt.After, len(frames)-1, fseen, len(evs), seen)
		}
		for i := range evs {
			if w := enc.Append(nil, &evs[i]); !bytes.Equal(frames[1+i], w) {
				t.Fatalf("encoding of event %d:\n%q\nwant\n%q", evs[i].ID, frames[1+i], w)
			}
		}
		if seen <= flt.After && len(evs) == 0 {
			t.Fatalf("no progress after %d", flt.After)
		}
		for _, e := range evs {
			if e.ID <= flt.After || e.ID > seen {
				t.Fatalf("event %d outside (%d, %d]", e.ID, flt.After, seen)
			}
			if string(e.Payload) != fmt.Sprintf(`{"n":%d}`, e.ID-1) {
				t.Fatalf("event %d has payload %s", e.ID, e.Payload)
			}
			ids = append(ids, e.ID)
		}
		flt.After = seen
	}
	return ids
}

func want(n int, flt store.Filter) []int64 {
	var ids []int64
	for id := flt.After + 1; id <= int64(n); id++ {
		k := int(id - 1)
		if (len(flt.Kinds) == 0 || slices.Contains(flt.Kinds, feedKinds[k%3])) &&
			(len(flt.Sources) == 0 || slices.Contains(flt.Sources, fmt.Sprintf("s%d", k%4))) {
			ids = append(ids, id)
		}
	}
	return ids
}

// TestFeedRead reads from every position with filters and chunk sizes
// through the ring, through storage when behind the ring, and across the
// holes a restart leaves in the ring.
func TestFeedRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	led, err := ledger.Open(ctx, st, ledger.Options{RecentEvents: 16})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, led, 0, 100)
	led.Close(ctx)

	// Restart: the ring is empty, then holds only what follows.
	led, err = ledger.Open(ctx, st, ledger.Options{RecentEvents: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close(ctx)
	f := led.Feed()
	// Half the ring is published with nobody subscribed (nothing
	// encoded), half with a subscriber (each event encoded once). A
	// subscriber with another encoder (another wire format) must not be
	// served the first one's bytes.
	appendN(t, led, 100, 5)
	sub := f.Subscribe(testEncoder)
	defer sub.Close()
	appendN(t, led, 105, 5)
	other := &ledger.Encoder{
		Append: func(dst []byte, e *event.Event) []byte { return fmt.Appendf(dst, "other %d;", e.ID) },
		Size:   func(*event.Event) int { return 16 },
	}
	otherSub := f.Subscribe(other)
	defer otherSub.Close()
	const n = 110
	if f.Head() != n {
		t.Fatalf("head %d, want %d", f.Head(), n)
	}

	filters := []store.Filter{
		{},
		{Kinds: []string{"request_denied"}},
		{Kinds: []string{"request_denied", "other"}, Sources: []string{"s1"}},
		{Sources: []string{"s0", "s3"}},
		{Sources: []string{"nobody"}},
	}
	before := f.StoreReads()
	for _, base := range filters {
		for _, after := range []int64{0, 1, 50, 93, 94, 95, 99, 100, 101, 108, 109, 110} {
			for _, max := range []int{1, 3, 16, 512} {
				flt := base
				flt.After = after
				got := readAll(t, f, sub, testEncoder, flt, max)
				if w := want(n, flt); !slices.Equal(got, w) {
					t.Fatalf("filter %+v max %d: got %v, want %v", flt, max, got, w)
				}
				if got := readAll(t, f, otherSub, other, flt, max); !slices.Equal(got, want(n, flt)) {
					t.Fatalf("other encoder, filter %+v max %d: got %v", flt, max, got)
				}
			}
		}
	}
	if f.StoreReads() == before {
		t.Fatal("no read fell back to storage")
	}

	// Reading from the ring alone (the last 10 events, all published by
	// this instance) touches no storage.
	before = f.StoreReads()
	if got := readAll(t, f, sub, testEncoder, store.Filter{After: 100}, 512); !slices.Equal(got, want(n, store.Filter{After: 100})) {
		t.Fatalf("got %v", got)
	}
	if f.StoreReads() != before {
		t.Fatal("a read within the ring went to storage")
	}
}
