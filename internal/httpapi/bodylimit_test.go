package httpapi_test

import (
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/auth"
	"github.com/audit-stream/audit-stream/internal/httpapi"
)

// Every body is capped, at the limit of its route: BodyLimit for single
// events, BatchBodyLimit for batches (larger), 64 KiB for token requests. A
// body over its route's limit is a 413 that names the limit, and nothing is
// written; a body within it passes even when it is over another route's.
func TestBodyLimitPerRoute(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{API: httpapi.Options{BodyLimit: 4 << 10, BatchBodyLimit: 64 << 10}})
	admin, _ := mint(t, env.Store, auth.Spec{Roles: []string{"admin"}}, nil)
	producer, _ := mint(t, env.Store, auth.Spec{Roles: []string{"producer"}, Sources: []string{"s"}}, nil)
	event := func(pad int) string {
		return `{"kind":"other","source":"s","payload":{"pad":"` + strings.Repeat("x", pad) + `"}}`
	}
	batch := func(items, pad int) string {
		return "[" + strings.Repeat(event(pad)+",", items-1) + event(pad) + "]"
	}
	tokenReq := func(pad int) string {
		return `{"roles":["reader"],"name":"` + strings.Repeat("n", pad) + `"}`
	}
	for _, c := range []struct {
		name, path, token, body string
		status                  int
		detail                  string
	}{
		{"event within the single limit", "/events", producer, event(3 << 10), 201, ""},
		{"event over the single limit", "/events", producer, event(5 << 10), 413, "limit of 4096 bytes"},
		{"batch over the single limit, within the batch limit", "/events/batch", producer, batch(8, 3<<10), 201, ""},
		{"batch over the batch limit", "/events/batch", producer, batch(20, 4<<10), 413, "limit of 65536 bytes"},
		{"token request over 64 KiB", "/admin/tokens", admin, tokenReq(65 << 10), 413, "limit of 65536 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := count(t, env.Store)
			r := call(t, "POST", env.URL+c.path, c.token, c.body, "Content-Type", "application/json")
			if r.status != c.status || !strings.Contains(r.detail(), c.detail) {
				t.Fatalf("%d %s, want %d naming %q", r.status, r.body, c.status, c.detail)
			}
			if r.status == 413 && r.header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("413 as %q", r.header.Get("Content-Type"))
			}
			if after := count(t, env.Store); r.status != 201 && after != before {
				t.Fatalf("%d events written by a refused request", after-before)
			}
		})
	}
}
