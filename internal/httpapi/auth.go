package httpapi

import (
	"context"
	"crypto/x509"
	"errors"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/auth"
	"github.com/audit-stream/audit-stream/internal/store"
	"golang.org/x/time/rate"
)

// AuthOptions configures access control.
type AuthOptions struct {
	// File holds read-only tokens and client-certificate identities
	// (--tokens-file); nil for none.
	File *auth.File
	// CloseVerification makes the public verification material
	// (checkpoints, proofs, tiles) require a token like any other read.
	CloseVerification bool
	// RateLimit is each token's sustained requests per second; 0 means
	// unlimited. RateBurst is the bucket size; default max(1, RateLimit).
	RateLimit float64
	RateBurst int
	// Now is the clock for expiry; default time.Now.
	Now func() time.Time
}

// authState is the Server's access-control state.
type authState struct {
	opt AuthOptions

	// on latches once any token exists: tokens are never deleted, so
	// the server never drops back to open mode.
	on atomic.Bool
	// wasOpen records that this server answered open at least once, so
	// that the moment tokens start being required is logged exactly once,
	// and not at a start-up that finds tokens already there.
	wasOpen atomic.Bool

	limMu    sync.Mutex
	limiters map[string]*rate.Limiter

	malformed, unauthorized, forbidden, limited atomic.Int64
}

func newAuthState(opt AuthOptions) *authState {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.RateBurst <= 0 {
		opt.RateBurst = max(1, int(math.Ceil(opt.RateLimit)))
	}
	a := &authState{opt: opt, limiters: map[string]*rate.Limiter{}}
	if opt.File.Len() > 0 {
		a.on.Store(true)
	}
	return a
}

// AuthEnabled reports whether non-open endpoints require a credential: a
// tokens file with entries, or any token in the store. Until then the
// server runs open, as the original did.
func (s *Server) AuthEnabled(ctx context.Context) (bool, error) {
	if s.auth.on.Load() {
		return true, nil
	}
	has, err := s.st.HasTokens(ctx)
	if err != nil {
		return false, err
	}
	if has {
		s.authTurnedOn("a token was created in the data directory")
	} else {
		s.auth.wasOpen.Store(true)
	}
	return has, nil
}

// authTurnedOn latches auth on. Leaving open mode changes who may do
// what, so the first time this server sees it happen it says so at WARN.
func (s *Server) authTurnedOn(how string) {
	if s.auth.on.Swap(true) || !s.auth.wasOpen.Load() {
		return
	}
	s.log.Warn("first API token created: auth mode is now on; every endpoint except /healthz, / and the verification material needs a token",
		"auth", "on", "how", how)
}

// openAdminDetail answers the admin API while the server runs open: were
// it open too, the first caller could mint an admin token and lock every
// producer out. The first admin token is made on the server's host.
const openAdminDetail = "the admin API is closed while no API tokens exist (the server runs open): " +
	"create the first admin token on the server's host with 'audit-stream token create --role admin --data DIR', " +
	"then call the admin API with it"

// identityKey carries the caller's token in the request context.
type identityKey struct{}

// caller returns the authenticated token of r, or nil when the server is
// open.
func caller(r *http.Request) *store.Token {
	t, _ := r.Context().Value(identityKey{}).(*store.Token)
	return t
}

// guardAuth is guard's body: it authenticates the caller, checks the
// route's access level and the caller's rate, and passes the token on in
// the request context.
func (s *Server) guardAuth(a access, h http.Handler) http.Handler {
	if a == public {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a == verifierOpen && !s.auth.opt.CloseVerification {
			h.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && crossSite(r) {
			s.deny(w, r, nil, problem(http.StatusForbidden, "a browser sent this "+r.Method+" on behalf of a page from another site (Sec-Fetch-Site: "+
				r.Header.Get("Sec-Fetch-Site")+"); write endpoints refuse cross-site requests"))
			return
		}
		secret := bearer(r)
		if secret == twoCredentials {
			s.deny(w, r, nil, problem(http.StatusBadRequest, "send one Authorization header, not several"))
			return
		}
		on, err := s.AuthEnabled(r.Context())
		if err != nil {
			writeProblem(w, toProblem(err))
			return
		}
		if !on {
			if a == admin {
				s.deny(w, r, nil, problem(http.StatusForbidden, openAdminDetail))
				return
			}
			h.ServeHTTP(w, r)
			return
		}
		tok, p := s.authenticate(r, secret)
		noteToken(r, tok)
		if p == nil {
			p = permitted(tok, a, r)
		}
		if p != nil {
			s.deny(w, r, tok, p)
			return
		}
		if p := s.rateLimit(tok); p != nil {
			s.deny(w, r, tok, p)
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, tok)))
	})
}

// bearer returns the secret the caller presented, if any. GET /stream also
// takes ?access_token=, because browsers cannot set headers on an
// EventSource; the parameter is removed from the request so that nothing
// downstream (handlers, logs) ever sees it.
func bearer(r *http.Request) string {
	if len(r.Header.Values("Authorization")) > 1 {
		// Proxies and servers disagree on which of several to use; an
		// ambiguous credential is refused rather than guessed at.
		return twoCredentials
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, secret, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(secret)
		}
		return "\x00malformed" // never a valid secret: answered 401
	}
	if r.URL.Path == "/stream" && strings.Contains(r.URL.RawQuery, "access_token") {
		q := r.URL.Query()
		secret := q.Get("access_token")
		q.Del("access_token")
		r.URL.RawQuery = q.Encode()
		r.RequestURI = r.URL.RequestURI()
		return secret
	}
	return ""
}

// twoCredentials is bearer's answer for a request with more than one
// Authorization header; like the malformed marker, never a valid secret.
const twoCredentials = "\x00several"

