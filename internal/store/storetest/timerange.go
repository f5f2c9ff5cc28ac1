package storetest

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
)

// TimeRangesWhileAppending checks a store's time map (store.TimeMap): time-
// range queries through reader, between appends of producer timestamps in
// any order (late, early, equal, unparsable), find exactly the events
// Filter.Matches selects, while the map grows by partial and whole blocks.
// The backend sets reader's map to small blocks (SetBlock) beforehand;
// appendEvents may write through another instance than reader. It returns
// every event appended.
func TimeRangesWhileAppending(t *testing.T, reader store.Scanner, appendEvents func(context.Context, []event.Request) ([]event.Event, error)) []event.Event {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(11, 11))
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	at := func(h int) time.Time { return base.Add(time.Duration(h) * time.Hour) }
	var all []event.Event
	for round := range 40 {
		var reqs []event.Request
		for range 1 + rng.IntN(9) {
			// Mostly the next hour; some far back, some ahead,
			// some repeating an hour, one in 40 unparsable.
			h := len(all) + len(reqs)
			switch rng.IntN(10) {
			case 0:
				h -= rng.IntN(200)
			case 1:
				h += rng.IntN(50)
			case 2:
				h = len(all) / 2
			}
			ts := at(h).Format(time.RFC3339)
			if rng.IntN(40) == 0 {
				ts = "not a time"
			}
			reqs = append(reqs, event.Request{Kind: []string{"other", "request_denied"}[rng.IntN(2)], Source: "s", Timestamp: ts, Payload: []byte(`{}`)})
		}
		evs, err := appendEvents(ctx, reqs)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, evs...)
		for range 8 {
			var f store.Filter
			if rng.IntN(3) > 0 {
				f.TimeFrom = at(rng.IntN(len(all)+60) - 30)
			}
			if f.TimeFrom.IsZero() || rng.IntN(3) > 0 {
				f.TimeTo = at(rng.IntN(len(all)+60) - 30)
			}
			if rng.IntN(3) == 0 {
				f.Kinds = []string{"request_denied"}
			}
			if rng.IntN(4) == 0 {
				f.After = int64(rng.IntN(len(all)))
			}
			var want []int64
			for i := range all {
				if f.Matches(&all[i]) {
					want = append(want, all[i].ID)
				}
			}
			for _, desc := range []bool{false, true} {
				f.Desc = desc
				var got []int64
				if err := reader.Scan(ctx, f, 0, func(e *event.Event) error {
					got = append(got, e.ID)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if desc {
					slices.Reverse(got)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("round %d, %d events, since %v until %v kinds %v after %d desc %v: got %v, want %v",
						round, len(all), f.TimeFrom, f.TimeTo, f.Kinds, f.After, desc, got, want)
				}
			}
		}
	}
	return all
}
