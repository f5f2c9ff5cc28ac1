package httpapi_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/httpapi"
	"github.com/audit-stream/audit-stream/internal/pgtest"
	"github.com/audit-stream/audit-stream/internal/store"
)

// seedEvent is event i (1-based) of the query fixture; the test computes
// what each query must return from these fields, not through the server's
// own matching code.
type seedEvent struct {
	kind, source string
	at           time.Time
	decision     string
	path         string
	n            int
	flag         bool
}

var seedBase = time.Date(2026, 5, 15, 3, 0, 0, 0, time.UTC)

func seed(i int) seedEvent {
	return seedEvent{
		kind:     []string{"request_denied", "request_allowed", "tool_invocation_denied"}[i%3],
		source:   []string{"agent-7", "gateway"}[i%2],
		at:       seedBase.Add(time.Duration(i) * time.Minute),
		decision: fmt.Sprintf("DEC-%03d", i%4),
		path:     fmt.Sprintf("/tmp/%d", i%3),
		n:        i % 5,
		flag:     i%2 == 0,
	}
}

func (s seedEvent) request(i int) string {
	ts := s.at.Format(time.RFC3339)
	if i%2 == 1 { // the same instant, spelt with an offset
		ts = s.at.In(time.FixedZone("", 2*3600)).Format("2006-01-02T15:04:05.000000-07:00")
	}
	return fmt.Sprintf(`{"kind":%q,"source":%q,"timestamp":%q,"payload":{"decision_id":%q,"args":{"path":%q},"n":%d,"flag":%v,"note":"event %d"}}`,
		s.kind, s.source, ts, s.decision, s.path, s.n, s.flag, i)
}

const seedSize = 120

func startSeeded(t *testing.T, opt apitest.Options) *apitest.Env {
	t.Helper()
	env := apitest.Start(t, opt)
	var items []string
	for i := 1; i <= seedSize; i++ {
		items = append(items, seed(i).request(i))
	}
	if r := call(t, "POST", env.URL+"/events/batch", "", "["+strings.Join(items, ",")+"]", "Content-Type", "application/json"); r.status != 201 {
		t.Fatalf("seed: %d %s", r.status, r.body)
	}
	return env
}

func getIDs(t *testing.T, rawURL string) ([]int64, resp) {
	t.Helper()
	r := call(t, "GET", rawURL, "", "")
	if r.status != 200 {
		t.Fatalf("GET %s: %d %s", rawURL, r.status, r.body)
	}
	// The ids only, read without decoding whole events: the paging test
	// reads tens of thousands of them under the race detector.
	if len(r.body) < 2 || r.body[0] != '[' {
		t.Fatalf("GET %s: not a JSON array: %.100s", rawURL, r.body)
	}
	ids := []int64{}
	for _, m := range eventIDField.FindAllSubmatch(r.body, -1) {
		id, _ := strconv.ParseInt(string(m[1]), 10, 64)
		ids = append(ids, id)
	}
	return ids, r
}

// queryBackends are the stores the query tests run on: SQLite, and
// PostgreSQL when AUDIT_STREAM_TEST_POSTGRES names a server.
func queryBackends() []string {
	if os.Getenv(pgtest.Env) != "" {
		return []string{"sqlite", "postgres"}
	}
	return []string{"sqlite"}
}

// storeFor is the apitest store of backend: "" (a fresh data directory) or
// a fresh PostgreSQL schema.
func storeFor(t *testing.T, backend string) string {
	if backend == "postgres" {
		return pgtest.Schema(t)
	}
	return ""
}

func TestQueryFilters(t *testing.T) {
	t.Parallel()
	for _, backend := range queryBackends() {
		for _, indexed := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/indexed=%v", backend, indexed), func(t *testing.T) { testQueryFilters(t, backend, indexed) })
		}
	}
}

