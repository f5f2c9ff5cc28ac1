package httpapi

import (
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
)

// FuzzParseEventQuery: any query string either parses into a filter within
// the documented bounds or is refused with a 400/422 problem naming a
// parameter; and the next link of an accepted query parses back to the same
// filter, so that paging never changes what is asked.
func FuzzParseEventQuery(f *testing.F) {
	for _, s := range []string{
		"", "kind=request_denied&source=a&limit=10",
		"since=2026-05-15T03:14:15Z&until=2026-05-16&order=asc&after=5",
		"payload.decision_id=DEC-001&payload.decision_id=2&payload.args.path=%2Ftmp&q=x",
		"before=1", "order=desc&before=100&after=7", "payload.a..b=1", "since=2026-05-15T03:14:15+02:00",
		"limit=100000&payload.n=-1.5e3&payload.ok=true&payload.z=null",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		eq, err := parseEventQuery(q, event.DefaultKindSet)
		if err != nil {
			var p *Problem
			if !errors.As(err, &p) || p.Status != http.StatusBadRequest && p.Status != http.StatusUnprocessableEntity || p.Detail == "" {
				t.Fatalf("%q: refused with %v", raw, err)
			}
			return
		}
		if eq.limit < 1 || eq.limit > maxQueryLimit || len(eq.f.Payload) > maxPayloadFilters || len(eq.f.Text) > maxTextBytes {
			t.Fatalf("%q: out of bounds: %+v", raw, eq)
		}
		for _, m := range eq.f.Payload {
			for _, seg := range m.Path {
				if store.CheckPathSegment(seg) != nil {
					t.Fatalf("%q: accepted path %v", raw, m.Path)
				}
			}
		}
		if !eq.f.TimeFrom.IsZero() && !eq.f.TimeTo.IsZero() && eq.f.TimeFrom.After(eq.f.TimeTo) {
			t.Fatalf("%q: since after until accepted", raw)
		}
		// The next link after a page ending at event 42 asks the same.
		link := eq.nextLink("/events", q, 42)
		u, err := url.Parse(strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`))
		if err != nil {
			t.Fatalf("%q: next link %q: %v", raw, link, err)
		}
		next, err := parseEventQuery(u.Query(), event.DefaultKindSet)
		if err != nil {
			t.Fatalf("%q: next link %q refused: %v", raw, link, err)
		}
		a, b := eq.f, next.f
		a.After, a.Until, b.After, b.Until = 0, 0, 0, 0
		if !reflect.DeepEqual(a, b) || next.limit != eq.limit || next.order != eq.order {
			t.Fatalf("%q: next link %q asks something else:\n%+v\n%+v", raw, link, eq, next)
		}
	})
}
