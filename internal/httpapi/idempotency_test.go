package httpapi_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/auth"
)

// ack is the part of a ack event that identifies it.
type ack struct {
	EventID int64  `json:"event_id"`
	Hash    string `json:"hash"`
}

// TestIdempotentConcurrent: 32 goroutines send the same key at once from
// their own connections: exactly one event, 31 replays with the same hash.
func TestIdempotentConcurrent(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	secret, _ := mint(t, env.Store, auth.Spec{Roles: []string{"producer"}, Sources: []string{"billing"}}, nil)
	const n = 32
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		results = make([]resp, n)
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = call(t, "POST", env.URL+"/events", secret, ev, "Idempotency-Key", "order-7731")
		}()
	}
	close(start)
	wg.Wait()
	created, replayed := 0, 0
	var first ack
	for i, r := range results {
		var e ack
		if err := json.Unmarshal(r.body, &e); err != nil {
			t.Fatalf("answer %d: %d %s", i, r.status, r.body)
		}
		switch {
		case r.status == 201 && r.header.Get("Idempotent-Replayed") == "":
			created++
		case r.status == 200 && r.header.Get("Idempotent-Replayed") == "true":
			replayed++
		default:
			t.Fatalf("answer %d: %d %v", i, r.status, r.header)
		}
		if first.Hash == "" {
			first = e
		}
		if e != first {
			t.Fatalf("answer %d is event %+v, another is %+v", i, e, first)
		}
	}
	if created != 1 || replayed != n-1 {
		t.Fatalf("%d created, %d replayed; want 1 and %d", created, replayed, n-1)
	}
	if c := count(t, env.Store); c != 1 {
		t.Fatalf("%d events in the log, want 1", c)
	}
}

// TestIdempotentAcrossRestart: the key is durable with its event.
func TestIdempotentAcrossRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := apitest.Start(t, apitest.Options{Dir: dir})
	secret, _ := mint(t, env.Store, auth.Spec{Roles: []string{"producer"}, Sources: []string{"billing"}}, nil)
	r1 := call(t, "POST", env.URL+"/events", secret, ev, "Idempotency-Key", "k-restart")
	if r1.status != 201 {
		t.Fatalf("first: %d %s", r1.status, r1.body)
	}
	b1 := call(t, "POST", env.URL+"/events/batch", secret, "["+ev+","+ev+"]", "Idempotency-Key", "k-batch")
	if b1.status != 201 {
		t.Fatalf("batch: %d %s", b1.status, b1.body)
	}
	env.Stop()
	env = apitest.Start(t, apitest.Options{Dir: dir})
	// Same request, re-encoded with another member order and spacing.
	r2 := call(t, "POST", env.URL+"/events", secret, `{ "payload": {"n": 1}, "source": "billing", "kind": "other" }`, "Idempotency-Key", "k-restart")
	if r2.status != 200 || r2.header.Get("Idempotent-Replayed") != "true" || string(r2.body) != string(r1.body) {
		t.Fatalf("retry after restart: %d %s\nwant the original %s", r2.status, r2.body, r1.body)
	}
	b2 := call(t, "POST", env.URL+"/events/batch", secret, "["+ev+","+ev+"]", "Idempotency-Key", "k-batch")
	if b2.status != 200 || string(b2.body) != string(b1.body) {
		t.Fatalf("batch retry after restart: %d %s\nwant %s", b2.status, b2.body, b1.body)
	}
	if c := count(t, env.Store); c != 3 {
		t.Fatalf("%d events, want 3", c)
	}
}

// TestIdempotencyRefusals: key reuse with another body, and bad keys.
func TestIdempotencyRefusals(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	p1, _ := mint(t, env.Store, auth.Spec{Roles: []string{"producer"}, Sources: []string{"billing"}}, nil)
	p2, _ := mint(t, env.Store, auth.Spec{Roles: []string{"producer"}, Sources: []string{"billing"}}, nil)
	if r := call(t, "POST", env.URL+"/events", p1, ev, "Idempotency-Key", "k1"); r.status != 201 {
		t.Fatalf("first: %d", r.status)
	}
	cases := []struct {
		name, path, body, key string
		status                int
		detail                string
	}{
		{"other body", "/events", `{"kind":"other","source":"billing","payload":{"n":2}}`, "k1", 422, "already used for a different request"},
		{"batch with a single's key", "/events/batch", "[" + ev + "]", "k1", 422, "already used"},
		{"space in key", "/events", ev, "a b", 400, "printable ASCII"},
		{"too long", "/events", ev, strings.Repeat("k", 256), 400, "1 to 255"},
		{"control char", "/events", ev, "a\tb", 400, "printable ASCII"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := call(t, "POST", env.URL+c.path, p1, c.body, "Idempotency-Key", c.key)
			if r.status != c.status || !strings.Contains(r.detail(), c.detail) {
				t.Fatalf("%d %q, want %d naming %q", r.status, r.detail(), c.status, c.detail)
			}
		})
	}
	if c := count(t, env.Store); c != 1 {
		t.Fatalf("%d events after refusals, want 1", c)
	}
	// Keys are scoped to the token: another producer's k1 is its own.
	if r := call(t, "POST", env.URL+"/events", p2, ev, "Idempotency-Key", "k1"); r.status != 201 {
		t.Fatalf("same key, other token: %d %s", r.status, r.body)
	}
}
