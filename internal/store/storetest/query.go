package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

// QueryPayloadPaths are the payload paths the query cases filter on; a
// backend may run RunQueries a second time with these indexed.
var QueryPayloadPaths = []string{"decision_id", "args.path", "n", "ok", "score"}

// RunQueries runs the filter cases: every Filter field alone and combined,
// in both orders, with limits and the scan cap, against Filter.Matches.
func RunQueries(t *testing.T, open Open) {
	storage := open(t)
	st := storage.Store
	all := appendQueryLog(t, st)
	t.Run("Filters", func(t *testing.T) { testQueryFilters(t, st, all) })
	t.Run("ScanLimit", func(t *testing.T) { testScanLimit(t, st, all, storage.PayloadIndexed) })
}

// queryLogSize is the events appendQueryLog writes: more than one SQLite
// scan page (2,048 rows), except under the race detector.
var queryLogSize = func() int {
	if raceEnabled {
		return 650
	}
	return 2600
}()

var queryBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// appendQueryLog appends a log whose events vary in every filtered field:
// timestamps in several spellings and out of id order, nested payloads,
// values that are strings, numbers, booleans and null.
func appendQueryLog(t *testing.T, st store.Store) []event.Event {
	t.Helper()
	ctx := context.Background()
	var all []event.Event
	for len(all) < queryLogSize {
		recs, err := st.Append(ctx, func(tx store.Tx) ([]store.Record, error) {
			return buildShaped(tx.Head(), 650, tlog.HashReaderFunc(tx.ReadHashes), shapeQueryEvent)
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			all = append(all, r.Event)
		}
	}
	return all
}

func shapeQueryEvent(e *event.Event) {
	i := e.ID
	// Mostly ascending an hour apart, every 7th from a day earlier,
	// every 97th back-filled from 2,000 hours earlier (further back than
	// a backend's time-to-id summary spans, when it has one).
	at := queryBase.Add(time.Duration(i) * time.Hour)
	if i%7 == 0 {
		at = at.Add(-24 * time.Hour)
	}
	if i%97 == 5 {
		at = at.Add(-2000 * time.Hour)
	}
	switch i % 4 {
	case 0:
		e.Timestamp = at.Format("2006-01-02T15:04:05.000000+00:00")
	case 1:
		e.Timestamp = at.In(time.FixedZone("", 2*3600)).Format("2006-01-02T15:04:05.000000-07:00")
	case 2:
		e.Timestamp = at.Format("2006-01-02T15:04:05Z")
	default:
		e.Timestamp = at.Add(123456 * time.Microsecond).Format("2006-01-02T15:04:05.999999Z07:00")
	}
	if i == 13 {
		e.Timestamp = "not a time" // in no time range
	}
	var ok string
	switch i % 3 {
	case 0:
		ok = "true"
	case 1:
		ok = `"true"`
	default:
		ok = "null"
	}
	e.Payload = fmt.Appendf(nil, `{"args":{"path":"/tmp/%d","x":[1,{"path":"no"}]},"decision_id":"DEC-%03d","n":%d,"note":"caf\u00e9 %s \"q\"","ok":%s,"score":%s}`,
		i%5, i%11, i%9, []string{"alpha", "beta", "gamma"}[i%3], ok, []string{"1", "1.5", `"1"`, "-2e3"}[i%4])
	if i%10 == 0 {
		e.Payload = []byte(`{}`)
	}
	if i%50 == 3 {
		// A NUL escape, which some JSON readers refuse (PostgreSQL's
		// jsonb): the event must still be found by every filter.
		e.Payload = fmt.Appendf(nil, `{"args":{"path":"/tmp/%d"},"decision_id":"DEC-%03d","n":%d,"nul":"a\u0000b","ok":true,"score":1.5}`, i%5, i%11, i%9)
	}
}

func testQueryFilters(t *testing.T, st store.Store, all []event.Event) {
	ctx := context.Background()
	at := func(h int) time.Time { return queryBase.Add(time.Duration(h) * time.Hour) }
	// sc scales a position in the full-size log to this one.
	sc := func(n int) int { return n * queryLogSize / 2600 }
	pm := func(path string, vals ...string) store.PayloadMatch {
		return store.PayloadMatch{Path: splitPath(path), Values: vals}
	}
	cases := []struct {
		name string
		f    store.Filter
		min  int // the case is only meaningful with at least this many matches
	}{
		{"all", store.Filter{}, 600},
		{"kind", store.Filter{Kinds: []string{"request_denied"}}, 100},
		{"kinds", store.Filter{Kinds: []string{"request_denied", "watch_created"}}, 100},
		{"source", store.Filter{Sources: []string{"svc-b"}}, 100},
		{"ids", store.Filter{After: int64(sc(100)), Until: int64(sc(2300))}, 100},
		{"since", store.Filter{TimeFrom: at(sc(1000))}, 100},
		{"until", store.Filter{TimeTo: at(sc(1000))}, 100},
		{"time range", store.Filter{TimeFrom: at(sc(500)), TimeTo: at(sc(2100))}, 100},
		{"time range with the bad timestamp", store.Filter{TimeFrom: at(sc(-1000)), TimeTo: at(sc(50))}, 10},
		{"narrow time range", store.Filter{TimeFrom: at(sc(700)), TimeTo: at(sc(703))}, 2},
		{"empty time range", store.Filter{TimeFrom: at(sc(700)), TimeTo: at(sc(700))}, 0},
		{"back-filled times", store.Filter{TimeFrom: at(-2000), TimeTo: at(-100)}, 15},
		{"back-filled times, kind and source", store.Filter{Kinds: []string{"request_allowed", "request_denied"}, Sources: []string{"svc-a", "svc-b"}, TimeFrom: at(-2000), TimeTo: at(-100)}, 2},
		{"since, with back-filled times after", store.Filter{TimeFrom: at(sc(2400))}, 100},
		{"payload string", store.Filter{Payload: []store.PayloadMatch{pm("decision_id", "DEC-007")}}, 100},
		{"payload OR", store.Filter{Payload: []store.PayloadMatch{pm("decision_id", "DEC-007", "DEC-003")}}, 200},
		{"payload nested", store.Filter{Payload: []store.PayloadMatch{pm("args.path", "/tmp/3")}}, 100},
		{"payload number", store.Filter{Payload: []store.PayloadMatch{pm("n", "4")}}, 100},
		{"payload number spelt as float", store.Filter{Payload: []store.PayloadMatch{pm("score", "1.0")}}, 100},
		{"payload number or string", store.Filter{Payload: []store.PayloadMatch{pm("score", "1")}}, 200},
		{"payload float", store.Filter{Payload: []store.PayloadMatch{pm("score", "1.5")}}, 100},
		{"payload float spelt with more digits than a double holds", store.Filter{Payload: []store.PayloadMatch{pm("score", "1.50000000000000001")}}, 100},
		{"payload exponent", store.Filter{Payload: []store.PayloadMatch{pm("score", "-2000")}}, 100},
		{"payload true or string", store.Filter{Payload: []store.PayloadMatch{pm("ok", "true")}}, 200},
		{"payload null", store.Filter{Payload: []store.PayloadMatch{pm("ok", "null")}}, 100},
		{"payload missing key", store.Filter{Payload: []store.PayloadMatch{pm("absent", "null")}}, 0},
		{"payload into a non-object", store.Filter{Payload: []store.PayloadMatch{pm("n.x", "1")}}, 0},
		{"payload path through an array", store.Filter{Payload: []store.PayloadMatch{pm("args.x.path", "no")}}, 0},
		{"payload two paths", store.Filter{Payload: []store.PayloadMatch{pm("n", "4"), pm("ok", "true")}}, 50},
		{"text", store.Filter{Text: "beta"}, 100},
		{"text escaped", store.Filter{Text: `café beta "q"`}, 100},
		{"text no match", store.Filter{Text: "zeta"}, 0},
		{"combined", store.Filter{Kinds: []string{"request_allowed"}, Sources: []string{"svc-a"}, TimeFrom: at(sc(300)), TimeTo: at(sc(2000)),
			Payload: []store.PayloadMatch{pm("ok", "true")}, Text: "alpha"}, 10},
		{"kind and payload", store.Filter{Kinds: []string{"request_denied"}, Payload: []store.PayloadMatch{pm("decision_id", "DEC-001", "DEC-002")}}, 20},
		{"kind and time", store.Filter{Kinds: []string{"watch_created"}, Sources: []string{"svc-b"}, TimeFrom: at(sc(200))}, 100},
		{"all but ids", store.Filter{After: int64(sc(900)), Until: int64(sc(1900)), Kinds: []string{"request_allowed", "request_denied"}, TimeTo: at(sc(1500)), Payload: []store.PayloadMatch{pm("args.path", "/tmp/1", "/tmp/2")}}, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var want []int64
			for i := range all {
				if tc.f.Matches(&all[i]) {
					want = append(want, all[i].ID)
				}
			}
			if need := tc.min * queryLogSize / 2600; len(want) < need {
				t.Fatalf("the case selects %d events, want at least %d: the fixture does not exercise it", len(want), need)
			}
			collect := func(f store.Filter, limit int) []int64 {
				var got []int64
				if err := st.Scan(ctx, f, limit, func(e *event.Event) error {
					got = append(got, e.ID)
					return nil
				}); err != nil {
					t.Fatalf("Scan: %v", err)
				}
				return got
			}
			if got := collect(tc.f, 0); !slices.Equal(got, want) {
				t.Fatalf("Scan: %d events %v…, want %d %v…", len(got), head(got), len(want), head(want))
			}
			desc := tc.f
			desc.Desc = true
			rev := slices.Clone(want)
			slices.Reverse(rev)
			if got := collect(desc, 0); !slices.Equal(got, rev) {
				t.Fatalf("Scan desc: %d events %v…, want %d %v…", len(got), head(got), len(rev), head(rev))
			}
			limits := []int{7}
			if tc.name == "all" || tc.name == "text" {
				limits = []int{1, 7, 2049}
			}
			for _, limit := range limits {
				n := min(limit, len(want))
				if got := collect(tc.f, limit); !slices.Equal(got, want[:n]) {
					t.Fatalf("Scan limit %d: %v…, want %v…", limit, head(got), head(want[:n]))
				}
				if got := collect(desc, limit); !slices.Equal(got, rev[:n]) {
					t.Fatalf("Scan desc limit %d: %v…, want %v…", limit, head(got), head(rev[:n]))
				}
				evs, err := st.Latest(ctx, tc.f, limit)
				if err != nil {
					t.Fatal(err)
				}
				if got := ids(evs); !slices.Equal(got, want[len(want)-n:]) {
					t.Fatalf("Latest %d: %v…, want %v…", limit, head(got), head(want[len(want)-n:]))
				}
			}
			// Whole events, not just their ids.
			if len(want) > 0 {
				got, err := st.Latest(ctx, tc.f, 1)
				if err != nil {
					t.Fatal(err)
				}
				w := all[want[len(want)-1]-1]
				if g := got[0]; g.Timestamp != w.Timestamp || string(g.Payload) != string(w.Payload) || g.Hash != w.Hash {
					t.Fatalf("Latest returned %+v, want %+v", g, w)
				}
			}
		})
	}
}

