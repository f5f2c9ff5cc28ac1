package httpapi

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// Request bodies come from clients we do not trust to send them promptly, or
// at all. Three rules keep a slow or broken body from holding the server:
//
//   - the whole body must arrive within BodyTimeout of the request's start
//     (a read deadline on the connection, lifted once the body is read, so
//     that a commit that takes longer does not cancel the request);
//   - an answer written while the body is still unread (a 401, a 413, a
//     503) closes the connection rather than reading the rest of the body
//     first, which is what net/http does by default and what let a
//     client without a token hold a connection by sending nothing;
//   - a body that cannot be read (cut off, malformed chunking, too slow) is
//     the client's fault: a 400 or a 408, never a 500;
//   - a body longer than its route's limit (BodyLimit unless the route
//     table says otherwise, as it does for batches) is a 413 once the
//     handler has read past the limit.
//
// Requests without a body (every GET, so every stream) are untouched.

// guardBody applies the rules above to requests that carry a body.
func (s *Server) guardBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		// Not every ResponseWriter supports deadlines (httptest's
		// recorder does not); the body then simply has none.
		_ = rc.SetReadDeadline(time.Now().Add(s.opt.BodyTimeout))
		b := &guardedBody{rc: rc, w: w, src: r.Body, timeout: s.opt.BodyTimeout, limit: s.opt.BodyLimit}
		r.Body = b
		next.ServeHTTP(&bodyAwareWriter{ResponseWriter: w, body: b}, r)
	})
}

// guardedBody bounds the body to its route's limit, lifts the read deadline
// once the body has been read to its end and marks every read error as the
// client's.
type guardedBody struct {
	rc      *http.ResponseController
	w       http.ResponseWriter
	src     io.ReadCloser
	timeout time.Duration
	done    atomic.Bool // read to EOF

	limit   int64         // the route's limit; see limitBody
	limited io.ReadCloser // src within limit, from the first Read on
}

// limitBody sets the limit of r's body to n bytes, for a route whose limit is
// not BodyLimit. It must run before anything reads the body.
func limitBody(r *http.Request, n int64) {
	if b, ok := r.Body.(*guardedBody); ok && b.limited == nil {
		b.limit = n
	}
}

func (b *guardedBody) Read(p []byte) (int, error) {
	if b.limited == nil {
		b.limited = http.MaxBytesReader(b.w, b.src, b.limit)
	}
	n, err := b.limited.Read(p)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		if !b.done.Swap(true) {
			// net/http now reads the connection in the background to
			// notice a client that goes away; with the deadline left
			// in place that read would time out and cancel the request
			// while its append is being committed.
			_ = b.rc.SetReadDeadline(time.Time{})
		}
	default:
		var mb *http.MaxBytesError
		if !errors.As(err, &mb) {
			err = &bodyError{err: err, timeout: b.timeout}
		}
	}
	return n, err
}

func (b *guardedBody) Close() error { return b.src.Close() }

// bodyError is a request body that could not be read.
type bodyError struct {
	err     error
	timeout time.Duration
}

func (e *bodyError) Error() string { return "reading request body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// problem is the answer to a body that could not be read. It is written only
// if the client is still there to read it.
func (e *bodyError) problem() *Problem {
	if errors.Is(e.err, os.ErrDeadlineExceeded) {
		return problem(http.StatusRequestTimeout, "the request body did not arrive within "+e.timeout.String()+" (--body-timeout)")
	}
	return problem(http.StatusBadRequest, "the request body could not be read: "+e.err.Error())
}

// bodyAwareWriter closes the connection after an answer sent before the body
// was read to its end.
type bodyAwareWriter struct {
	http.ResponseWriter
	body *guardedBody
}

func (w *bodyAwareWriter) WriteHeader(code int) {
	if !w.body.done.Load() {
		w.Header().Set("Connection", "close")
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *bodyAwareWriter) Write(p []byte) (int, error) {
	if !w.body.done.Load() {
		w.Header().Set("Connection", "close")
	}
	return w.ResponseWriter.Write(p)
}

func (w *bodyAwareWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
