package web_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/auth"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/web"
)

// The dashboard's files through the real server: served from the binary
// with a strict policy, and nothing outside them.
func TestServesDashboard(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cases := []struct {
		path, method string
		status       int
		ctype, body  string
	}{
		{"/ui/", "GET", 200, "text/html", `<script type="module" src="app.js">`},
		{"/ui/app.js", "GET", 200, "text/javascript", "EventSource"},
		{"/ui/canon.js", "GET", 200, "text/javascript", "compareCodePoints"},
		{"/ui/proof.js", "GET", 200, "text/javascript", "rootFromInclusion"},
		{"/ui/style.css", "GET", 200, "text/css", "prefers-color-scheme: dark"},
		{"/ui/kinds.json", "GET", 200, "application/json", `"request_denied"`},
		{"/ui/nope.js", "GET", 404, "", ""},
		{"/ui/../go.mod", "GET", 307, "", ""}, // cleaned to /go.mod, which is no file of ours
		{"/ui/%2e%2e/go.mod", "GET", 404, "", ""},
		{"/ui/static/app.js", "GET", 404, "", ""},
		{"/ui", "GET", 307, "", ""},
		{"/ui/", "POST", 405, "application/problem+json", "allowed: GET"},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, env.URL+c.path, nil)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %d, want %d: %s", c.method, c.path, resp.StatusCode, c.status, b)
			continue
		}
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), c.ctype) || !strings.Contains(string(b), c.body) {
			t.Errorf("%s %s: %s %.200s", c.method, c.path, resp.Header.Get("Content-Type"), b)
		}
		if c.status == 200 {
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
				t.Errorf("%s: CSP %q", c.path, csp)
			}
		}
	}
	var kinds []string
	resp, err := http.Get(env.URL + "/ui/kinds.json")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&kinds)
	resp.Body.Close()
	if len(kinds) != len(event.DefaultKindSet.Kinds()) {
		t.Fatalf("kinds.json has %d kinds, want %d", len(kinds), len(event.DefaultKindSet.Kinds()))
	}
}

// The page is static and public: it works before a token is entered, and
// the data behind it stays guarded.
func TestDashboardIsPublicDataIsNot(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	_, tok, err := auth.New(auth.Spec{Roles: []string{store.RoleReader}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Store.CreateToken(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{"/ui/": 200, "/ui/app.js": 200, "/events": 401, "/stats": 401} {
		resp, err := http.Get(env.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s with auth on: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// Many clients at once fetching the page cost the server nothing it cannot
// give: every one gets the whole file.
func TestDashboardHammered(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	want, err := web.Static.ReadFile("static/app.js")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				res, err := apitest.Client.Get(env.URL + "/ui/app.js")
				if err != nil {
					bad.Add(1)
					continue
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 200 || !bytes.Equal(b, want) {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Fatalf("%d of 640 concurrent fetches failed", n)
	}
}
