package httpapi

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
)

// Order is the order a query walks the log in.
type order int

const (
	// orderLatest, the default: the most recent matches, served oldest
	// first (the original service's contract); paging goes back in time.
	orderLatest order = iota
	orderAsc
	orderDesc
)

// Bounds on a query's size, so that parsing and matching stay cheap whatever
// a client sends.
const (
	maxPayloadFilters = 16
	maxFilterValues   = 64
	maxValueBytes     = 1024
	maxTextBytes      = 256
	payloadParam      = "payload."
)

// eventQuery is a parsed GET /events query.
type eventQuery struct {
	f     store.Filter
	limit int
	order order
	// empty: the id cursors exclude every event (before=1, or after
	// at or past before); the answer is [] without asking the store.
	empty bool
}

// parseFilter reads the filter parameters shared by /events, /stream and
// /export: kind, source, since, until, payload.<path>, q. Malformed values
// are a 400 naming the parameter; an unknown kind a 422.
func parseFilter(q url.Values, kinds *event.KindSet) (store.Filter, error) {
	f := store.Filter{Kinds: q["kind"], Sources: q["source"]}
	for _, k := range f.Kinds {
		if !kinds.Has(k) {
			return f, qerr(http.StatusUnprocessableEntity, "kind", "value_error", "kind: "+kinds.Unknown(k))
		}
	}
	for _, src := range f.Sources {
		if src == "" {
			return f, qerr(http.StatusUnprocessableEntity, "source", "string_too_short", "source: must not be empty")
		}
	}
	var err error
	if f.TimeFrom, err = timeParam(q, "since"); err != nil {
		return f, err
	}
	if f.TimeTo, err = timeParam(q, "until"); err != nil {
		return f, err
	}
	if !f.TimeFrom.IsZero() && !f.TimeTo.IsZero() && f.TimeFrom.After(f.TimeTo) {
		return f, qerr(http.StatusBadRequest, "since", "value_error", "since "+q.Get("since")+" is after until "+q.Get("until"))
	}
	if q.Has("q") {
		v := q["q"]
		switch {
		case len(v) > 1:
			return f, qerr(http.StatusBadRequest, "q", "value_error", "q: give it once")
		case v[0] == "":
			return f, qerr(http.StatusBadRequest, "q", "string_too_short", "q: must not be empty")
		case len(v[0]) > maxTextBytes:
			return f, qerr(http.StatusBadRequest, "q", "string_too_long", "q: longer than "+strconv.Itoa(maxTextBytes)+" bytes")
		}
		f.Text = v[0]
	}
	if q.Has("payload") {
		return f, qerr(http.StatusBadRequest, "payload", "value_error", "payload: a payload filter names a path, as in payload.decision_id=DEC-001")
	}
	for name, vals := range q {
		if !strings.HasPrefix(name, payloadParam) {
			continue
		}
		path := strings.Split(name[len(payloadParam):], ".")
		if len(path) > store.MaxPathDepth {
			return f, qerr(http.StatusBadRequest, name, "value_error", name+": deeper than "+strconv.Itoa(store.MaxPathDepth)+" keys")
		}
		for _, seg := range path {
			if err := store.CheckPathSegment(seg); err != nil {
				return f, qerr(http.StatusBadRequest, name, "value_error", quoteParam(name)+": "+err.Error())
			}
		}
		if len(f.Payload) == maxPayloadFilters {
			return f, qerr(http.StatusBadRequest, name, "value_error", name+": more than "+strconv.Itoa(maxPayloadFilters)+" payload paths")
		}
		if len(vals) > maxFilterValues {
			return f, qerr(http.StatusBadRequest, name, "value_error", name+": more than "+strconv.Itoa(maxFilterValues)+" values")
		}
		for _, v := range vals {
			if len(v) > maxValueBytes {
				return f, qerr(http.StatusBadRequest, name, "string_too_long", name+": a value longer than "+strconv.Itoa(maxValueBytes)+" bytes")
			}
		}
		f.Payload = append(f.Payload, store.PayloadMatch{Path: path, Values: vals})
	}
	// Map order is random: keep the filter (and so the next link and the
	// SQL) the same for the same query.
	sortPayload(f.Payload)
	return f, nil
}

func sortPayload(ms []store.PayloadMatch) {
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && strings.Join(ms[j].Path, ".") < strings.Join(ms[j-1].Path, "."); j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
		}
	}
}

