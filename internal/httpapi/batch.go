package httpapi

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/kinds"
)

// MaxBatch is the most events one POST /events/batch may carry.
const MaxBatch = 10000

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
	reqs, err := parseBatch(body, isNDJSON(r.Header.Get("Content-Type")), s.opt.Kinds)
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

// parseBatch splits and validates a batch body. Errors are 422 problems
// naming the item index; offsets in them are from the start of the body.
func parseBatch(body []byte, ndjson bool, cat *kinds.Catalog) ([]event.Request, error) {
	if cat == nil {
		cat = kinds.Builtin()
	}
	var spans []span
	var err error
	if ndjson {
		spans, err = splitLines(body, MaxBatch)
	} else {
		spans, err = splitArray(body, MaxBatch)
	}
	if err != nil {
		return nil, err
	}
	if len(spans) == 0 {
		return nil, problem(http.StatusUnprocessableEntity, "the batch is empty: send at least one event")
	}
	// Every item is checked, so that the answer lists every failure of
	// every item (up to a bound), each located by the item's index.
	reqs := make([]event.Request, len(spans))
	var details []string
	var errs []FieldError
	for i, sp := range spans {
		reqs[i], err = event.ParseRequestValue(body[sp.start:sp.end], cat.Set())
		if err == nil {
			// Schema failures are located in the payload, not by
			// offset, and join the parse failures of other items.
			if verr := cat.Check(&reqs[i]); verr != nil {
				err = verr
			} else {
				continue
			}
		}
		var verr *event.ValidationError
		if !errors.As(err, &verr) {
			return nil, err
		}
		for _, e := range verr.All() {
			if e.Offset >= 0 {
				c := *e
				c.Offset += sp.start
				if c.Field == "" {
					c.Loc = []any{c.Offset}
				}
				e = &c
			}
			if len(errs) < maxBatchProblems {
				details = append(details, "item "+strconv.Itoa(i)+": "+e.Message())
				errs = append(errs, FieldError{Loc: append([]any{"body", i}, e.Location()...), Msg: e.Message(), Type: e.ErrorType()})
			}
		}
	}
	if len(errs) > 0 {
		detail := strings.Join(details[:min(len(details), 10)], "; ")
		if len(details) > 10 {
			detail += "; and " + strconv.Itoa(len(details)-10) + " more"
		}
		p := problem(http.StatusUnprocessableEntity, detail)
		p.Errors = errs
		return nil, p
	}
	return reqs, nil
}

// maxBatchProblems bounds the failures a batch answer lists.
const maxBatchProblems = 1000

// span is one item of a batch: body[start:end].
type span struct{ start, end int }

func batchError(detail string) error {
	return problem(http.StatusUnprocessableEntity, detail)
}

func tooMany() error {
	return problem(http.StatusRequestEntityTooLarge, "a batch may carry at most "+strconv.Itoa(MaxBatch)+" events")
}

// splitArray finds the items of a top-level JSON array without decoding
// them. It only tracks strings and nesting; each item is then parsed
// strictly on its own, so together they accept exactly the valid arrays.
func splitArray(b []byte, limit int) ([]span, error) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, batchError("body: a batch must be a JSON array of events (or NDJSON with Content-Type: application/x-ndjson)")
	}
	i = skipWS(b, i+1)
	var out []span
	if i < len(b) && b[i] == ']' {
		i++
	} else {
		for {
			if i >= len(b) {
				return nil, batchError("invalid JSON: the array is not closed")
			}
			end, err := valueEnd(b, i)
			if err != nil {
				return nil, err
			}
			if len(out) == limit {
				return nil, tooMany()
			}
			out = append(out, span{i, end})
			i = skipWS(b, end)
			if i >= len(b) {
				return nil, batchError("invalid JSON: the array is not closed")
			}
			if b[i] == ']' {
				i++
				break
			}
			if b[i] != ',' {
				return nil, batchError("invalid JSON at offset " + strconv.Itoa(i) + ": expected ',' or ']' after item " + strconv.Itoa(len(out)-1))
			}
			i = skipWS(b, i+1)
		}
	}
	if i = skipWS(b, i); i != len(b) {
		return nil, batchError("invalid JSON at offset " + strconv.Itoa(i) + ": data after the array")
	}
	return out, nil
}

// valueEnd returns the end of the JSON value starting at b[i].
func valueEnd(b []byte, i int) (int, error) {
	switch b[i] {
	case ',', ']', '}', ':':
		return 0, batchError("invalid JSON at offset " + strconv.Itoa(i) + ": expected a value")
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, ok := stringEnd(b, j)
				if !ok {
					return 0, batchError("invalid JSON at offset " + strconv.Itoa(j) + ": unterminated string")
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, batchError("invalid JSON at offset " + strconv.Itoa(i) + ": unterminated value")
	case '"':
		end, ok := stringEnd(b, i)
		if !ok {
			return 0, batchError("invalid JSON at offset " + strconv.Itoa(i) + ": unterminated string")
		}
		return end, nil
	}
	j := i
	for j < len(b) && !isWS(b[j]) && b[j] != ',' && b[j] != ']' && b[j] != '}' {
		j++
	}
	return j, nil
}

// stringEnd returns the offset after the string that starts at b[i] == '"'.
func stringEnd(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return 0, false
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}

// splitLines returns the non-blank lines of an NDJSON body.
func splitLines(b []byte, limit int) ([]span, error) {
	var out []span
	for start := 0; start < len(b); {
		end := bytes.IndexByte(b[start:], '\n')
		if end < 0 {
			end = len(b)
		} else {
			end += start
		}
		if s, e := skipWS(b, start), end; s < e {
			if len(out) == limit {
				return nil, tooMany()
			}
			out = append(out, span{start, e})
		}
		start = end + 1
	}
	return out, nil
}
