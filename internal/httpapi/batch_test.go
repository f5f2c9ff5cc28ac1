package httpapi_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/auth"
	"github.com/audit-stream/audit-stream/internal/httpapi"
)

func TestBatchAppend(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	call(t, "POST", env.URL+"/events", "", ev) // event 1, so the batch starts at 2
	var items []string
	for i := 0; i < 100; i++ {
		items = append(items, fmt.Sprintf(`{"kind":"other","source":"s%d","payload":{"i":"%d"}}`, i%3, i))
	}
	r := call(t, "POST", env.URL+"/events/batch", "", "["+strings.Join(items, ",")+"]", "Content-Type", "application/json")
	if r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var got []struct {
		EventID  int64 `json:"event_id"`
		Source   string
		Payload  struct{ I string }
		PrevHash string `json:"prev_hash"`
		Hash     string
	}
	if err := json.Unmarshal(r.body, &got); err != nil || len(got) != 100 {
		t.Fatalf("answer: %v, %d events", err, len(got))
	}
	for i, e := range got {
		if e.EventID != int64(i+2) || e.Payload.I != fmt.Sprint(i) || e.Source != fmt.Sprintf("s%d", i%3) {
			t.Fatalf("event %d: %+v", i, e)
		}
		if i > 0 && e.PrevHash != got[i-1].Hash {
			t.Fatalf("event %d does not chain to the one before", i)
		}
	}
	nd := call(t, "POST", env.URL+"/events/batch", "", strings.Join(items[:3], "\n")+"\n\n", "Content-Type", "application/x-ndjson")
	if nd.status != 201 || strings.Count(string(nd.body), "event_id") != 3 {
		t.Fatalf("NDJSON: %d %s", nd.status, nd.body)
	}
	if c := count(t, env.Store); c != 104 {
		t.Fatalf("%d events, want 104", c)
	}
}

// TestBatchRejections: any bad item rejects the whole batch, naming it, and
// nothing is written.
func TestBatchRejections(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{API: httpapiOptionsSmallBatch()})
	producer, _ := mint(t, env.Store, auth.Spec{Roles: []string{"producer"}, Sources: []string{"billing"}}, nil)
	good := `{"kind":"other","source":"billing"}`
	many := "[" + strings.Repeat(good+",", 10000) + good + "]"
	cases := []struct {
		name, body, ctype string
		status            int
		detail            string
	}{
		{"not an array", good, "", 422, "must be a JSON array"},
		{"empty", "[]", "", 422, "empty"},
		{"empty body", "", "", 422, "must be a JSON array"},
		{"unknown kind in the middle", "[" + good + `,{"kind":"nope","source":"billing"},` + good + "]", "", 422, `item 1: kind: unknown kind "nope"`},
		{"missing source", "[" + good + `,` + good + `,{"kind":"other"}]`, "", 422, "item 2: source"},
		{"not an object", "[" + good + `,42]`, "", 422, "item 1:"},
		{"trailing comma", "[" + good + ",]", "", 422, "expected a value"},
		{"unclosed", "[" + good, "", 422, "not closed"},
		{"data after", "[" + good + "] x", "", 422, "data after the array"},
		{"syntax in item", "[" + good + `,{"kind":"other","source":"billing",}]`, "", 422, "item 1: invalid JSON at offset 72"},
		{"bad NDJSON line", good + "\n{\n", "application/x-ndjson", 422, "item 1:"},
		{"source not allowed", "[" + good + `,{"kind":"other","source":"payroll"}]`, "", 403, `item 1: source "payroll"`},
		{"too many", many, "", 413, "at most 10000"},
		{"body too large", "[" + strings.Repeat(good+",", 40000) + good + "]", "", 413, "exceeds"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hdr := []string{}
			if c.ctype != "" {
				hdr = []string{"Content-Type", c.ctype}
			}
			r := call(t, "POST", env.URL+"/events/batch", producer, c.body, hdr...)
			if r.status != c.status || !strings.Contains(r.detail(), c.detail) {
				t.Fatalf("%d %q, want %d naming %q", r.status, r.detail(), c.status, c.detail)
			}
			if n := count(t, env.Store); n != 0 {
				t.Fatalf("%d events written by a rejected batch", n)
			}
		})
	}
}

func httpapiOptionsSmallBatch() httpapi.Options {
	return httpapi.Options{BatchBodyLimit: 1 << 20}
}
