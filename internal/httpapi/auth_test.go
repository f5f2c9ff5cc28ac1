package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/auth"
	"github.com/audit-stream/audit-stream/internal/httpapi"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

// identities are the callers of the role matrix.
var identities = []string{"none", "bad", "revoked", "expired", "producer", "reader", "admin"}

// TestRoleMatrix calls every endpoint as every kind of caller over a real
// listener and checks the status.
func TestRoleMatrix(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	secrets := map[string]string{"none": "", "bad": "ast_not-a-real-token-at-all"}
	secrets["producer"], _ = mint(t, env.Store, auth.Spec{Roles: []string{"producer"}, Sources: []string{"billing"}}, nil)
	secrets["reader"], _ = mint(t, env.Store, auth.Spec{Roles: []string{"reader"}}, nil)
	secrets["admin"], _ = mint(t, env.Store, auth.Spec{Roles: []string{"admin"}}, nil)
	secrets["revoked"], _ = mint(t, env.Store, auth.Spec{Roles: []string{"admin"}}, func(tok *store.Token) { tok.Revoked = time.Now() })
	secrets["expired"], _ = mint(t, env.Store, auth.Spec{Roles: []string{"admin"}}, func(tok *store.Token) { tok.Expires = time.Now().Add(-time.Second) })
	// One event, so that GET /events/1 exists.
	if r := call(t, "POST", env.URL+"/events", secrets["admin"], ev); r.status != 201 {
		t.Fatalf("seed append: %d %s", r.status, r.body)
	}

	const (
		open = "open" // the same for everybody
		prod = "producer"
		read = "reader"
		adm  = "admin"
	)
	routes := []struct {
		method, path, body string
		need               string
		ok                 int // status for a caller who may
	}{
		{"GET", "/", "", open, 200},
		{"GET", "/healthz", "", open, 200},
		{"POST", "/events", ev, prod, 201},
		{"POST", "/events/batch", "[" + ev + "," + ev + "]", prod, 201},
		{"GET", "/events", "", read, 200},
		{"GET", "/events/1", "", read, 200},
		{"GET", "/stream", "", read, 200},
		{"GET", "/verify", "", read, 200},
		{"GET", "/stats", "", read, 200},
		{"GET", "/admin/tokens", "", adm, 200},
		{"POST", "/admin/tokens", `{"roles":["reader"]}`, adm, 201},
		{"DELETE", "/admin/tokens/tok_unknown", "", adm, 404},
	}
	for _, rt := range routes {
		for _, who := range identities {
			want := rt.ok
			switch {
			case rt.need == open:
			case who == "none" || who == "bad" || who == "revoked" || who == "expired":
				want = http.StatusUnauthorized
			case who == adm || who == rt.need:
			default:
				want = http.StatusForbidden
			}
			t.Run(rt.method+" "+rt.path+" as "+who, func(t *testing.T) {
				r := call(t, rt.method, env.URL+rt.path, secrets[who], rt.body)
				if r.status != want {
					t.Fatalf("status %d, want %d (%s)", r.status, want, r.body)
				}
				if want == 401 && r.header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				if want >= 400 && want != 404 && r.detail() == "" {
					t.Errorf("refusal without a detail: %s", r.body)
				}
			})
		}
	}
	unauth, forbidden, _ := httpapi.AuthCounts(env.API)
	if unauth == 0 || forbidden == 0 {
		t.Errorf("metrics counted %d 401s and %d 403s", unauth, forbidden)
	}
}

// TestOpenUntilFirstToken: with no token the server runs open and says so;
// the first token, created by another process, closes it on the next request.
func TestOpenUntilFirstToken(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	authMode := func() string {
		var idx struct{ Auth string }
		json.Unmarshal(call(t, "GET", env.URL+"/", "", "").body, &idx)
		return idx.Auth
	}
	if m := authMode(); m != "off" {
		t.Fatalf(`GET / says "auth":%q with no tokens, want "off"`, m)
	}
	if r := call(t, "POST", env.URL+"/events", "", ev); r.status != 201 {
		t.Fatalf("open append: %d %s", r.status, r.body)
	}
	if r := call(t, "GET", env.URL+"/events", "", ""); r.status != 200 {
		t.Fatalf("open read: %d", r.status)
	}
	adm, err := sqlite.OpenAdmin(context.Background(), env.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	secret, _ := mint(t, adm, auth.Spec{Roles: []string{"reader"}}, nil)
	if r := call(t, "GET", env.URL+"/events", "", ""); r.status != 401 {
		t.Fatalf("read without a token after the first token exists: %d", r.status)
	}
	if r := call(t, "GET", env.URL+"/events", secret, ""); r.status != 200 {
		t.Fatalf("read with the token: %d", r.status)
	}
	if m := authMode(); m != "on" {
		t.Fatalf(`GET / says "auth":%q, want "on"`, m)
	}
}

// TestSourceSpoofing: a producer may append only as its own sources, in a
// single append and in every item of a batch, and nothing is written.
func TestSourceSpoofing(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	secret, _ := mint(t, env.Store, auth.Spec{Roles: []string{"producer"}, Sources: []string{"billing", "shipping"}}, nil)
	cases := []struct{ name, path, body, detail string }{
		{"single", "/events", `{"kind":"other","source":"payroll"}`, `source "payroll" is not allowed`},
		{"batch item", "/events/batch", `[{"kind":"other","source":"billing"},{"kind":"other","source":"payroll"}]`, `item 1: source "payroll"`},
		{"empty-looking", "/events", `{"kind":"other","source":"billing "}`, `source "billing " is not allowed`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := call(t, "POST", env.URL+c.path, secret, c.body)
			if r.status != 403 || !strings.Contains(r.detail(), c.detail) {
				t.Fatalf("got %d %q, want 403 naming %q", r.status, r.detail(), c.detail)
			}
		})
	}
	if n := count(t, env.Store); n != 0 {
		t.Fatalf("%d events written by refused appends", n)
	}
	if r := call(t, "POST", env.URL+"/events", secret, `{"kind":"other","source":"shipping"}`); r.status != 201 {
		t.Fatalf("own source: %d %s", r.status, r.body)
	}
}

