package httpapi

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
)

const (
	defaultQueryLimit = 1000
	maxQueryLimit     = 100000
)

func (s *Server) appendEvent(w http.ResponseWriter, r *http.Request) error {
	if p := checkBodyType(r, false); p != nil {
		return p
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	// A byte-order mark some editors and Windows tools put first is not
	// part of the JSON.
	req, err := event.ParseRequest(event.TrimBOM(body), s.opt.Kinds.Set())
	if err != nil {
		return err
	}
	// The kind's payload schema, and whether it is retired.
	if s.opt.Kinds.HasSchema(req.Kind) {
		release, err := s.heavyCheck(len(req.Payload))
		if err != nil {
			return err
		}
		verr := s.opt.Kinds.Check(&req)
		release()
		if verr != nil {
			return verr
		}
	} else if verr := s.opt.Kinds.Check(&req); verr != nil {
		return verr
	}
	// Source binding and Idempotency-Key: see idempotency.go.
	evs, replayed, err := s.appendChecked(r, []event.Request{req}, false)
	if err != nil {
		return err
	}
	return writeEvent(w, appendedStatus(w, replayed), &evs[0])
}

func writeEvent(w http.ResponseWriter, status int, e *event.Event) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/events/"+strconv.FormatInt(e.ID, 10))
	w.WriteHeader(status)
	_, err := w.Write(append(e.AppendJSON(make([]byte, 0, 512)), '\n'))
	return err
}

func (s *Server) getEvent(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	e, err := s.st.Get(r.Context(), id)
	if err != nil {
		return missing(err, "no event with id "+strconv.FormatInt(id, 10))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	_, err = w.Write(append(e.AppendJSON(make([]byte, 0, 512)), '\n'))
	return err
}

// filterFromQuery reads the filter parameters /stream shares with /events.
func (s *Server) filterFromQuery(r *http.Request) (store.Filter, error) {
	return parseFilter(r.URL.Query(), s.opt.Kinds.Set())
}

func (s *Server) queryEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	eq, err := parseEventQuery(q, s.opt.Kinds.Set())
	if err != nil {
		return err
	}
	if !eq.empty && (eq.f.Text != "" || len(eq.f.Payload) > 0) {
		// Filters that may be checked row by row (up to the scan
		// limit) are reads as heavy as an export while they run.
		release, err := s.heavyRead()
		if err != nil {
			return err
		}
		defer release()
	}
	pg := pages.Get().(*page)
	defer pg.release()
	if !eq.empty {
		f := eq.f
		f.Desc = eq.order != orderAsc
		f.MaxScan = s.opt.QueryScanLimit
		// One more than the page: whether it exists decides the next link.
		err = s.st.Scan(r.Context(), f, eq.limit+1, pg.add)
		var lim *store.ScanLimitError
		if errors.As(err, &lim) {
			return scanLimitProblem(&eq, lim)
		}
		if err != nil {
			return err
		}
	}
	more := len(pg.ids) > eq.limit
	if more {
		pg.ids, pg.ends = pg.ids[:eq.limit], pg.ends[:eq.limit]
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if more {
		h.Set("Link", eq.nextLink(r.URL.Path, q, pg.ids[len(pg.ids)-1]))
	}
	w.WriteHeader(http.StatusOK)
	// The default order walked back in time; its page is served oldest
	// first.
	return pg.write(w, eq.order == orderLatest)
}

// page is one GET /events page as the store delivers it: each event is
// encoded in wire form as it is scanned, so the page is never held as
// events, only as the bytes it is served as. Pages are reused: their
// buffers would otherwise be most of what a query allocates.
type page struct {
	json []byte  // the events' JSON, back to back
	ends []int   // where each event's JSON ends in json
	ids  []int64 // each event's id
	out  []byte  // the chunk being written
}

// A new page starts with room for a typical page of 1,000 events: growing
// from nothing would allocate about twice that on the way.
var pages = sync.Pool{New: func() any { return &page{json: make([]byte, 0, 512<<10)} }}

// maxPooledPage bounds the page buffers kept for reuse: a rare page of
// 100,000 events should not stay allocated.
const maxPooledPage = 4 << 20

func (pg *page) add(e *event.Event) error {
	pg.json = e.AppendJSON(pg.json)
	pg.ends = append(pg.ends, len(pg.json))
	pg.ids = append(pg.ids, e.ID)
	return nil
}

func (pg *page) release() {
	if cap(pg.json) > maxPooledPage {
		return
	}
	pg.json, pg.ends, pg.ids, pg.out = pg.json[:0], pg.ends[:0], pg.ids[:0], pg.out[:0]
	pages.Put(pg)
}

// write writes the page as a JSON array on one line, in 64 KiB chunks,
// last event first if reverse.
func (pg *page) write(w io.Writer, reverse bool) error {
	const chunk = 64 << 10
	if cap(pg.out) < chunk+4<<10 {
		pg.out = make([]byte, 0, chunk+4<<10)
	}
	out := append(pg.out[:0], '[')
	n := len(pg.ends)
	for i := range n {
		k := i
		if reverse {
			k = n - 1 - i
		}
		start := 0
		if k > 0 {
			start = pg.ends[k-1]
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, pg.json[start:pg.ends[k]]...)
		if len(out) >= chunk {
			if _, err := w.Write(out); err != nil {
				return err
			}
			out = out[:0]
		}
	}
	out = append(out, "]\n"...)
	_, err := w.Write(out)
	pg.out = out
	return err
}

// scanLimitProblem explains a query stopped by the scan cap, and how to go on.
func scanLimitProblem(eq *eventQuery, lim *store.ScanLimitError) *Problem {
	var what []string
	if eq.f.Text != "" {
		what = append(what, "q")
	}
	for _, m := range eq.f.Payload {
		what = append(what, payloadParam+strings.Join(m.Path, "."))
	}
	resume := "before=" + strconv.FormatInt(lim.Last, 10)
	if eq.order == orderAsc {
		resume = "after=" + strconv.FormatInt(lim.Last, 10)
	}
	return problem(http.StatusUnprocessableEntity, strings.Join(what, ", ")+": checked event by event, this query examined "+
		strconv.Itoa(lim.Examined)+" events (the scan limit) without filling the page; narrow it with kind, source, since/until or after/before, "+
		"index the payload key (--index-payload), or continue from "+resume)
}

// writeEventArray writes evs as a JSON array in wire form, one line, in
// chunks as it encodes them rather than building the whole body first.
func writeEventArray(w io.Writer, evs []event.Event) error {
	const chunk = 64 << 10
	buf := make([]byte, 0, chunk+4<<10)
	buf = append(buf, '[')
	for i := range evs {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = evs[i].AppendJSON(buf)
		if len(buf) >= chunk {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	buf = append(buf, "]\n"...)
	_, err := w.Write(buf)
	return err
}

// listKinds serves GET /kinds: every accepted kind with its one-line
// description, and its payload schema and retirement when the kinds file
// gives them, built-in kinds first. It is open, like GET /: a producer
// needs it and holds no reader role.
func (s *Server) listKinds(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]any{"kinds": s.opt.Kinds.Kinds()})
}
