package httpapi_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/httpapi"
)

// TestStreamLinger: whatever the linger (none, the default, a long one, one
// stretched by a bound on bursts), a live subscriber gets every event
// appended by concurrent producers once, in order; and with a long linger,
// an event after a quiet spell still goes out at once, not a linger later.
func TestStreamLinger(t *testing.T) {
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
			linger := tc.linger
			env := apitest.Start(t, apitest.Options{API: tc.opt})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			resp := rawStream(t, ctx, env.URL, "", nil)
			defer resp.Body.Close()
			fr := newFrameReader(resp.Body)
			if lines, err := fr.next(); err != nil || len(lines) != 2 {
				t.Fatalf("preamble %q %v", lines, err)
			}

			// A quiet log: the first event goes out at once.
			start := time.Now()
			post(t, env.URL, "other", "s", `{"n":0}`)
			readIDs(t, fr, 1)
			if d := time.Since(start); linger > 0 && d >= linger {
				t.Fatalf("first event after a quiet spell took %v, the linger is %v", d, linger)
			}

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
			if d := time.Since(start); linger > 0 && d < linger {
				t.Errorf("%d appends arrived within %v, one linger is %v", producers*each, d, linger)
			}
			if want := seq(2, 1+producers*each); !slices.Equal(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
}
