package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store"
)

// Problem is an RFC 9457 problem document. Clients of the original service
// read detail, so every problem carries one.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	// Errors lists every failure of a request that does not validate, in
	// the shape of the original's (FastAPI's) 422 detail items, so its
	// clients can point at the offending field.
	Errors []FieldError `json:"errors,omitempty"`

	retryAfter int // seconds; sets Retry-After when > 0
}

// FieldError is one validation failure: where ("body", "query" or "path",
// then member names and array indexes, or a byte offset for a JSON syntax
// error), what is wrong, and its pydantic type name.
type FieldError struct {
	Loc  []any  `json:"loc"`
	Msg  string `json:"msg"`
	Type string `json:"type"`
}

// invalidParam is a 4xx about one query or path parameter, with its errors
// member.
func invalidParam(status int, in, name, typ, detail string) *Problem {
	p := problem(status, detail)
	p.Errors = []FieldError{{Loc: []any{in, name}, Msg: detail, Type: typ}}
	return p
}

// bodyErrors lists the failures of a body; prefix goes between "body" and
// each failure's own location (a batch item's index).
func bodyErrors(dst []FieldError, verr *event.ValidationError, prefix ...any) []FieldError {
	for _, e := range verr.All() {
		loc := append(append([]any{"body"}, prefix...), e.Location()...)
		dst = append(dst, FieldError{Loc: loc, Msg: e.Message(), Type: e.ErrorType()})
	}
	return dst
}

func (p *Problem) Error() string { return p.Detail }

// problem is the error a handler returns to answer with a given status.
func problem(status int, detail string) *Problem {
	return &Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail}
}

// missingError names what a lookup did not find, for the 404 its
// store.ErrNotFound becomes; any other error passes through it.
type missingError struct {
	what string
	err  error
}

func (e *missingError) Error() string { return e.what + ": " + e.err.Error() }
func (e *missingError) Unwrap() error { return e.err }

// missing wraps a lookup's error so that a store.ErrNotFound is answered
// with detail, which says what is missing ("no event with id 7").
func missing(err error, detail string) error {
	return &missingError{what: detail, err: err}
}

// toProblem is the one place that maps errors to HTTP answers.
func toProblem(err error) *Problem {
	var p *Problem
	var maxBytes *http.MaxBytesError
	var verr *event.ValidationError
	var body *bodyError
	var miss *missingError
	var batch *event.BatchError
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(err, &miss) && errors.Is(err, store.ErrNotFound):
		return problem(http.StatusNotFound, miss.what)
	case errors.As(err, &body):
		return body.problem()
	case errors.As(err, &maxBytes):
		return problem(http.StatusRequestEntityTooLarge, "request body exceeds the limit of "+strconv.FormatInt(maxBytes.Limit, 10)+" bytes")
	case errors.As(err, &batch):
		p := problem(http.StatusUnprocessableEntity, batch.Error())
		for _, f := range batch.Failures {
			p.Errors = append(p.Errors, FieldError{Loc: append([]any{"body", f.Item}, f.Location()...), Msg: f.Message(), Type: f.ErrorType()})
		}
		return p
	case errors.Is(err, event.ErrBatchTooLarge):
		return problem(http.StatusRequestEntityTooLarge, err.Error())
	case errors.As(err, &verr):
		p := problem(http.StatusUnprocessableEntity, verr.Error())
		p.Errors = bodyErrors(nil, verr)
		return p
	case errors.Is(err, ledger.ErrKeyReused):
		return problem(http.StatusUnprocessableEntity, err.Error()+"; use a new key for a new request")
	case errors.Is(err, store.ErrNotFound):
		return problem(http.StatusNotFound, "not found")
	case errors.Is(err, ledger.ErrClosed), errors.Is(err, store.ErrClosed):
		p := problem(http.StatusServiceUnavailable, "the server is shutting down; retry against another instance or after restart")
		p.retryAfter = 1
		return p
	case errors.Is(err, store.ErrUnavailable):
		p := problem(http.StatusServiceUnavailable, "the database is unavailable; retry shortly")
		p.retryAfter = 1
		return p
	case store.IsFull(err):
		p := problem(http.StatusServiceUnavailable, "the disk is full: appends are refused until space is freed; reads keep working")
		p.retryAfter = 30
		return p
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return problem(http.StatusServiceUnavailable, "request cancelled before it completed")
	default:
		return problem(http.StatusInternalServerError, "internal error; the server log has the cause")
	}
}

func writeProblem(w http.ResponseWriter, p *Problem) {
	if p.Status == http.StatusUnprocessableEntity && len(p.Errors) == 0 {
		// Every 422 carries errors, as the original's all did; one the
		// handler did not locate more precisely is about the body.
		c := *p
		c.Errors = []FieldError{{Loc: []any{"body"}, Msg: p.Detail, Type: "value_error"}}
		p = &c
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	if p.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.retryAfter))
	}
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}
