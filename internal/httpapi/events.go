package httpapi

import (
	"io"
	"net/http"
	"slices"
	"strconv"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
)

const (
	defaultQueryLimit = 1000
	maxQueryLimit     = 100000
)

// readBody reads the whole body, at most BodyLimit bytes.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, s.opt.BodyLimit))
}

func (s *Server) appendEvent(w http.ResponseWriter, r *http.Request) error {
	if p := checkBodyType(r, false); p != nil {
		return p
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	// A byte-order mark some editors and Windows tools put first is not
	// part of the JSON.
	req, err := event.ParseRequest(event.TrimBOM(body), s.opt.Kinds)
	if err != nil {
		return err
	}
	// Source binding and Idempotency-Key: see idempotency.go.
	evs, replayed, err := s.appendChecked(r, []event.Request{req}, false)
	if err != nil {
		return err
	}
	return writeEvent(w, appendedStatus(w, replayed), &evs[0])
}

var errDraining = func() *Problem {
	p := problem(http.StatusServiceUnavailable, "the server is shutting down; retry against another instance or after restart")
	p.retryAfter = 1
	return p
}()

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
	if err == store.ErrNotFound {
		return problem(http.StatusNotFound, "no event with id "+strconv.FormatInt(id, 10))
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	_, err = w.Write(append(e.AppendJSON(make([]byte, 0, 512)), '\n'))
	return err
}

// filterFromQuery reads the repeatable kind and source parameters. An unknown
// kind is a 422: a typo must not look like "no such events".
func (s *Server) filterFromQuery(r *http.Request) (store.Filter, error) {
	q := r.URL.Query()
	f := store.Filter{Kinds: q["kind"], Sources: q["source"]}
	for _, k := range f.Kinds {
		if !s.opt.Kinds.Has(k) {
			return f, invalidParam(http.StatusUnprocessableEntity, "query", "kind", "value_error", "kind: "+s.opt.Kinds.Unknown(k))
		}
	}
	for _, src := range f.Sources {
		if src == "" {
			return f, invalidParam(http.StatusUnprocessableEntity, "query", "source", "string_too_short", "source: must not be empty")
		}
	}
	return f, nil
}

func (s *Server) queryEvents(w http.ResponseWriter, r *http.Request) error {
	f, err := s.filterFromQuery(r)
	if err != nil {
		return err
	}
	limit := defaultQueryLimit
	if v := r.URL.Query().Get("limit"); v != "" || r.URL.Query().Has("limit") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxQueryLimit {
			return problem(http.StatusBadRequest, "limit must be an integer from 1 to 100000, got "+strconv.Quote(v))
		}
		limit = n
	}
	evs, err := s.st.Latest(r.Context(), f, limit)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(appendEventArray(nil, evs))
	return err
}

// appendEventArray appends evs as a JSON array in wire form, one line.
func appendEventArray(dst []byte, evs []event.Event) []byte {
	dst = slices.Grow(dst, 320*len(evs)+2)
	dst = append(dst, '[')
	for i := range evs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = evs[i].AppendJSON(dst)
	}
	return append(dst, "]\n"...)
}

// kinds serves GET /kinds: every accepted kind with its one-line
// description, in the order of the kind set. It is open, like GET /: a
// producer needs it and holds no reader role.
func (s *Server) kinds(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]any{"kinds": s.opt.Kinds.Kinds()})
}