// authenticate finds the token of the secret, or of the verified client
// certificate when no secret was given.
func (s *Server) authenticate(r *http.Request, secret string) (*store.Token, *Problem) {
	if secret == "" {
		if cert := clientCert(r); cert != nil {
			subject := cert.Subject.String()
			if t, ok := s.auth.opt.File.BySubject(subject); ok {
				return s.usable(&t)
			}
			return nil, unauthorized("the client certificate " + strconv.Quote(subject) + " is not mapped to any role in the tokens file")
		}
		return nil, unauthorized("this endpoint requires a token: send Authorization: Bearer <token>")
	}
	if strings.HasPrefix(secret, "\x00") {
		return nil, unauthorized("malformed Authorization header: want Bearer <token>")
	}
	d := auth.Digest(secret)
	if t, ok := s.auth.opt.File.ByDigest(d); ok {
		return s.usable(&t)
	}
	t, err := s.st.TokenByDigest(r.Context(), d)
	// Not found is not a 404 here: the caller presented a token we do
	// not know.
	if errors.Is(err, store.ErrNotFound) || (err == nil && !auth.Equal(t.Digest, d)) {
		return nil, unauthorized("invalid token")
	}
	if err != nil {
		return nil, toProblem(err)
	}
	return s.usable(&t)
}

func (s *Server) usable(t *store.Token) (*store.Token, *Problem) {
	if why := t.Usable(s.auth.opt.Now()); why != "" {
		return t, unauthorized("token " + t.ID + " is " + why)
	}
	return t, nil
}

// clientCert is the verified client certificate of an mTLS connection.
func clientCert(r *http.Request) *x509.Certificate {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil
	}
	return r.TLS.VerifiedChains[0][0]
}

// permitted checks a route's access level against the token's roles.
func permitted(t *store.Token, a access, r *http.Request) *Problem {
	if t.Has(store.RoleAdmin) {
		return nil
	}
	var need string
	switch a {
	case verifierOpen:
		return nil // closed verification: any valid token
	case reader:
		need = store.RoleReader
	case producer:
		need = store.RoleProducer
	default:
		need = store.RoleAdmin
	}
	if t.Has(need) {
		return nil
	}
	return problem(http.StatusForbidden, "token "+t.ID+" ("+strings.Join(t.Roles, ", ")+") may not call "+
		r.Method+" "+r.URL.Path+": it needs the "+need+" role")
}

// checkSources enforces a producer token's source list on requests; for a
// batch the detail names the first refused item by its index.
func checkSources(r *http.Request, reqs []event.Request, batch bool) *Problem {
	t := caller(r)
	if t == nil || t.Has(store.RoleAdmin) {
		return nil
	}
	for i := range reqs {
		if slices.Contains(t.Sources, reqs[i].Source) {
			continue
		}
		detail := "source " + strconv.Quote(reqs[i].Source) + " is not allowed for token " + t.ID +
			" (allowed: " + strings.Join(t.Sources, ", ") + ")"
		if batch {
			detail = "item " + strconv.Itoa(i) + ": " + detail
		}
		return problem(http.StatusForbidden, detail)
	}
	return nil
}

// rateLimit takes one request from the token's bucket.
func (s *Server) rateLimit(t *store.Token) *Problem {
	if s.auth.opt.RateLimit <= 0 {
		return nil
	}
	s.auth.limMu.Lock()
	lim, ok := s.auth.limiters[t.ID]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(s.auth.opt.RateLimit), s.auth.opt.RateBurst)
		s.auth.limiters[t.ID] = lim
	}
	s.auth.limMu.Unlock()
	now := time.Now()
	res := lim.ReserveN(now, 1)
	delay := res.DelayFrom(now)
	if delay == 0 {
		return nil
	}
	res.CancelAt(now)
	p := problem(http.StatusTooManyRequests, "rate limit of "+strconv.FormatFloat(s.auth.opt.RateLimit, 'g', -1, 64)+
		" requests per second exceeded for token "+t.ID)
	p.retryAfter = max(1, int(math.Ceil(delay.Seconds())))
	return p
}

func unauthorized(detail string) *Problem { return problem(http.StatusUnauthorized, detail) }

// deny answers a refused request, logs it and counts it (refused).
func (s *Server) deny(w http.ResponseWriter, r *http.Request, t *store.Token, p *Problem) {
	s.refused(r, t, p)
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="audit-stream"`)
	}
	writeProblem(w, p)
}

// refused logs an access refusal by token id (never the secret, never the
// query string) and counts it. Every refusal goes through here, also those
// a handler makes, like a producer's source that its token does not allow.
func (s *Server) refused(r *http.Request, t *store.Token, p *Problem) {
	id := ""
	if t != nil {
		id = t.ID
	}
	switch p.Status {
	case http.StatusBadRequest:
		s.auth.malformed.Add(1)
	case http.StatusUnauthorized:
		s.auth.unauthorized.Add(1)
	case http.StatusForbidden:
		s.auth.forbidden.Add(1)
	case http.StatusTooManyRequests:
		s.auth.limited.Add(1)
	case http.StatusConflict:
		s.replays.Add(1)
	}
	if p.Status < 500 {
		s.log.Warn("access denied", "status", p.Status, "method", r.Method, "path", r.URL.Path,
			"token_id", id, "remote", r.RemoteAddr, "reason", p.Detail)
	}
}

// authCounts returns how many requests were refused with 401, 403 and 429,
// for the metrics endpoint.
func (s *Server) authCounts() (unauthorized, forbidden, limited int64) {
	return s.auth.unauthorized.Load(), s.auth.forbidden.Load(), s.auth.limited.Load()
}