func testQueryFilters(t *testing.T, backend string, indexed bool) {
	{
		opt := apitest.Options{Store: storeFor(t, backend)}
		if indexed {
			opt.IndexPayload = []string{"decision_id", "args.path", "n", "flag"}
		}
		env := startSeeded(t, opt)
		at := func(m int) time.Time { return seedBase.Add(time.Duration(m) * time.Minute) }
		cases := []struct {
			name  string
			query string
			match func(s seedEvent, i int) bool
			order string // "" latest, oldest first; "asc"; "desc"
			limit int
		}{
			{"no filter", "", func(seedEvent, int) bool { return true }, "", 0},
			{"kind", "kind=request_denied", func(s seedEvent, _ int) bool { return s.kind == "request_denied" }, "", 0},
			{"kind and source", "kind=request_denied&source=agent-7", func(s seedEvent, _ int) bool { return s.kind == "request_denied" && s.source == "agent-7" }, "", 0},
			{"since until", "since=2026-05-15T03:30:00Z&until=2026-05-15T04:00:00Z", func(s seedEvent, _ int) bool { return !s.at.Before(at(30)) && s.at.Before(at(60)) }, "", 0},
			{"since naive", "since=2026-05-15T03:30:00", func(s seedEvent, _ int) bool { return !s.at.Before(at(30)) }, "", 0},
			{"since naive with a space", "since=2026-05-15%2003:30:00", func(s seedEvent, _ int) bool { return !s.at.Before(at(30)) }, "", 0},
			{"until with an offset", "until=2026-05-15T05:10:00%2B02:00", func(s seedEvent, _ int) bool { return s.at.Before(at(10)) }, "", 0},
			{"until with an undecoded plus", "until=2026-05-15T05:10:00+02:00", func(s seedEvent, _ int) bool { return s.at.Before(at(10)) }, "", 0},
			{"since a date", "since=2026-05-15&until=2026-05-15T03:05:00.000001Z", func(s seedEvent, _ int) bool { return !s.at.After(at(5)) }, "", 0},
			{"payload string", "payload.decision_id=DEC-001", func(s seedEvent, _ int) bool { return s.decision == "DEC-001" }, "", 0},
			{"payload OR", "payload.decision_id=DEC-001&payload.decision_id=DEC-002", func(s seedEvent, _ int) bool { return s.decision == "DEC-001" || s.decision == "DEC-002" }, "", 0},
			{"payload nested", "payload.args.path=/tmp/2", func(s seedEvent, _ int) bool { return s.path == "/tmp/2" }, "", 0},
			{"payload number", "payload.n=3", func(s seedEvent, _ int) bool { return s.n == 3 }, "", 0},
			{"payload number as float", "payload.n=3.0", func(s seedEvent, _ int) bool { return s.n == 3 }, "", 0},
			{"payload boolean", "payload.flag=true", func(s seedEvent, _ int) bool { return s.flag }, "", 0},
			{"payload string is not a number", "payload.decision_id=1", func(seedEvent, int) bool { return false }, "", 0},
			{"payload missing", "payload.nope=1", func(seedEvent, int) bool { return false }, "", 0},
			{"q", "q=DEC-003", func(s seedEvent, _ int) bool { return s.decision == "DEC-003" }, "", 0},
			{"q on text", "q=event+11", func(_ seedEvent, i int) bool { return strings.HasPrefix(fmt.Sprint(i), "11") }, "", 0},
			{"ids", "after=10&before=20", func(_ seedEvent, i int) bool { return i > 10 && i < 20 }, "", 0},
			{"before 1", "before=1", func(seedEvent, int) bool { return false }, "", 0},
			{"after at before", "after=5&before=6", func(seedEvent, int) bool { return false }, "", 0},
			{"latest page", "limit=5", func(seedEvent, int) bool { return true }, "", 5},
			{"asc page", "order=asc&limit=5", func(seedEvent, int) bool { return true }, "asc", 5},
			{"desc page", "order=desc&limit=5", func(seedEvent, int) bool { return true }, "desc", 5},
			{"cache-buster", "kind=request_denied&_=1747278855&limit=3", func(s seedEvent, _ int) bool { return s.kind == "request_denied" }, "", 3},
			{"everything", "kind=request_denied&kind=request_allowed&source=gateway&since=2026-05-15T03:10:00Z&until=2026-05-15T04:40:00Z&payload.flag=true&payload.decision_id=DEC-000&payload.decision_id=DEC-002&q=event&after=11&before=90&order=desc&limit=7",
				func(s seedEvent, i int) bool {
					return (s.kind == "request_denied" || s.kind == "request_allowed") && s.source == "gateway" && !s.at.Before(at(10)) && s.at.Before(at(100)) &&
						s.flag && (s.decision == "DEC-000" || s.decision == "DEC-002") && i > 11 && i < 90
				}, "desc", 7},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				var want []int64
				for i := 1; i <= seedSize; i++ {
					if tc.match(seed(i), i) {
						want = append(want, int64(i))
					}
				}
				limit := tc.limit
				if limit == 0 {
					limit = len(want)
				}
				more := len(want) > limit
				switch tc.order {
				case "asc":
					want = want[:min(limit, len(want))]
				case "desc":
					slices.Reverse(want)
					want = want[:min(limit, len(want))]
				default:
					want = want[max(0, len(want)-limit):]
				}
				got, r := getIDs(t, env.URL+"/events?"+tc.query)
				if !slices.Equal(got, want) {
					t.Fatalf("?%s: %v, want %v", tc.query, got, want)
				}
				if link := r.header.Get("Link"); (link != "") != more {
					t.Fatalf("?%s: Link %q, more results: %v", tc.query, link, more)
				}
			})
		}
	}
}

