package httpapi_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/clock"
	"github.com/audit-stream/audit-stream/internal/httpapi"
)

// TestStreamLinger: whatever the linger (none, the default, a long one, one
// stretched by a bound on bursts), a live subscriber gets every event
// appended by concurrent producers once, in order; it waits exactly the
// linger between bursts; and an event after a quiet spell goes out at once.
// The lingers are waited out on a manual clock, which the test advances
// whenever the stream waits on it: no test time passes in sleeps, and a slow
// machine cannot make a linger look longer or shorter than it is.
func TestStreamLinger(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		opt    httpapi.Options
		linger time.Duration // the effective linger
	}{
		{"none", httpapi.Options{StreamLinger: -1}, 0},
		{"default", httpapi.Options{}, 50 * time.Millisecond},
		{"long", httpapi.Options{StreamLinger: time.Second}, time.Second},
		// One subscriber, two bursts a second: 500 ms.
		{"stretched", httpapi.Options{StreamLinger: time.Millisecond, StreamBursts: 2}, 500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := clock.NewManual(time.Date(2026, 5, 15, 3, 14, 15, 0, time.UTC))
			opt := tc.opt
			opt.Clock = clk
			env := apitest.Start(t, apitest.Options{API: opt})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			resp := rawStream(t, ctx, env.URL, "", nil)
			defer resp.Body.Close()
			fr := newFrameReader(resp.Body)
			if lines, err := fr.next(); err != nil || len(lines) != 2 {
				t.Fatalf("preamble %q %v", lines, err)
			}

			// A quiet log: the first event goes out at once, with the
			// clock standing still.
			post(t, env.URL, "other", "s", `{"n":0}`)
			readIDs(t, fr, 1)

			// While events keep coming, the stream waits one linger
			// after each burst; the clock moves on each time it does.
			actx, stopAdvancing := context.WithCancel(ctx)
			var advancing sync.WaitGroup
			advancing.Go(func() {
				for clk.WaitTimers(actx, 1) == nil {
					clk.Advance(tc.linger)
				}
			})
			const producers, each = 4, 25
			var wg sync.WaitGroup
			for p := range producers {
				wg.Go(func() {
					for i := range each {
						post(t, env.URL, "other", "s", fmt.Sprintf(`{"p":%d,"i":%d}`, p, i))
					}
				})
			}
			got := readIDs(t, fr, producers*each)
			wg.Wait()
			if want := seq(2, 1+producers*each); !slices.Equal(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
			stopAdvancing()
			advancing.Wait()

			made := clk.Made()
			if tc.linger == 0 && len(made) != 0 {
				t.Fatalf("no linger, yet the stream waited %v", made)
			}
			if tc.linger > 0 && len(made) == 0 {
				t.Fatalf("the stream never lingered (linger %v)", tc.linger)
			}
			for _, d := range made {
				if d != tc.linger {
					t.Fatalf("the stream lingered %v, want %v (all: %v)", d, tc.linger, made)
				}
			}
		})
	}
}
