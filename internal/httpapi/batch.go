package httpapi

import (
	"io"
	"mime"
	"net/http"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/kinds"
)

// appendBatch serves POST /events/batch: a JSON array of event requests, or
// NDJSON (one request per line) with Content-Type application/x-ndjson. It
// is all or nothing: every item is validated (and source-checked) before
// anything is queued, and the ledger commits a request's events
// consecutively in one transaction with one fsync.
func (s *Server) appendBatch(w http.ResponseWriter, r *http.Request) error {
	if p := checkBodyType(r, true); p != nil {
		return p
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	// A byte-order mark some editors and Windows tools put first is not
	// part of the JSON.
	body = event.TrimBOM(body)
	// Which items have a schema is known only once they are parsed, and
	// parsing checks them: a large batch takes a slot whenever any kind
	// has a schema.
	n := 0
	if s.opt.Kinds.Schemas() > 0 {
		n = len(body)
	}
	release, err := s.heavyCheck(n)
	if err != nil {
		return err
	}
	reqs, err := parseBatch(body, isNDJSON(r.Header.Get("Content-Type")), s.opt.Kinds)
	release()
	if err != nil {
		return err
	}
	evs, replayed, err := s.appendChecked(r, reqs, true)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(appendedStatus(w, replayed))
	return writeEventArray(w, evs)
}

func isNDJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/x-ndjson" || mt == "application/jsonl")
}

// parseBatch parses a batch body, each item then checked against the kinds
// catalog (a kind's payload schema, a retired kind).
func parseBatch(body []byte, ndjson bool, cat *kinds.Catalog) ([]event.Request, error) {
	if cat == nil {
		cat = kinds.Builtin()
	}
	return event.ParseBatch(body, ndjson, cat.Set(), cat.Check)
}
