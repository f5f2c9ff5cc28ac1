package postgres

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/pgtest"
	"github.com/audit-stream/audit-stream/internal/store"
)

// TestTimeRangesWhileAppending: time-range queries on one instance, between
// another instance's appends of producer timestamps in any order (late,
// early, equal, unparsable), find exactly the events Filter.Matches selects,
// while the querying instance's time map grows by partial and whole blocks.
func TestTimeRangesWhileAppending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.Schema(t)
	st, err := Open(ctx, url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.times.SetBlock(4)
	writer, err := Open(ctx, url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	led, err := ledger.Open(ctx, writer, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close(ctx)
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
		evs, err := led.Append(ctx, reqs)
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
				if err := st.Scan(ctx, f, 0, func(e *event.Event) error {
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
	if ids, blocks := st.times.Covered(); ids != int64(len(all)) || blocks != (len(all)+3)/4 {
		t.Fatalf("time map covers %d ids in %d blocks after %d events", ids, blocks, len(all))
	}
}