func TestQueryRejections(t *testing.T) {
	t.Parallel()
	env := startSeeded(t, apitest.Options{})
	deep := "payload." + strings.Repeat("a.", store.MaxPathDepth) + "a=1"
	var many, manyValues []string
	for i := range 17 {
		many = append(many, fmt.Sprintf("payload.k%d=1", i))
	}
	for range 65 {
		manyValues = append(manyValues, "payload.k=1")
	}
	cases := []struct {
		query  string
		status int
		names  string // the parameter the detail must name
	}{
		{"order=sideways", 400, "order"},
		{"order=asc&order=desc", 400, "order"},
		{"since=yesterday", 400, "since"},
		{"until=2026-13-01T00:00:00Z", 400, "until"},
		{"since=2026-05-15T03:14:15%2B25:00", 400, "since"},
		{"since=2026-05-16T00:00:00Z&until=2026-05-15T00:00:00Z", 400, "since"},
		{"since=2026-05-15&since=2026-05-16", 400, "since"},
		{"kind=made_up", 422, "kind"},
		{"source=", 422, "source"},
		{"payload.=x", 400, "payload."},
		{"payload.a..b=x", 400, "payload.a..b"},
		{"payload.a%24b=x", 400, "payload.a$b"},
		{"payload.a%20b=x", 400, `"payload.a b"`},
		{"payload=x", 400, "payload"},
		{deep, 400, "deeper"},
		{strings.Join(many, "&"), 400, "payload paths"},
		{strings.Join(manyValues, "&"), 400, "values"},
		{"payload.k=" + strings.Repeat("x", 1025), 400, "payload.k"},
		{"after=-1", 400, "after"},
		{"after=1.5", 400, "after"},
		{"before=abc", 400, "before"},
		{"before=99999999999999999999", 400, "before"},
		{"limit=0", 400, "limit"},
		{"limit=100001", 400, "limit"},
		{"q=", 400, "q"},
		{"q=a&q=b", 400, "q"},
		{"q=" + strings.Repeat("x", 257), 400, "q"},
		{"limit=ten", 400, "limit"},
		{"limit=5&limit=6", 400, "limit"},
		{"order=ASC", 400, "order"},
		{"since=", 400, "since"},
		{"until=2026-05-15T25:00:00Z", 400, "until"},
		{"kind=", 422, "kind"},
		{"kind=other&kind=made_up", 422, "made_up"},
		{"after=1&after=2", 400, "after"},
		{"payload.a.=x", 400, "payload.a."},
	}
	before := count(t, env.Store)
	for _, tc := range cases {
		r := call(t, "GET", env.URL+"/events?"+tc.query, "", "")
		if r.status != tc.status || r.header.Get("Content-Type") != "application/problem+json" || !strings.Contains(r.detail(), tc.names) {
			t.Errorf("?%.80s: %d %q, want %d naming %q", tc.query, r.status, r.detail(), tc.status, tc.names)
		}
	}
	if after := count(t, env.Store); after != before {
		t.Fatalf("rejected queries changed the log: %d → %d", before, after)
	}
}

