package httpapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"time"

	"github.com/audit-stream/audit-stream/internal/store"
)

// tokenRecheck is how often an open stream re-reads its token. A lookup is
// a stat of the token signal file and a cache hit, so this costs little
// even for thousands of streams, and a revoked token's streams end within
// about a second.
const tokenRecheck = time.Second

// streamToken keeps an open stream tied to the token that opened it: a
// stream may run for days, and a revocation or an expiry must end it, not
// only refuse its next reconnect.
type streamToken struct {
	s       *Server
	tok     *store.Token
	inStore bool // else from the tokens file or a client certificate
	next    time.Time
	tick    *time.Ticker
}

// watchStreamToken returns the watch of r's token, or nil when the server
// runs open (then there is nothing to end).
func (s *Server) watchStreamToken(r *http.Request) *streamToken {
	t := caller(r)
	if t == nil {
		return nil
	}
	// A client-certificate identity has no digest; a bearer token is in
	// the tokens file or in the store.
	_, inFile := s.auth.opt.File.ByDigest(t.Digest)
	inStore := !inFile && t.Digest != [sha256.Size]byte{}
	if !inStore && t.Expires.IsZero() {
		return nil // a tokens-file entry without expiry holds until restart
	}
	return &streamToken{s: s, tok: t, inStore: inStore, next: time.Now().Add(tokenRecheck), tick: time.NewTicker(tokenRecheck)}
}

// C fires when the token is due for a re-check; nil (never) without a watch.
func (w *streamToken) C() <-chan time.Time {
	if w == nil {
		return nil
	}
	return w.tick.C
}

func (w *streamToken) Stop() {
	if w != nil {
		w.tick.Stop()
	}
}

// ended returns why the stream's token no longer admits it, or "" while it
// does. Expiry is checked on every call; revocation once per tokenRecheck.
func (w *streamToken) ended(ctx context.Context) string {
	if w == nil {
		return ""
	}
	now := w.s.auth.opt.Now()
	if why := w.tok.Usable(now); why != "" {
		return "token " + w.tok.ID + " is " + why
	}
	if !w.inStore || time.Now().Before(w.next) {
		return ""
	}
	w.next = time.Now().Add(tokenRecheck)
	t, err := w.s.st.TokenByDigest(ctx, w.tok.Digest)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "token " + w.tok.ID + " no longer exists"
	case err != nil:
		return "" // a transient store error must not cut every stream
	}
	if why := t.Usable(now); why != "" {
		return "token " + w.tok.ID + " is " + why
	}
	return ""
}

// endStreamComment is the last frame of a stream whose token ended: a
// comment, so EventSource clients dispatch nothing, but a person or a log
// reading the stream sees why it stopped.
func endStreamComment(why string) string {
	return ": " + why + "; the stream ends. Reconnect with a valid token.\n\n"
}
