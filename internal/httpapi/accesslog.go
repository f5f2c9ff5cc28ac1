package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/audit-stream/audit-stream/internal/store"
)

// accessKey carries an *accessEntry in the request context, so that the
// auth layer deep inside can name the caller's token for the access log.
type accessKey struct{}

type accessEntry struct{ tokenID string }

// noteToken records the caller's token id for the access log, if one is
// being written.
func noteToken(r *http.Request, t *store.Token) {
	if t == nil {
		return
	}
	if e, ok := r.Context().Value(accessKey{}).(*accessEntry); ok {
		e.tokenID = t.ID
	}
}

// accessLog writes one INFO line per request once it is answered: method,
// route pattern (never the raw path or query, which may carry an
// access_token), status, duration and the token id. Never a secret, never
// a body.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		e := &accessEntry{}
		r = r.WithContext(context.WithValue(r.Context(), accessKey{}, e))
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" || route == "/" {
			route = "other"
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method),
			slog.String("route", route),
			slog.Int("status", sw.code),
			slog.Duration("duration", time.Since(start)),
		}
		if e.tokenID != "" {
			attrs = append(attrs, slog.String("token", e.tokenID))
		}
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
	})
}