// TestStreamQueryRejections: /stream refuses the filter parameters it
// shares with /events as /events does, before the stream starts.
func TestStreamQueryRejections(t *testing.T) {
	t.Parallel()
	env := startSeeded(t, apitest.Options{})
	for _, tc := range []struct {
		query  string
		status int
		names  string
	}{
		{"since=yesterday", 400, "since"},
		{"until=2026-13-01T00:00:00Z", 400, "until"},
		{"since=2026-05-16T00:00:00Z&until=2026-05-15T00:00:00Z", 400, "since"},
		{"kind=made_up", 422, "kind"},
		{"source=", 422, "source"},
		{"payload.a..b=x", 400, "payload.a..b"},
		{"payload=x", 400, "payload"},
		{"q=", 400, "q"},
		{"after=abc", 400, "after"},
		{"order=asc", 400, "order"},
	} {
		r := call(t, "GET", env.URL+"/stream?"+tc.query, "", "")
		if r.status != tc.status || r.header.Get("Content-Type") != "application/problem+json" || !strings.Contains(r.detail(), tc.names) {
			t.Errorf("/stream?%s: %d %q, want %d naming %q", tc.query, r.status, r.detail(), tc.status, tc.names)
		}
	}
}

// TestQueryScanLimit: a filter no index answers stops at the scan limit with
// a 422 that says so and where to go on; an indexed one does not.
func TestQueryScanLimit(t *testing.T) {
	t.Parallel()
	for _, backend := range queryBackends() {
		t.Run(backend, func(t *testing.T) { testQueryScanLimit(t, backend) })
	}
}

func testQueryScanLimit(t *testing.T, backend string) {
	env := startSeeded(t, apitest.Options{
		Store:        storeFor(t, backend),
		IndexPayload: []string{"decision_id"},
		API:          httpapi.Options{QueryScanLimit: 50},
	})
	r := call(t, "GET", env.URL+"/events?q=event+7&limit=100", "", "")
	if r.status != 422 || !strings.Contains(r.detail(), "q:") || !strings.Contains(r.detail(), "scan limit") || !strings.Contains(r.detail(), "continue from before=") {
		t.Fatalf("capped text search: %d %q", r.status, r.detail())
	}
	r = call(t, "GET", env.URL+"/events?payload.args.path=/tmp/1&order=asc&limit=100", "", "")
	if r.status != 422 || !strings.Contains(r.detail(), "payload.args.path") || !strings.Contains(r.detail(), "continue from after=") {
		t.Fatalf("capped payload filter: %d %q", r.status, r.detail())
	}
	// A page filled before the limit is no error.
	if ids, _ := getIDs(t, env.URL+"/events?q=event&limit=10"); len(ids) != 10 {
		t.Fatalf("q=event limit 10: %v", ids)
	}
	ids, _ := getIDs(t, env.URL+"/events?payload.decision_id=DEC-001")
	if len(ids) != seedSize/4 {
		t.Fatalf("indexed payload filter under a scan limit of 50: %d events", len(ids))
	}
	// A time range is indexed too.
	if ids, _ := getIDs(t, env.URL+"/events?since=2026-05-15T03:01:00Z&until=2026-05-15T04:41:00Z&limit=1000"); len(ids) != 100 {
		t.Fatalf("time range under a scan limit of 50: %d events", len(ids))
	}
}

// eventIDField is the first field of every event in wire form.
var eventIDField = regexp.MustCompile(`\{"event_id":(\d+),"timestamp"`)

var nextLink = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

// walk follows next links from first and returns the pages served.
func walk(t *testing.T, base, first string) (pages [][]int64) {
	t.Helper()
	u := base + first
	for {
		got, r := getIDs(t, u)
		pages = append(pages, got)
		link := r.header.Get("Link")
		if link == "" {
			return pages
		}
		m := nextLink.FindStringSubmatch(link)
		if m == nil {
			t.Fatalf("Link %q is not one RFC 8288 next link", link)
		}
		next, err := url.Parse(m[1])
		if err != nil {
			t.Fatal(err)
		}
		u = base + next.String()
		if len(pages) > 1000 {
			t.Fatal("the walk does not end")
		}
	}
}