// TestRevocationImmediate: a token revoked by the CLI's path (another
// connection to the database) fails on the very next request; so does one
// revoked through the admin API.
func TestRevocationImmediate(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	admin, _ := mint(t, env.Store, auth.Spec{Roles: []string{"admin"}}, nil)
	s1, t1 := mint(t, env.Store, auth.Spec{Roles: []string{"reader"}}, nil)
	s2, t2 := mint(t, env.Store, auth.Spec{Roles: []string{"reader"}}, nil)
	for _, s := range []string{s1, s2} {
		if r := call(t, "GET", env.URL+"/stats", s, ""); r.status != 200 {
			t.Fatalf("before revocation: %d", r.status)
		}
	}
	adm, err := sqlite.OpenAdmin(context.Background(), env.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if err := adm.RevokeToken(context.Background(), t1.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if r := call(t, "GET", env.URL+"/stats", s1, ""); r.status != 401 || !strings.Contains(r.detail(), "revoked") {
		t.Fatalf("after CLI revocation: %d %s", r.status, r.body)
	}
	if r := call(t, "DELETE", env.URL+"/admin/tokens/"+t2.ID, admin, ""); r.status != 204 {
		t.Fatalf("DELETE /admin/tokens: %d %s", r.status, r.body)
	}
	if r := call(t, "GET", env.URL+"/stats", s2, ""); r.status != 401 {
		t.Fatalf("after API revocation: %d", r.status)
	}
}

// TestSecretsNeverLogged: refused and accepted requests, with the secret in
// the header or in ?access_token=, leave no secret in the log.
func TestSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	env := apitest.Start(t, apitest.Options{Log: &logs})
	reader, _ := mint(t, env.Store, auth.Spec{Roles: []string{"reader"}}, nil)
	producer, _ := mint(t, env.Store, auth.Spec{Roles: []string{"producer"}, Sources: []string{"billing"}}, nil)
	revoked, _ := mint(t, env.Store, auth.Spec{Roles: []string{"reader"}}, func(tok *store.Token) { tok.Revoked = time.Now() })
	bad := "ast_this-secret-must-never-be-logged"

	call(t, "GET", env.URL+"/events", bad, "")
	call(t, "GET", env.URL+"/events", revoked, "")
	call(t, "GET", env.URL+"/events", producer, "")
	call(t, "POST", env.URL+"/events", producer, `{"kind":"other","source":"payroll"}`)
	call(t, "GET", env.URL+"/stream?access_token="+bad, "", "")
	if r := call(t, "GET", env.URL+"/stream?access_token="+reader, "", ""); r.status != 200 {
		t.Fatalf("stream with ?access_token=: %d", r.status)
	}
	if r := call(t, "GET", env.URL+"/events?access_token="+reader, "", ""); r.status != 401 {
		t.Fatalf("?access_token= outside /stream: %d, want 401", r.status)
	}
	out := logs.String()
	if !strings.Contains(out, "access denied") {
		t.Fatalf("refusals were not logged:\n%s", out)
	}
	for _, s := range []string{bad, reader, producer, revoked} {
		if strings.Contains(out, s) || strings.Contains(out, s[4:20]) {
			t.Fatalf("a secret appears in the log:\n%s", out)
		}
	}
}

// TestTokensFile: plain and hashed entries of a read-only tokens file.
func TestTokensFile(t *testing.T) {
	t.Parallel()
	digest := auth.Digest("hashed-secret-0123456789")
	f, err := auth.ParseFile([]byte(`{"tokens":[
		{"id":"ci","roles":["producer"],"sources":["billing"],"token":"plain-secret-0123456789"},
		{"id":"dash","roles":["reader"],"sha256":"` + hexOf(digest[:]) + `"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	env := apitest.Start(t, apitest.Options{API: httpapi.Options{Auth: httpapi.AuthOptions{File: f}}})
	if r := call(t, "GET", env.URL+"/stats", "", ""); r.status != 401 {
		t.Fatalf("a tokens file must turn auth on: %d", r.status)
	}
	if r := call(t, "POST", env.URL+"/events", "plain-secret-0123456789", ev); r.status != 201 {
		t.Fatalf("plain entry: %d %s", r.status, r.body)
	}
	if r := call(t, "GET", env.URL+"/stats", "hashed-secret-0123456789", ""); r.status != 200 {
		t.Fatalf("hashed entry: %d %s", r.status, r.body)
	}
	if r := call(t, "GET", env.URL+"/stats", "plain-secret-0123456789", ""); r.status != 403 {
		t.Fatalf("producer entry reading: %d", r.status)
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// TestRateLimit: each token has its own bucket; an empty one answers 429
// with Retry-After.
func TestRateLimit(t *testing.T) {
	env := apitest.Start(t, apitest.Options{API: httpapi.Options{Auth: httpapi.AuthOptions{RateLimit: 0.5, RateBurst: 2}}})
	a, _ := mint(t, env.Store, auth.Spec{Roles: []string{"reader"}}, nil)
	b, _ := mint(t, env.Store, auth.Spec{Roles: []string{"reader"}}, nil)
	for i := 0; i < 2; i++ {
		if r := call(t, "GET", env.URL+"/stats", a, ""); r.status != 200 {
			t.Fatalf("request %d within the burst: %d", i, r.status)
		}
	}
	r := call(t, "GET", env.URL+"/stats", a, "")
	if r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Fatalf("over the limit: %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	if r := call(t, "GET", env.URL+"/stats", b, ""); r.status != 200 {
		t.Fatalf("another token's bucket: %d", r.status)
	}
	if _, _, limited := httpapi.AuthCounts(env.API); limited != 1 {
		t.Fatalf("counted %d rate-limited requests, want 1", limited)
	}
}

// TestAdminAPICreate: the secret is returned once and works.
func TestAdminAPICreate(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	admin, _ := mint(t, env.Store, auth.Spec{Roles: []string{"admin"}}, nil)
	r := call(t, "POST", env.URL+"/admin/tokens", admin, `{"roles":["producer"],"sources":["billing"],"name":"ci","expires":"90d"}`)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var got struct {
		Token   string
		ID      string
		Expires *time.Time
	}
	json.Unmarshal(r.body, &got)
	if !strings.HasPrefix(got.Token, auth.SecretPrefix) || got.Expires == nil {
		t.Fatalf("create answered %s", r.body)
	}
	if r := call(t, "POST", env.URL+"/events", got.Token, ev); r.status != 201 {
		t.Fatalf("append with the new token: %d %s", r.status, r.body)
	}
	list := call(t, "GET", env.URL+"/admin/tokens", admin, "")
	if strings.Contains(string(list.body), got.Token) || !strings.Contains(string(list.body), got.ID) {
		t.Fatalf("list: %s", list.body)
	}
	for _, bad := range []string{`{"roles":["root"]}`, `{"roles":["producer"]}`, `{"roles":["reader"],"expires":"soon"}`, `{"roles":["reader"],"extra":1}`, `[]`} {
		if r := call(t, "POST", env.URL+"/admin/tokens", admin, bad); r.status != 422 || r.detail() == "" {
			t.Errorf("create %s: %d %s, want 422", bad, r.status, r.body)
		}
	}
}

// TestFirstTokenViaAPI: with only a tokens file, the first token the admin
// API stores is logged at WARN with the auth mode; later ones are not.
func TestFirstTokenViaAPI(t *testing.T) {
	t.Parallel()
	f, err := auth.ParseFile([]byte(`{"tokens":[{"id":"boot","roles":["admin"],"token":"bootstrap-secret-0123456789"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	env := apitest.Start(t, apitest.Options{Log: &logs, API: httpapi.Options{Auth: httpapi.AuthOptions{File: f}}})
	for range 2 {
		if r := call(t, "POST", env.URL+"/admin/tokens", "bootstrap-secret-0123456789", `{"roles":["reader"]}`, "Content-Type", "application/json"); r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
	}
	if n := strings.Count(logs.String(), "level=WARN msg=\"first API token created"); n != 1 || !strings.Contains(logs.String(), "auth=on") {
		t.Fatalf("first token logged %d times at WARN (want once, with auth=on):\n%s", n, logs.String())
	}
	if r := call(t, "POST", env.URL+"/admin/tokens", "bootstrap-secret-0123456789", `{"roles":["reader"]}`, "Content-Type", "text/plain"); r.status != 415 {
		t.Fatalf("create with text/plain: %d, want 415", r.status)
	}
}
