package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/ledger"
)

// The compatibility table: requests the original Python service's producers
// and clients make, each with the original's answer and ours.
//
// The original is not available to run here, so its answers are data,
// reasoned from what it was: a FastAPI application whose append body was the
// pydantic model
//
//	class EventIn(BaseModel):
//	    kind: <one of the kinds>
//	    source: str
//	    payload: dict = {}
//	    timestamp: Optional[str] = None   # stored as sent, else server time
//
// with the event id a path parameter `event_id: int` (an id it does not
// hold is a 404), Starlette's router (redirect_slashes: a path with a
// trailing slash that matches a route without it is a 307 to that path,
// query string kept), and FastAPI's validation answers (422 with
// {"detail": [{"loc": [...], "msg": ..., "type": ...}, ...]}).
//
// Where we answer differently on purpose, note says why; otherwise the
// status must be the original's.
//
// Items of the table that are not one request to a default server live
// beside it: item 3 (--timestamp-precision=seconds) in
// TestTimestampPrecisionSeconds below, item 2's full grammar in
// event.TestTimestampsAgreeWithPython (thousands of strings with
// fromisoformat's verdict), and item 11 (the verify CLI: the original had
// none, so the reference is "never valid:false for bad input") in
// cmd/audit-stream's TestVerifyTellsInputErrorsFromTampering.

// compatAnswer is one side of a row: a status and the shape of the body.
type compatAnswer struct {
	status int
	shape  string // what the body is, in words
}

type compatCase struct {
	item         int // item of the drop-in issue the row belongs to
	name         string
	method, path string
	body         string
	header       []string // name, value pairs
	original     compatAnswer
	ours         compatAnswer
	note         string           // why ours differs from the original, if it does
	check        func(resp) error // checks our body beyond its status
}

// Answers that recur.
var (
	created    = compatAnswer{201, "the stored event"}
	pydantic   = compatAnswer{422, `{"detail": [{"loc", "msg", "type"}, ...]}`}
	ourProblem = compatAnswer{422, `problem+json: "detail" a string, "errors": [{"loc", "msg", "type"}, ...]`}
)