// TestPaging walks a 10,000-event log with every cursor form while appends
// continue: nothing missed, nothing served twice, every page in order.
func TestPaging(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	size, page := 10000, 1000
	if raceEnabled {
		// The same walks at a fifth of the size: instrumented, the
		// driver reads rows too slowly for 10,000 in every form.
		size, page = 2000, 200
	}
	appendBatch := func(n, from int) {
		var items []string
		for i := from; i < from+n; i++ {
			items = append(items, fmt.Sprintf(`{"kind":%q,"source":"s%d","payload":{"i":%d}}`, []string{"request_denied", "other"}[i%2], i%3, i))
		}
		if r := call(t, "POST", env.URL+"/events/batch", "", "["+strings.Join(items, ",")+"]", "Content-Type", "application/json"); r.status != 201 {
			t.Fatalf("append: %d %s", r.status, r.body)
		}
	}
	for i := 0; i < size; i += 1000 {
		appendBatch(1000, i)
	}
	lim := func(n int) string { return strconv.Itoa(n * page / 1000) }
	// Appends keep coming while the walks run.
	ctx, stop := context.WithCancel(context.Background())
	var appended atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := size; ctx.Err() == nil; i += 5 {
			appendBatch(5, i)
			appended.Add(5)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	matching := func(f store.Filter, upTo int64) []int64 {
		f.Until = upTo
		var out []int64
		if err := env.Store.Scan(context.Background(), f, 0, func(e *event.Event) error {
			out = append(out, e.ID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	cases := []struct {
		name, query string
		f           store.Filter
	}{
		{"latest", "limit=" + lim(1000), store.Filter{}},
		{"desc", "order=desc&limit=" + lim(1000), store.Filter{}},
		{"asc", "order=asc&limit=" + lim(1000), store.Filter{}},
		{"latest filtered", "kind=request_denied&source=s1&limit=" + lim(333), store.Filter{Kinds: []string{"request_denied"}, Sources: []string{"s1"}}},
		{"asc filtered with payload", "kind=other&q=i&order=asc&limit=" + lim(777), store.Filter{Kinds: []string{"other"}}},
		{"desc in an id window", "after=200&before=1701&order=desc&limit=" + lim(999), store.Filter{After: 200, Until: 1700}},
		{"asc in an id window", "after=200&before=1701&order=asc&limit=" + lim(999), store.Filter{After: 200, Until: 1700}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pages := walk(t, env.URL, "/events?"+tc.query)
			var ids []int64
			for k, p := range pages {
				ids = append(ids, p...)
				if !slices.IsSorted(p) && !strings.Contains(tc.query, "order=desc") {
					t.Fatalf("page %d not oldest first: %v", k, p)
				}
				if k > 0 && len(p) > 0 {
					prev := pages[k-1]
					switch {
					case strings.Contains(tc.query, "order=asc"):
						if p[0] <= prev[len(prev)-1] {
							t.Fatalf("page %d starts at %d, not after %d", k, p[0], prev[len(prev)-1])
						}
					case strings.Contains(tc.query, "order=desc"):
						if p[0] >= prev[len(prev)-1] {
							t.Fatalf("page %d starts at %d, not before %d", k, p[0], prev[len(prev)-1])
						}
					default:
						if p[len(p)-1] >= prev[0] {
							t.Fatalf("page %d ends at %d, not before %d", k, p[len(p)-1], prev[0])
						}
					}
				}
			}
			slices.Sort(ids)
			if len(ids) == 0 {
				t.Fatal("the walk served nothing")
			}
			// Everything up to the newest id served is settled: the
			// walk must have served exactly the matches up to it. (An
			// ascending walk runs until it catches up with the
			// appends; a descending one starts from the head it saw.)
			upTo := ids[len(ids)-1]
			if tc.f.Until > 0 {
				upTo = tc.f.Until
			}
			want := matching(tc.f, upTo)
			if !slices.Equal(ids, want) {
				t.Fatalf("walk served %d ids in %d pages, want %d (first %v, want %v)", len(ids), len(pages), len(want), ids[:min(5, len(ids))], want[:min(5, len(want))])
			}
			if len(want) > page && len(pages) < 2 {
				t.Fatalf("%d events in one page", len(want))
			}
		})
	}
	stop()
	wg.Wait()
	if appended.Load() == 0 {
		t.Fatal("no appends ran during the walks")
	}
}

// TestExportFilters: /export takes the filters of /events within its id
// range, its time range included: since, and until when it is not an event
// id (digits alone keep the id meaning until has always had here).
func TestExportFilters(t *testing.T) {
	t.Parallel()
	for _, backend := range queryBackends() {
		t.Run(backend, func(t *testing.T) { testExportFilters(t, backend) })
	}
}

func testExportFilters(t *testing.T, backend string) {
	env := startSeeded(t, apitest.Options{Store: storeFor(t, backend)})
	at := func(m int) time.Time { return seedBase.Add(time.Duration(m) * time.Minute) }
	cases := []struct {
		query string
		match func(s seedEvent, i int) bool
	}{
		{"kind=request_denied&source=agent-7", func(s seedEvent, _ int) bool { return s.kind == "request_denied" && s.source == "agent-7" }},
		{"payload.decision_id=DEC-001&after=10&until=100", func(s seedEvent, i int) bool { return s.decision == "DEC-001" && i > 10 && i <= 100 }},
		{"payload.args.path=/tmp/2&q=event+1", func(s seedEvent, i int) bool { return s.path == "/tmp/2" && strings.HasPrefix(fmt.Sprint(i), "1") }},
		{"since=2026-05-15T03:30:00Z", func(s seedEvent, _ int) bool { return !s.at.Before(at(30)) }},
		{"since=2026-05-15T03:30:00Z&until=2026-05-15T04:00:00Z", func(s seedEvent, _ int) bool { return !s.at.Before(at(30)) && s.at.Before(at(60)) }},
		{"until=2026-05-15T05:10:00%2B02:00", func(s seedEvent, _ int) bool { return s.at.Before(at(10)) }},
		{"until=2026-05-15%2003:20:00", func(s seedEvent, _ int) bool { return s.at.Before(at(20)) }},
		{"since=2026-05-15T03:30:00&until=50", func(s seedEvent, i int) bool { return !s.at.Before(at(30)) && i <= 50 }},
		{"since=2026-05-15T03:30:00&after=40&kind=request_allowed", func(s seedEvent, i int) bool { return !s.at.Before(at(30)) && i > 40 && s.kind == "request_allowed" }},
	}
	for _, tc := range cases {
		r := call(t, "GET", env.URL+"/export?"+tc.query, "", "")
		if r.status != 200 {
			t.Fatalf("?%s: %d %s", tc.query, r.status, r.body)
		}
		var got, want []int64
		for _, m := range eventIDField.FindAllSubmatch(r.body, -1) {
			id, _ := strconv.ParseInt(string(m[1]), 10, 64)
			got = append(got, id)
		}
		for i := 1; i <= seedSize; i++ {
			if tc.match(seed(i), i) {
				want = append(want, int64(i))
			}
		}
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Fatalf("/export?%s: %v, want %v", tc.query, got, want)
		}
	}
	for _, tc := range []struct {
		query  string
		status int
		names  string
	}{
		{"since=yesterday", 400, "since"},
		{"until=tomorrow", 400, "until"},
		{"until=-1", 400, "until"},
		{"until=99999999999999999999", 400, "until"},
		{"since=2026-05-15&since=2026-05-16", 400, "since"},
		{"until=2026-05-15T04:00:00Z&until=2026-05-15T05:00:00Z", 400, "until"},
		{"since=2026-05-16&until=2026-05-15T00:00:00Z", 400, "since"},
		{"after=5&until=4", 400, "until"},
		{"kind=made_up", 422, "kind"},
		{"payload.a..b=1", 400, "payload.a..b"},
	} {
		r := call(t, "GET", env.URL+"/export?"+tc.query, "", "")
		if r.status != tc.status || r.header.Get("Content-Type") != "application/problem+json" || !strings.Contains(r.detail(), tc.names) {
			t.Errorf("/export?%s: %d %q, want %d naming %q", tc.query, r.status, r.detail(), tc.status, tc.names)
		}
	}
}