func head(ids []int64) []int64 { return ids[:min(len(ids), 8)] }

func splitPath(p string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '.' {
			out = append(out, p[start:i])
			start = i + 1
		}
	}
	return out
}

// testScanLimit: a filter checked row by row stops after MaxScan events with
// the position it reached, having delivered exactly the matches before it,
// and resuming from there finds the rest.
func testScanLimit(t *testing.T, st store.Store, all []event.Event, payloadIndexed bool) {
	ctx := context.Background()
	for _, desc := range []bool{false, true} {
		f := store.Filter{Text: "gamma", MaxScan: queryLogSize / 6, Desc: desc}
		var want []int64
		for i := range all {
			if f.Matches(&all[i]) {
				want = append(want, all[i].ID)
			}
		}
		if desc {
			slices.Reverse(want)
		}
		var got []int64
		stops := 0
		for {
			err := st.Scan(ctx, f, 0, func(e *event.Event) error {
				got = append(got, e.ID)
				return nil
			})
			var lim *store.ScanLimitError
			if err == nil {
				break
			}
			if !errors.As(err, &lim) {
				t.Fatalf("desc %v: Scan: %v", desc, err)
			}
			if lim.Examined < f.MaxScan || lim.Examined > f.MaxScan+scanSlack {
				t.Fatalf("desc %v: stopped after examining %d, cap %d", desc, lim.Examined, f.MaxScan)
			}
			if n := len(got); n > 0 && (desc && got[n-1] < lim.Last || !desc && got[n-1] > lim.Last) {
				t.Fatalf("desc %v: delivered %d beyond the reported position %d", desc, got[n-1], lim.Last)
			}
			stops++
			if desc {
				f.Until = lim.Last - 1
			} else {
				f.After = lim.Last
			}
		}
		if stops < 4 {
			t.Fatalf("desc %v: the scan stopped %d times over %d events at a cap of %d", desc, stops, len(all), f.MaxScan)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("desc %v: resumed scans found %d events, want %d", desc, len(got), len(want))
		}
	}
	// A filter the store answers from its indexes alone ignores the cap:
	// kind, source, ids, a time range, and indexed payload paths.
	indexed := []store.Filter{
		{Kinds: []string{"request_denied"}},
		{Sources: []string{"svc-a"}, After: 10},
		{TimeFrom: queryBase.Add(100 * time.Hour), TimeTo: queryBase.Add(time.Duration(queryLogSize) * time.Hour / 2)},
	}
	if payloadIndexed {
		indexed = append(indexed,
			store.Filter{Payload: []store.PayloadMatch{{Path: []string{"decision_id"}, Values: []string{"DEC-004", "DEC-005"}}}},
			store.Filter{Payload: []store.PayloadMatch{{Path: []string{"args", "path"}, Values: []string{"/tmp/2"}}}, TimeFrom: queryBase})
	}
	for _, f := range indexed {
		want := 0
		for i := range all {
			if f.Matches(&all[i]) {
				want++
			}
		}
		f.MaxScan = 10
		n := 0
		err := st.Scan(ctx, f, 0, func(*event.Event) error { n++; return nil })
		if err != nil || n != want || n < 20 {
			t.Fatalf("indexed filter %+v under a cap of 10: %d events (want %d), %v", f, n, want, err)
		}
	}
}

// scanSlack is how far past MaxScan a backend may read before it stops: it
// may finish the row it is on.
const scanSlack = 1