// qerr is a refused query parameter, with its location in errors.
func qerr(status int, name, typ, detail string) *Problem {
	return invalidParam(status, "query", name, typ, detail)
}

// quoteParam quotes a parameter name for an error message if it holds
// anything unusual.
func quoteParam(name string) string {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x21 || c > 0x7e || c == '"' {
			return strconv.Quote(name)
		}
	}
	return name
}

// timeParam parses a time bound: any timestamp an event may carry, a naive
// one being UTC. A '+' in a query string decodes to a space, so a space
// where an offset's sign belongs is read as '+'.
func timeParam(q url.Values, name string) (time.Time, error) {
	if !q.Has(name) {
		return time.Time{}, nil
	}
	vals := q[name]
	if len(vals) > 1 {
		return time.Time{}, qerr(http.StatusBadRequest, name, "value_error", name+": give it once")
	}
	v := vals[0]
	if n := len(v); n-6 > 10 && v[n-6] == ' ' && v[n-3] == ':' {
		v = v[:n-6] + "+" + v[n-5:]
	}
	t, err := event.ParseTimestamp(v)
	if err != nil {
		return time.Time{}, qerr(http.StatusBadRequest, name, "value_error", name+": "+strconv.Quote(vals[0])+" is "+err.Error()+" (naive times are UTC; write + in an offset as %2B)")
	}
	return t, nil
}

// parseEventQuery reads a GET /events query: the filter, limit, order and
// the after/before id cursors.
func parseEventQuery(q url.Values, kinds *event.KindSet) (eventQuery, error) {
	var eq eventQuery
	var err error
	if eq.f, err = parseFilter(q, kinds); err != nil {
		return eq, err
	}
	eq.limit = defaultQueryLimit
	if q.Has("limit") {
		v := q.Get("limit")
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxQueryLimit || len(q["limit"]) > 1 {
			return eq, qerr(http.StatusBadRequest, "limit", "int_parsing", "limit must be an integer from 1 to 100000, got "+strconv.Quote(v))
		}
		eq.limit = n
	}
	if q.Has("order") {
		switch v := q.Get("order"); {
		case len(q["order"]) > 1:
			return eq, qerr(http.StatusBadRequest, "order", "value_error", "order: give it once")
		case v == "asc":
			eq.order = orderAsc
		case v == "desc":
			eq.order = orderDesc
		default:
			return eq, qerr(http.StatusBadRequest, "order", "value_error", "order must be asc or desc, got "+strconv.Quote(v))
		}
	}
	after, _, err := eventIDParam(q, "after")
	if err != nil {
		return eq, err
	}
	before, hasBefore, err := eventIDParam(q, "before")
	if err != nil {
		return eq, err
	}
	eq.f.After = after
	if hasBefore {
		// Until is inclusive and 0 means unbounded.
		if before <= 1 || before-1 <= after {
			eq.empty = true
		}
		eq.f.Until = before - 1
	}
	return eq, nil
}

// nextLink is the RFC 8288 link to the page after the one whose walk
// ended at event last (the oldest of the page for the default order and
// desc, the newest for asc).
func (eq *eventQuery) nextLink(path string, q url.Values, last int64) string {
	next := url.Values{}
	for k, v := range q {
		if k != "after" && k != "before" && k != "access_token" {
			next[k] = v
		}
	}
	switch eq.order {
	case orderAsc:
		next.Set("after", strconv.FormatInt(last, 10))
		if eq.f.Until > 0 {
			next.Set("before", strconv.FormatInt(eq.f.Until+1, 10))
		}
	default:
		next.Set("before", strconv.FormatInt(last, 10))
	}
	if eq.order != orderAsc && eq.f.After > 0 {
		next.Set("after", strconv.FormatInt(eq.f.After, 10))
	}
	return "<" + path + "?" + next.Encode() + `>; rel="next"`
}

// eventIDParam reads the optional event-id parameter name (a cursor or a
// range bound): set is false when it is absent; a value that is not one
// non-negative decimal id, or a repeated one, is a 400 naming it.
func eventIDParam(q url.Values, name string) (id int64, set bool, err error) {
	if !q.Has(name) {
		return 0, false, nil
	}
	v := q.Get(name)
	n, ok := parseEventID(v)
	if !ok || len(q[name]) > 1 {
		return 0, false, qerr(http.StatusBadRequest, name, "int_parsing", name+" must be a non-negative integer event id, got "+strconv.Quote(truncate(v)))
	}
	return n, true, nil
}