var microsUTC = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$`)

func serverStamped(r resp) error {
	var e stored
	if err := json.Unmarshal(r.body, &e); err != nil {
		return err
	}
	if !microsUTC.MatchString(e.Timestamp) {
		return fmt.Errorf("timestamp %q is not server time", e.Timestamp)
	}
	return nil
}

func keptVerbatim(ts string) func(resp) error {
	return func(r resp) error {
		var e stored
		if err := json.Unmarshal(r.body, &e); err != nil {
			return err
		}
		if e.Timestamp != ts {
			return fmt.Errorf("timestamp %q, sent %q", e.Timestamp, ts)
		}
		return nil
	}
}

func detailHas(s string) func(resp) error {
	return func(r resp) error {
		if !strings.Contains(r.detail(), s) {
			return fmt.Errorf("detail %q does not mention %q", r.detail(), s)
		}
		return nil
	}
}

func compatCases() []compatCase {
	ev := func(extra string) string { return `{"kind":"other","source":"billing"` + extra + `}` }
	return []compatCase{
		// 1. A timestamp of null or "" is server time. The original's own
		// client model sends "timestamp": null when the producer leaves it
		// out; its handler stamped `req.timestamp or now()`.
		{item: 1, name: "timestamp null", method: "POST", path: "/events", body: ev(`,"timestamp":null`),
			original: created, ours: created, check: serverStamped},
		{item: 1, name: "timestamp empty", method: "POST", path: "/events", body: ev(`,"timestamp":""`),
			original: created, ours: created, check: serverStamped},
		{item: 1, name: "timestamp absent", method: "POST", path: "/events", body: ev(``),
			original: created, ours: created, check: serverStamped},

		// 2. Timestamps as Python producers send them, kept verbatim.
		{item: 2, name: "naive utcnow().isoformat()", method: "POST", path: "/events", body: ev(`,"timestamp":"2026-05-15T03:14:15.123456"`),
			original: created, ours: created, check: keptVerbatim("2026-05-15T03:14:15.123456")},
		{item: 2, name: "space separator", method: "POST", path: "/events", body: ev(`,"timestamp":"2026-05-15 03:14:15"`),
			original: created, ours: created, check: keptVerbatim("2026-05-15 03:14:15")},
		{item: 2, name: "+0000 offset", method: "POST", path: "/events", body: ev(`,"timestamp":"2026-05-15T03:14:15+0000"`),
			original: created, ours: created, check: keptVerbatim("2026-05-15T03:14:15+0000")},
		{item: 2, name: "Z with 3 fraction digits", method: "POST", path: "/events", body: ev(`,"timestamp":"2026-05-15T03:14:15.123Z"`),
			original: created, ours: created, check: keptVerbatim("2026-05-15T03:14:15.123Z")},
		{item: 2, name: "1 fraction digit", method: "POST", path: "/events", body: ev(`,"timestamp":"2026-05-15T03:14:15.5+02:00"`),
			original: created, ours: created, check: keptVerbatim("2026-05-15T03:14:15.5+02:00")},
		{item: 2, name: "free text", method: "POST", path: "/events", body: ev(`,"timestamp":"yesterday"`),
			original: created, ours: ourProblem, check: detailHas("2026-05-15T03:14:15.123456+00:00"),
			note: "the original stored any string; a timestamp fromisoformat cannot read breaks every consumer that parses it, so we refuse it and show an accepted form"},
		{item: 2, name: "timestamp a number", method: "POST", path: "/events", body: ev(`,"timestamp":1747278855`),
			original: pydantic, ours: ourProblem, check: detailHas("timestamp")},

		// 4. A UTF-8 byte-order mark before the JSON is ignored. The
		// original's json.loads(bytes) detects it (utf-8-sig) and skips it.
		{item: 4, name: "BOM before an event", method: "POST", path: "/events", body: "\ufeff" + ev(``),
			original: created, ours: created, check: serverStamped},
		{item: 4, name: "BOM before a batch", method: "POST", path: "/events/batch", body: "\ufeff[" + ev(``) + "]",
			original: noRoute, ours: created, note: "the original had no batch endpoint"},
		{item: 4, name: "BOM before an NDJSON batch", method: "POST", path: "/events/batch", body: "\ufeff" + ev(``) + "\n" + ev(``) + "\n",
			header: []string{"Content-Type", "application/x-ndjson"}, original: noRoute, ours: created, note: "the original had no batch endpoint"},

		// 5. Every failure listed, located and typed as pydantic does.
		{item: 5, name: "two bad fields", method: "POST", path: "/events", body: `{"kind":"made_up","source":1}`,
			original: pydantic, ours: ourProblem, check: hasErrors(`["body","kind"] value_error`, `["body","source"] string_type`)},
		{item: 5, name: "empty object", method: "POST", path: "/events", body: `{}`,
			original: pydantic, ours: ourProblem, check: hasErrors(`["body","kind"] missing`, `["body","source"] missing`)},
		{item: 5, name: "invalid JSON", method: "POST", path: "/events", body: `{"kind":`,
			original: pydantic, ours: ourProblem, check: hasErrors(`["body",8] json_invalid`)},
		{item: 5, name: "payload not an object", method: "POST", path: "/events", body: ev(`,"payload":[1]`),
			original: pydantic, ours: ourProblem, check: hasErrors(`["body","payload"] dict_type`)},
		{item: 5, name: "batch not an array", method: "POST", path: "/events/batch", body: `{"kind":"other"}`,
			original: noRoute, ours: ourProblem, check: hasErrors(`["body"] value_error`), note: "the original had no batch endpoint"},
		{item: 5, name: "batch items located by index", method: "POST", path: "/events/batch", body: "[" + ev(``) + `,{"kind":"other"},{"kind":"nope","source":"s"}]`,
			original: noRoute, ours: ourProblem, check: hasErrors(`["body",1,"source"] missing`, `["body",2,"kind"] value_error`),
			note: "the original had no batch endpoint"},

		// 6. Ids and paths as the original answered them.
		{item: 6, name: "id 0", method: "GET", path: "/events/0", original: notFound, ours: notFound},
		{item: 6, name: "negative id", method: "GET", path: "/events/-1", original: notFound, ours: notFound},
		{item: 6, name: "id beyond int64", method: "GET", path: "/events/99999999999999999999", original: notFound, ours: notFound},
		{item: 6, name: "unknown id", method: "GET", path: "/events/424242", original: notFound, ours: notFound},
		{item: 6, name: "non-integer id", method: "GET", path: "/events/abc", original: pydantic, ours: ourProblem,
			check: hasErrors(`["path","event_id"] int_parsing`)},
		{item: 6, name: "trailing slash on /events", method: "GET", path: "/events/", original: redirect, ours: redirect, check: location("/events")},
		{item: 6, name: "trailing slash on /stats", method: "GET", path: "/stats/", original: redirect, ours: redirect, check: location("/stats")},
		{item: 6, name: "trailing slash keeps the query", method: "GET", path: "/events/?kind=other&limit=5", original: redirect, ours: redirect,
			check: location("/events?kind=other&limit=5")},
		{item: 6, name: "trailing slash on a POST", method: "POST", path: "/events/", body: ev(``), original: redirect, ours: redirect, check: location("/events")},
		{item: 6, name: "trailing slash on an unknown path", method: "GET", path: "/nope/", original: notFound, ours: notFound},

		// 7. Unknown query parameters are refused, naming the parameter.
		{item: 7, name: "misspelt filter", method: "GET", path: "/events?knd=other", original: ok200, ours: badParam,
			check: detailHas(`"knd"`), note: "the original ignored it and returned every kind; a typo must not look like an unfiltered answer"},
		{item: 7, name: "export takes no order", method: "GET", path: "/export?order=asc", original: noRoute, ours: badParam,
			check: detailHas(`"order"`), note: "the original had no export; ours refuses a parameter it would not apply"},
		{item: 7, name: "cache-buster accepted", method: "GET", path: "/events?kind=other&_=1747278855", original: ok200, ours: ok200},
		{item: 7, name: "cache-buster on stats", method: "GET", path: "/stats?_=1", original: ok200, ours: ok200},
		{item: 7, name: "cache-buster and access_token on the stream", method: "GET", path: "/stream?after=0&_=1&access_token=x", original: noRoute, ours: ok200,
			note: "the original had no stream"},

		// 8. Kinds are discoverable, and a misspelt one is named.
		{item: 8, name: "GET /kinds", method: "GET", path: "/kinds", original: noRoute, ours: ok200, check: listsKinds,
			note: "the original listed its kinds only in its source"},
		{item: 8, name: "misspelt kind", method: "POST", path: "/events", body: `{"kind":"request_denid","source":"s"}`,
			original: pydantic, ours: ourProblem, check: detailHas(`did you mean "request_denied"?`)},
		{item: 8, name: "misspelt kind in a filter", method: "GET", path: "/events?kind=requst_denied", original: ok200, ours: ourProblem,
			check: detailHas(`"request_denied"`), note: "the original answered an empty list; a typo must not look like no such events"},
	}
}

// More answers that recur.
var (
	ok200    = compatAnswer{200, "the answer"}
	notFound = compatAnswer{404, `{"detail": "..."}`}
	redirect = compatAnswer{307, "Location: the path without the trailing slash, query kept"}
	noRoute  = compatAnswer{404, "no such route in the original"}
	badParam = compatAnswer{400, `problem+json naming the parameter, "errors": [{"loc": ["query", name], ...}]`}
)

func hasErrors(want ...string) func(resp) error {
	return func(r resp) error {
		var p struct {
			Detail any `json:"detail"`
			Errors []struct {
				Loc  []any  `json:"loc"`
				Msg  string `json:"msg"`
				Type string `json:"type"`
			} `json:"errors"`
		}
		if err := json.Unmarshal(r.body, &p); err != nil {
			return err
		}
		if _, ok := p.Detail.(string); !ok {
			return fmt.Errorf("detail is not a string")
		}
		var got []string
		for _, e := range p.Errors {
			if e.Msg == "" {
				return fmt.Errorf("error %v has no msg", e)
			}
			loc, _ := json.Marshal(e.Loc)
			got = append(got, string(loc)+" "+e.Type)
		}
		for _, w := range want {
			if !slices.Contains(got, w) {
				return fmt.Errorf("errors %q lack %q", got, w)
			}
		}
		return nil
	}
}

func location(want string) func(resp) error {
	return func(r resp) error {
		if got := r.header.Get("Location"); got != want {
			return fmt.Errorf("Location %q, want %q", got, want)
		}
		return nil
	}
}

func listsKinds(r resp) error {
	var k struct {
		Kinds []struct{ Name, Description string }
	}
	if err := json.Unmarshal(r.body, &k); err != nil {
		return err
	}
	if len(k.Kinds) != len(event.DefaultKindSet.Kinds()) {
		return fmt.Errorf("%d kinds, want %d", len(k.Kinds), len(event.DefaultKindSet.Kinds()))
	}
	for i, kind := range k.Kinds {
		if kind.Name != event.DefaultKindSet.Kinds()[i].Name || kind.Description == "" {
			return fmt.Errorf("kind %d = %+v", i, kind)
		}
	}
	return nil
}

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
	return http.ErrUseLastResponse
}}

func TestCompatibilityTable(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	for _, tc := range compatCases() {
		t.Run(tc.name, func(t *testing.T) {
			if tc.note == "" && tc.ours.status != tc.original.status {
				t.Fatalf("row says ours (%d) differs from the original (%d) without a note", tc.ours.status, tc.original.status)
			}
			r := compatCall(t, tc.method, env.URL+tc.path, tc.body, tc.header...)
			if r.status != tc.ours.status {
				t.Fatalf("item %d: %s %s: status %d, want %d (original: %d %s): %s",
					tc.item, tc.method, tc.path, r.status, tc.ours.status, tc.original.status, tc.original.shape, r.body)
			}
			if tc.check != nil {
				if err := tc.check(r); err != nil {
					t.Fatalf("item %d: %s %s: %v; body %s", tc.item, tc.method, tc.path, err, r.body)
				}
			}
		})
	}
}

func compatCall(t *testing.T, method, url, body string, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b []byte
	if res.Header.Get("Content-Type") != "text/event-stream" {
		b, _ = io.ReadAll(res.Body)
	}
	return resp{res.StatusCode, res.Header, b}
}

// GET /kinds is open to anyone, so many anonymous clients at once must not
// disturb producers, and hostile query strings and paths get short answers.
func TestKindsAndQueryChecksUnderHostileClients(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for c := 0; c < 32; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if r := compatCall(t, "GET", env.URL+"/kinds", ""); r.status != 200 || listsKinds(r) != nil {
					errs <- fmt.Errorf("GET /kinds: %d %s", r.status, r.body)
					return
				}
			}
		}()
	}
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				if r := compatCall(t, "POST", env.URL+"/events", ev); r.status != 201 {
					errs <- fmt.Errorf("append: %d %s", r.status, r.body)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := count(t, env.Store); n != 40 {
		t.Fatalf("%d events, want 40", n)
	}

	// Thousands of unknown parameters, one of them huge: a 400 about one,
	// its name cut short.
	var q strings.Builder
	q.WriteString("x" + strings.Repeat("y", 20000) + "=1")
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&q, "&p%d=%d", i, i)
	}
	r := compatCall(t, "GET", env.URL+"/events?"+q.String(), "")
	if r.status != 400 || len(r.body) > 2000 || !strings.Contains(r.detail(), "unknown query parameter") {
		t.Fatalf("hostile query: %d, %d bytes: %.300s", r.status, len(r.body), r.body)
	}
	// A malformed query string is a 400, not a silently dropped filter.
	if r := compatCall(t, "GET", env.URL+"/events?kind=%zz", ""); r.status != 400 || !strings.Contains(r.detail(), "malformed query") {
		t.Fatalf("malformed query: %d %s", r.status, r.body)
	}
	// A long run of trailing slashes is cleaned (net/http's redirect to
	// /stats/), then redirected to the route.
	if r := apitestGet(t, env.URL+"/stats"+strings.Repeat("/", 5000)); r.status != 200 {
		t.Fatalf("slashes: %d %s", r.status, r.body)
	}
	// A huge integer id is a 404 with a short detail.
	if r := compatCall(t, "GET", env.URL+"/events/"+strings.Repeat("9", 10000), ""); r.status != 404 || len(r.body) > 500 {
		t.Fatalf("huge id: %d, %d bytes", r.status, len(r.body))
	}
}

// apitestGet follows redirects, as browsers and most clients do.
func apitestGet(t *testing.T, url string) resp {
	return call(t, "GET", url, "", "")
}

// 3. --timestamp-precision=seconds stamps as the original did.
func TestTimestampPrecisionSeconds(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{Ledger: ledger.Options{Precision: event.Seconds}})
	r := call(t, "POST", env.URL+"/events", "", ev)
	var e stored
	mustJSON(t, r.body, &e)
	if r.status != 201 || !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$`).MatchString(e.Timestamp) {
		t.Fatalf("%d, timestamp %q, want the original's 2026-05-15T03:14:15+00:00 form", r.status, e.Timestamp)
	}
	if h, _ := (&event.Event{ID: e.EventID, Timestamp: e.Timestamp, Kind: e.Kind, Source: e.Source, Payload: e.Payload}).ComputeHash(nil); h.String() != e.Hash {
		t.Fatal("the event does not re-hash")
	}
	// A producer's own timestamp is kept as sent, whatever the precision.
	r = call(t, "POST", env.URL+"/events", "", `{"kind":"other","source":"s","timestamp":"2026-05-15T03:14:15.123456"}`)
	mustJSON(t, r.body, &e)
	if e.Timestamp != "2026-05-15T03:14:15.123456" {
		t.Fatalf("timestamp %q", e.Timestamp)
	}
}
