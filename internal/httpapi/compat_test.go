package httpapi_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/internal/apitest"
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
	}
}

func TestCompatibilityTable(t *testing.T) {
	env := apitest.Start(t, apitest.Options{})
	for _, tc := range compatCases() {
		t.Run(tc.name, func(t *testing.T) {
			if tc.note == "" && tc.ours.status != tc.original.status {
				t.Fatalf("row says ours (%d) differs from the original (%d) without a note", tc.ours.status, tc.original.status)
			}
			r := call(t, tc.method, env.URL+tc.path, "", tc.body, tc.header...)
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
