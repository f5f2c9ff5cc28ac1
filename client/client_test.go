package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/client"
	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/verify"
)

func newClient(t testing.TB, url string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientRoundTrip(t *testing.T) {
	env := apitest.Start(t, apitest.Options{})
	c := newClient(t, env.URL)
	ctx := context.Background()

	st, err := c.Stats(ctx)
	if err != nil || st.Count != 0 || st.LatestHash != event.ZeroHash {
		t.Fatalf("empty log stats %+v, %v", st, err)
	}
	var appended []event.Event
	for i, r := range []client.AppendRequest{
		{Kind: "request_denied", Source: "gateway", Payload: json.RawMessage(`{"path": "/admin", "z": 1, "a": [1.5, "é"]}`)},
		{Kind: "other", Source: "cron"},
		{Kind: "other", Source: "cron", Timestamp: "2026-05-15T03:14:15Z"},
	} {
		e, err := c.Append(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if e.ID != int64(i+1) || e.Kind != r.Kind || e.Source != r.Source {
			t.Fatalf("appended %+v", e)
		}
		if h, _ := e.ComputeHash(nil); h != e.Hash {
			t.Fatalf("event %d does not re-hash", e.ID)
		}
		appended = append(appended, e)
	}
	if string(appended[0].Payload) != `{"a":[1.5,"\u00e9"],"path":"/admin","z":1}` {
		t.Fatalf("payload %s", appended[0].Payload)
	}
	if string(appended[1].Payload) != `{}` || appended[2].Timestamp != "2026-05-15T03:14:15Z" {
		t.Fatalf("defaults: %+v", appended[1:])
	}

	got, err := c.Get(ctx, 2)
	if err != nil || !equal(got, appended[1]) {
		t.Fatalf("Get: %+v, %v", got, err)
	}
	all, err := c.Query(ctx, client.QueryOptions{})
	if err != nil || len(all) != 3 {
		t.Fatalf("Query: %d, %v", len(all), err)
	}
	chain := verify.NewChain()
	for i := range all {
		if !equal(all[i], appended[i]) {
			t.Fatalf("Query[%d] = %+v", i, all[i])
		}
		if err := chain.Add(&all[i]); err != nil {
			t.Fatal(err)
		}
	}
	some, err := c.Query(ctx, client.QueryOptions{Kinds: []string{"other", "request_allowed"}, Sources: []string{"cron"}, Limit: 1})
	if err != nil || len(some) != 1 || some[0].ID != 3 {
		t.Fatalf("filtered Query: %+v, %v", some, err)
	}
	st, err = c.Stats(ctx)
	if err != nil || st.Count != 3 || st.LastEventID != 3 || st.LatestHash != appended[2].Hash {
		t.Fatalf("stats %+v, %v", st, err)
	}
	rep, err := c.Verify(ctx)
	if err != nil || !rep.Valid || rep.Checked != 3 {
		t.Fatalf("verify %+v, %v", rep, err)
	}
}

func equal(a, b event.Event) bool {
	return a.ID == b.ID && a.Timestamp == b.Timestamp && a.Kind == b.Kind && a.Source == b.Source &&
		string(a.Payload) == string(b.Payload) && a.PrevHash == b.PrevHash && a.Hash == b.Hash
}

func TestClientErrors(t *testing.T) {
	env := apitest.Start(t, apitest.Options{})
	c := newClient(t, env.URL)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		call   func() error
		status int
		detail string
	}{
		{"unknown kind", func() error {
			_, err := c.Append(ctx, client.AppendRequest{Kind: "nope", Source: "s"})
			return err
		}, 422, `kind: unknown kind "nope"`},
		{"missing source", func() error {
			_, err := c.Append(ctx, client.AppendRequest{Kind: "other"})
			return err
		}, 422, "source"},
		{"payload not an object", func() error {
			_, err := c.Append(ctx, client.AppendRequest{Kind: "other", Source: "s", Payload: json.RawMessage(`[1]`)})
			return err
		}, 422, "payload"},
		{"no such event", func() error {
			_, err := c.Get(ctx, 42)
			return err
		}, 404, "no event with id 42"},
		{"bad id", func() error {
			_, err := c.Get(ctx, -1)
			return err
		}, 404, "no event with id -1"},
		{"query unknown kind", func() error {
			_, err := c.Query(ctx, client.QueryOptions{Kinds: []string{"nope"}})
			return err
		}, 422, `unknown kind "nope"`},
		{"query bad limit", func() error {
			_, err := c.Query(ctx, client.QueryOptions{Limit: -5})
			return err
		}, 400, "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var e *client.Error
			if !errors.As(err, &e) {
				t.Fatalf("got %T %v, want *client.Error", err, err)
			}
			if e.Status != tc.status || !strings.Contains(e.Detail, tc.detail) || e.Title == "" || e.Type == "" {
				t.Fatalf("got %+v, want status %d and detail containing %q", e, tc.status, tc.detail)
			}
			if e.Temporary() {
				t.Fatal("a 4xx is not temporary")
			}
			if !strings.Contains(err.Error(), e.Detail) {
				t.Fatalf("Error() %q lacks the detail", err)
			}
		})
	}
	if st, _ := c.Stats(ctx); st.Count != 0 {
		t.Fatalf("rejected appends wrote %d events", st.Count)
	}

	// A non-problem answer (a proxy's page) still becomes an *Error.
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	defer proxy.Close()
	_, err := newClient(t, proxy.URL).Stats(ctx)
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 502 || e.Detail != "<html>bad gateway</html>" || !e.Temporary() || e.RetryAfter != 7*time.Second {
		t.Fatalf("got %#v", err)
	}

	for _, bad := range []string{"", "localhost:8093", "ftp://x", "http://", "http://a b"} {
		if _, err := client.New(bad); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
}

// WithToken sends the bearer token on every request, streams included; the
// URL prefix is kept.
func TestClientTokenAndPrefix(t *testing.T) {
	env := apitest.Start(t, apitest.Options{})
	var mu sync.Mutex
	seen := map[string]string{}
	front := httptest.NewServer(http.StripPrefix("/audit", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = r.Header.Get("Authorization")
		mu.Unlock()
		env.API.ServeHTTP(w, r)
	})))
	defer front.Close()
	c := newClient(t, front.URL+"/audit/", client.WithToken("s3cret"), client.WithHTTPClient(&http.Client{}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := c.Append(ctx, client.AppendRequest{Kind: "other", Source: "s"}); err != nil {
		t.Fatal(err)
	}
	zero := int64(0)
	for _, err := range c.Tail(ctx, client.TailOptions{After: &zero}) {
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range []string{"/events", "/stream"} {
		if seen[p] != "Bearer s3cret" {
			t.Errorf("%s: Authorization %q", p, seen[p])
		}
	}
}
