package httpapi

import (
	"net/http"
	"runtime"
	"strconv"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
)

// export streams events (after, until] as NDJSON, one wire-form event a
// line, in bounded memory: the store reads in bounded chunks and the
// response goes out in 256 KiB writes as it is encoded. until defaults to the head when the request arrives,
// so an export is a fixed range even while appends continue.
func (s *Server) export(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	num := func(name string) (int64, bool, error) {
		if !q.Has(name) {
			return 0, false, nil
		}
		v := q.Get(name)
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, false, problem(http.StatusBadRequest, name+" must be a non-negative integer event id, got "+strconv.Quote(v))
		}
		return n, true, nil
	}
	after, _, err := num("after")
	if err != nil {
		return err
	}
	until, set, err := num("until")
	if err != nil {
		return err
	}
	if !set {
		head, err := s.st.Head(r.Context())
		if err != nil {
			return err
		}
		until = head.ID
	}
	if until < after {
		return problem(http.StatusBadRequest, "until "+strconv.FormatInt(until, 10)+" is before after "+strconv.FormatInt(after, 10))
	}
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
	err = store.ScanParallel(r.Context(), s.st, store.Filter{After: after, Until: until}, runtime.GOMAXPROCS(0), 8192, func(e *event.Event) error {
		buf = append(e.AppendJSON(buf), '\n')
		if len(buf) < chunk {
			return nil
		}
		_, err := w.Write(buf)
		buf = buf[:0]
		return err
	})
	if err == nil && len(buf) > 0 {
		_, err = w.Write(buf)
	}
	if err != nil {
		// The status is sent: cut the stream short so the client sees
		// a truncated export rather than a complete-looking one.
		s.log.Error("export failed", "after", after, "until", until, "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}
