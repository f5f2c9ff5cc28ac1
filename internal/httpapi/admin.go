package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/audit-stream/audit-stream/internal/auth"
	"github.com/audit-stream/audit-stream/internal/store"
)

// TokenView is a token as the admin API and the CLI show it: never the
// secret, nor its digest.
type TokenView struct {
	ID      string     `json:"id"`
	Name    string     `json:"name,omitempty"`
	Roles   []string   `json:"roles"`
	Sources []string   `json:"sources"`
	Created time.Time  `json:"created"`
	Expires *time.Time `json:"expires"`
	Revoked *time.Time `json:"revoked"`
	// SigningKey is the producer verifier key the token's appends must be
	// signed by (public: it only checks signatures).
	SigningKey string `json:"signing_key,omitempty"`
}

// ViewToken converts a stored token for display.
func ViewToken(t store.Token) TokenView {
	v := TokenView{ID: t.ID, Name: t.Name, Roles: t.Roles, Sources: t.Sources, Created: t.Created, SigningKey: t.SigningKey}
	if v.Roles == nil {
		v.Roles = []string{}
	}
	if v.Sources == nil {
		v.Sources = []string{}
	}
	if !t.Expires.IsZero() {
		v.Expires = &t.Expires
	}
	if !t.Revoked.IsZero() {
		v.Revoked = &t.Revoked
	}
	return v
}

// tokenBodyLimit caps a token request: a few roles and sources.
const tokenBodyLimit = 64 << 10

// createToken serves POST /admin/tokens:
//
//	{"roles": ["producer"], "sources": ["billing"], "name": "billing CI", "expires": "90d"}
//
// The answer carries the secret once, in "token".
func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	if p := checkBodyType(r, false); p != nil {
		return p
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	var in struct {
		Role    string   `json:"role"`
		Roles   []string `json:"roles"`
		Sources []string `json:"sources"`
		Name    string   `json:"name"`
		Expires string   `json:"expires"`
		// SigningKey: a producer verifier key, name+hash+base64.
		SigningKey string `json:"signing_key"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return problem(http.StatusUnprocessableEntity, "body: want {\"roles\": [...], \"sources\": [...], \"name\": ..., \"expires\": \"90d\"}: "+err.Error())
	}
	if in.Role != "" {
		in.Roles = append(in.Roles, in.Role)
	}
	ttl, err := auth.ParseTTL(in.Expires)
	if err != nil {
		return problem(http.StatusUnprocessableEntity, "expires: "+err.Error())
	}
	secret, t, err := auth.New(auth.Spec{Name: in.Name, Roles: in.Roles, Sources: in.Sources, TTL: ttl, SigningKey: in.SigningKey}, s.auth.opt.Now())
	if err != nil {
		return problem(http.StatusUnprocessableEntity, err.Error())
	}
	had, err := s.st.HasTokens(r.Context())
	if err != nil {
		return err
	}
	if err := s.st.CreateToken(r.Context(), t); err != nil {
		return err
	}
	s.auth.on.Store(true)
	by := ""
	if c := caller(r); c != nil {
		by = c.ID
	}
	if !had {
		// The admin API is closed in open mode, so the caller holds a
		// tokens-file credential: auth was on already, but from now on the
		// data directory holds tokens too.
		s.log.Warn("first API token created in the data directory", "auth", "on", "token_id", t.ID, "roles", t.Roles, "by", by)
	} else {
		s.log.Info("token created", "token_id", t.ID, "roles", t.Roles, "sources", t.Sources, "by", by)
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusCreated, struct {
		Token string `json:"token"`
		TokenView
	}{secret, ViewToken(t)})
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	ts, err := s.st.ListTokens(r.Context())
	if err != nil {
		return err
	}
	out := make([]TokenView, len(ts))
	for i, t := range ts {
		out[i] = ViewToken(t)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.st.RevokeToken(r.Context(), id, s.auth.opt.Now()); err != nil {
		return missing(err, "no token with id "+id)
	}
	s.log.Info("token revoked", "token_id", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
