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

// TestStreamLinger: whatever the linger (none, the default, a long one), a
// live subscriber gets every event appended by concurrent producers once, in
// order; and with a long linger, an event after a quiet spell still goes
// out at once, not a linger later.
func TestStreamLinger(t *testing.T) {
	for _, linger := range []time.Duration{-1, 0, time.Second} {
		t.Run(fmt.Sprint(linger), func(t *testing.T) {
			env := apitest.Start(t, apitest.Options{API: httpapi.Options{StreamLinger: linger}})
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
			if want := seq(2, 1+producers*each); !slices.Equal(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
}
