package httpapi

import (
	"errors"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
)

// export streams events (after, until] as NDJSON, one wire-form event a
// line, narrowed by the filters of /events (its time range included), in
// bounded memory: the store reads in bounded chunks and the response goes
// out in 256 KiB writes as it is encoded. until is at most the
// head when the request arrives (its default), so an export is a fixed range
// even while appends continue, and a huge until cannot make it scan an
// endless run of empty ranges.
func (s *Server) export(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	// The filters of /events (kind, source, since, until, payload.<path>,
	// q). until has always been the event-id bound here: digits alone
	// keep that meaning, anything else is the end of a time range as on
	// /events.
	fq := url.Values{}
	idUntil := false
	for k, v := range q {
		switch {
		case k == "after":
		case k == "until" && len(v) == 1 && isDigits(v[0]):
			idUntil = true
		case k == "until" && len(v) == 1:
			if _, err := timeParam(q, k); err != nil {
				return qerr(http.StatusBadRequest, k, "value_error", "until must be a non-negative integer event id, or a timestamp: "+
					strings.TrimPrefix(err.Error(), "until: "))
			}
			fq[k] = v
		default:
			fq[k] = v
		}
	}
	filter, err := parseFilter(fq, s.opt.Kinds.Set())
	if err != nil {
		return err
	}
	after, _, err := eventIDParam(q, "after")
	if err != nil {
		return err
	}
	var until int64
	var set bool
	if idUntil {
		if until, set, err = eventIDParam(q, "until"); err != nil {
			return err
		}
	}
	if set && until < after {
		return problem(http.StatusBadRequest, "until "+strconv.FormatInt(until, 10)+" is before after "+strconv.FormatInt(after, 10))
	}
	release, until, err := s.heavyReadTo(r.Context(), until, set)
	if err != nil {
		return err
	}
	defer release()
	after = min(after, until)
	if until > after {
		// The range's last event, read before the 200: on a read replica
		// (--store-read) this waits until the replica holds the whole
		// range, so a lagging one is a 503 here, not an export cut short.
		if _, err := s.st.Get(r.Context(), until); err != nil {
			return err
		}
	}
	rearm := s.writeDeadline(w)
	filter.After, filter.Until = after, until
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if until == after {
		return nil
	}
	// Events are encoded straight into one buffer that goes out in large
	// writes: fewer copies and fewer system calls than a line at a time.
	const chunk = 256 << 10
	buf := make([]byte, 0, chunk+16<<10)
	// Parallel range scans: one scan is bound to one core by the driver.
	err = store.ScanParallel(r.Context(), s.st, filter, runtime.GOMAXPROCS(0), 8192, func(e *event.Event) error {
		buf = append(e.AppendJSON(buf), '\n')
		if len(buf) < chunk {
			return nil
		}
		rearm()
		_, err := w.Write(buf)
		buf = buf[:0]
		if err != nil {
			return clientGone{err}
		}
		return nil
	})
	if err == nil && len(buf) > 0 {
		rearm()
		if _, werr := w.Write(buf); werr != nil {
			err = clientGone{werr}
		}
	}
	var gone clientGone
	if errors.As(err, &gone) || r.Context().Err() != nil {
		// The client went away or stopped reading (the write
		// deadline passed): its loss, not our fault.
		s.log.Debug("export cut short by the client", "after", after, "until", until, "err", err)
		panic(http.ErrAbortHandler)
	}
	if err != nil {
		// The status is sent: cut the stream short so the client sees
		// a truncated export rather than a complete-looking one.
		s.log.Error("export failed", "after", after, "until", until, "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// clientGone is a failed write to the client.
type clientGone struct{ err error }

func (e clientGone) Error() string { return "write to client: " + e.err.Error() }
func (e clientGone) Unwrap() error { return e.err }

// isDigits reports whether v is a non-empty run of ASCII digits.
func isDigits(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return v != ""
}
