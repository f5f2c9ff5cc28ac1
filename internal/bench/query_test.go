package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/cputime"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/postgres"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

// bigIndexes are the payload paths the query benchmarks index; the index is
// built once per store (and kept with AUDIT_STREAM_BENCH_DIR).
var bigIndexes = []string{"decision_id"}

// bigTimeRange returns a since/until pair covering the middle half of the
// 1,000,000-event store's time span (its timestamps are those the server
// gave while the store was built).
func bigTimeRange(b *testing.B, st store.Store) (since, until string) {
	ctx := context.Background()
	first, err := st.Get(ctx, bigSize/4)
	if err != nil {
		b.Fatal(err)
	}
	last, err := st.Get(ctx, bigSize*3/4)
	if err != nil {
		b.Fatal(err)
	}
	return first.Timestamp, last.Timestamp
}

// getPage GETs one page and returns its latency, size and next link.
func getPage(b *testing.B, u string) (time.Duration, int64, string) {
	start := time.Now()
	resp, err := http.Get(u)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if resp.StatusCode != 200 {
		b.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	return d, n, resp.Header.Get("Link")
}

func warm(b *testing.B, urls ...string) {
	for _, u := range urls {
		getPage(b, u)
	}
}

// BenchmarkQueryKindSourceTime1M is GET /events with kind, source and a
// time range (1 event in 30 of the middle half matches) and limit=1000.
func BenchmarkQueryKindSourceTime1M(b *testing.B) {
	env := startBig(b)
	since, until := bigTimeRange(b, env.Store)
	urls := make([]string, 0, 30)
	for i := range 30 {
		q := url.Values{"kind": {benchKinds[i%len(benchKinds)]}, "source": {fmt.Sprintf("service-%d", i%10)}, "since": {since}, "until": {until}, "limit": {"1000"}}
		urls = append(urls, env.URL+"/events?"+q.Encode())
	}
	warm(b, urls...)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	cpu := cputime.Start()
	for i := range b.N {
		d, n, _ := getPage(b, urls[i%len(urls)])
		if n < 100000 {
			b.Fatalf("%s: %d bytes", urls[i%len(urls)], n)
		}
		lat = append(lat, d)
	}
	reportLatency(b, lat, cpu)
}

// BenchmarkQueryPayloadIndexed1M is GET /events?payload.decision_id=… (an
// indexed path; one event each) for ids spread over the log.
func BenchmarkQueryPayloadIndexed1M(b *testing.B) {
	env := startBig(b)
	u := func(i int) string {
		return fmt.Sprintf("%s/events?payload.decision_id=DEC-%08d", env.URL, (i*7919)%bigSize)
	}
	for i := range 100 {
		warm(b, u(i))
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	cpu := cputime.Start()
	for i := range b.N {
		d, n, _ := getPage(b, u(i))
		if n < 300 {
			b.Fatalf("%s: %d bytes", u(i), n)
		}
		lat = append(lat, d)
	}
	reportLatency(b, lat, cpu)
}

// startBig starts a server on the big store (bigTarget) with the payload
// paths of bigIndexes indexed.
func startBig(b *testing.B) *apitest.Env {
	opt := bigTarget(b)
	opt.IndexPayload = bigIndexes
	return apitest.Start(b, opt)
}

var linkTarget = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

// BenchmarkPageWalk1M walks the 1,000,000-event log back from the head by
// its next links, 1,000 events a page (each op is one page; the walk starts
// again at the head when it ends). ?kind= walks one kind instead.
func BenchmarkPageWalk1M(b *testing.B) {
	for _, tc := range []struct{ name, query string }{
		{"all", "limit=1000"},
		{"kind", "kind=request_denied&limit=1000"},
		{"asc", "order=asc&limit=1000"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			env := startBig(b)
			first := env.URL + "/events?" + tc.query
			next := first
			for range 20 {
				_, _, link := getPage(b, next)
				next = env.URL + linkTarget.FindStringSubmatch(link)[1]
			}
			next = first
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			cpu := cputime.Start()
			for range b.N {
				d, n, link := getPage(b, next)
				if n < 100000 {
					b.Fatalf("%s: %d bytes", next, n)
				}
				lat = append(lat, d)
				if m := linkTarget.FindStringSubmatch(link); m != nil {
					next = env.URL + m[1]
				} else {
					next = first
				}
			}
			reportLatency(b, lat, cpu)
		})
	}
}

// BenchmarkQueryBaseline1M is what a page of 1,000 costs without the query
// path, for the query benchmarks of the same run to be read against: scan
// reads 1,000 consecutive events through store.Scan (an id range, no
// filter, no HTTP); http serves a stored page of GET /events as fixed bytes
// from a bare net/http handler, and the client reads it as the query
// benchmarks do.
func BenchmarkQueryBaseline1M(b *testing.B) {
	b.Run("scan", func(b *testing.B) {
		env := startBig(b)
		ctx := context.Background()
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		cpu := cputime.Start()
		for i := range b.N {
			start := time.Now()
			n := 0
			f := store.Filter{After: int64(i*7919*1000) % (bigSize - 1000)}
			if err := env.Store.Scan(ctx, f, 1000, func(*event.Event) error { n++; return nil }); err != nil || n != 1000 {
				b.Fatalf("scan: %d events, %v", n, err)
			}
			lat = append(lat, time.Since(start))
		}
		reportLatency(b, lat, cpu)
	})
	b.Run("http", func(b *testing.B) {
		env := startBig(b)
		resp, err := http.Get(env.URL + "/events?limit=1000")
		if err != nil {
			b.Fatal(err)
		}
		page, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(page)
		}))
		defer srv.Close()
		warm(b, srv.URL)
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		cpu := cputime.Start()
		for range b.N {
			d, n, _ := getPage(b, srv.URL)
			if n != int64(len(page)) {
				b.Fatalf("%d bytes, want %d", n, len(page))
			}
			lat = append(lat, d)
		}
		reportLatency(b, lat, cpu)
	})
}

// BenchmarkQueryFirstTimeRange1M is the first time-range query after the
// store opens (SQLite, or PostgreSQL with AUDIT_STREAM_BENCH_POSTGRES): it
// builds the store's time-to-id map from the whole log (the cost a server
// pays once per start).
func BenchmarkQueryFirstTimeRange1M(b *testing.B) {
	target := bigTarget(b)
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		var st store.Store
		var err error
		if target.Store != "" {
			st, err = postgres.Open(ctx, target.Store, postgres.Options{})
		} else {
			st, err = sqlite.Open(ctx, target.Dir)
		}
		if err != nil {
			b.Fatal(err)
		}
		e, err := st.Get(ctx, bigSize/2)
		if err != nil {
			b.Fatal(err)
		}
		since, _ := event.ParseTimestamp(e.Timestamp)
		b.StartTimer()
		n := 0
		err = st.Scan(ctx, store.Filter{TimeFrom: since}, 1000, func(*event.Event) error { n++; return nil })
		b.StopTimer()
		st.Close()
		if err != nil || n != 1000 {
			b.Fatalf("scan: %d events, %v", n, err)
		}
		b.StartTimer()
	}
}
