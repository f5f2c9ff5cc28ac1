package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/apitest"
)

type stored struct {
	EventID   int64           `json:"event_id"`
	Timestamp string          `json:"timestamp"`
	Kind      string          `json:"kind"`
	Source    string          `json:"source"`
	Payload   json.RawMessage `json:"payload"`
	PrevHash  string          `json:"prev_hash"`
	Hash      string          `json:"hash"`
}

func do(t testing.TB, method, url, body string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	r := call(t, method, url, "", body, hdr...)
	return r.status, r.header, r.body
}

func mustJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("bad JSON %q: %v", b, err)
	}
}

func stats(t testing.TB, url string) (count int64, latest *string) {
	t.Helper()
	code, _, b := do(t, "GET", url+"/stats", "")
	if code != 200 {
		t.Fatalf("stats: %d %s", code, b)
	}
	var s struct {
		Count       int64   `json:"count"`
		LastEventID int64   `json:"last_event_id"`
		LatestHash  *string `json:"latest_hash"`
	}
	mustJSON(t, b, &s)
	if s.Count != s.LastEventID {
		t.Fatalf("stats count %d != last_event_id %d", s.Count, s.LastEventID)
	}
	return s.Count, s.LatestHash
}

func verifyValid(t testing.TB, url string, wantChecked int64) {
	t.Helper()
	code, _, b := do(t, "GET", url+"/verify", "")
	if code != 200 {
		t.Fatalf("verify: %d %s", code, b)
	}
	var r struct {
		Valid        bool    `json:"valid"`
		Checked      int64   `json:"checked"`
		FirstBreakAt *int64  `json:"first_break_at"`
		Reason       *string `json:"reason"`
	}
	mustJSON(t, b, &r)
	if !r.Valid || r.Checked != wantChecked || r.FirstBreakAt != nil || r.Reason != nil {
		t.Fatalf("verify = %s, want valid with %d checked", b, wantChecked)
	}
}

// Every canonical vector, posted over HTTP in order to an empty log, must
// come back with exactly the original service's hash: ids, prev_hash links
// and the canonical payload included.
func TestCanonicalVectorsOverHTTP(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "canonical-vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Vectors []struct {
			Name        string `json:"name"`
			RequestBody string `json:"request_body"`
			EventID     int64  `json:"event_id"`
			Timestamp   string `json:"timestamp"`
			PrevHash    string `json:"prev_hash"`
			Canonical   string `json:"canonical"`
			Hash        string `json:"hash"`
		} `json:"vectors"`
	}
	mustJSON(t, raw, &file)
	env := apitest.Start(t, apitest.Options{})
	for _, v := range file.Vectors {
		// The producer sends the vector's timestamp, so the server hashes
		// exactly the vector's body.
		body := strings.TrimLeft(v.RequestBody, " \n")
		body = `{"timestamp":` + string(event.AppendString(nil, v.Timestamp)) + `,` + body[1:]
		code, hdr, b := do(t, "POST", env.URL+"/events", body, "Content-Type", "application/json")
		if code != 201 {
			t.Fatalf("%s: status %d: %s", v.Name, code, b)
		}
		if ct := hdr.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", v.Name, ct)
		}
		var got stored
		mustJSON(t, b, &got)
		if got.EventID != v.EventID || got.PrevHash != v.PrevHash || got.Hash != v.Hash || got.Timestamp != v.Timestamp {
			t.Fatalf("%s: got id %d prev %s hash %s, want id %d prev %s hash %s", v.Name, got.EventID, got.PrevHash, got.Hash, v.EventID, v.PrevHash, v.Hash)
		}
		// The served payload is the canonical payload: re-hashing what
		// was received gives the hash.
		e := event.Event{ID: got.EventID, Timestamp: got.Timestamp, Kind: got.Kind, Source: got.Source, Payload: got.Payload}
		e.PrevHash, _ = event.ParseHash(got.PrevHash)
		if body := e.AppendCanonicalBody(nil); string(body) != v.Canonical {
			t.Fatalf("%s: canonical body from the response\n got %s\nwant %s", v.Name, body, v.Canonical)
		}
		code, _, b2 := do(t, "GET", fmt.Sprintf("%s/events/%d", env.URL, got.EventID), "")
		if code != 200 || !bytes.Equal(bytes.TrimSpace(b2), bytes.TrimSpace(b)) {
			t.Fatalf("%s: GET /events/%d = %d %s, want the POST answer", v.Name, got.EventID, code, b2)
		}
	}
	verifyValid(t, env.URL, int64(len(file.Vectors)))
}

func TestServerAssignsTimestamp(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	code, _, b := do(t, "POST", env.URL+"/events", `{"kind":"other","source":"s"}`)
	if code != 201 {
		t.Fatalf("%d %s", code, b)
	}
	var got stored
	mustJSON(t, b, &got)
	// UTC with microseconds: 2026-05-15T03:14:15.123456+00:00
	if len(got.Timestamp) != 32 || got.Timestamp[10] != 'T' || got.Timestamp[19] != '.' || !strings.HasSuffix(got.Timestamp, "+00:00") {
		t.Fatalf("timestamp %q is not UTC with microseconds", got.Timestamp)
	}
	if string(got.Payload) != "{}" || got.PrevHash != strings.Repeat("0", 64) || got.EventID != 1 {
		t.Fatalf("first event = %s", b)
	}
}

// Each bad request is answered with a 4xx problem+json naming the problem,
// and none of them writes anything.
func TestRejections(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	deep := `{"kind":"other","source":"s","payload":` + strings.Repeat(`{"a":`, 70) + `1` + strings.Repeat(`}`, 70) + `}`
	cases := []struct {
		name, method, path, body string
		status                   int
		detail                   string // a substring the detail must contain
	}{
		{"invalid JSON", "POST", "/events", `{"kind":`, 422, ""},
		{"empty body", "POST", "/events", ``, 422, ""},
		{"whitespace body", "POST", "/events", "  \n ", 422, ""},
		{"top-level array", "POST", "/events", `[{"kind":"other","source":"s"}]`, 422, "object"},
		{"top-level string", "POST", "/events", `"x"`, 422, "object"},
		{"non-string kind", "POST", "/events", `{"kind":5,"source":"s"}`, 422, "kind"},
		{"non-string source", "POST", "/events", `{"kind":"other","source":["s"]}`, 422, "source"},
		{"non-string timestamp", "POST", "/events", `{"kind":"other","source":"s","timestamp":1}`, 422, "timestamp"},
		{"payload array", "POST", "/events", `{"kind":"other","source":"s","payload":[1]}`, 422, "payload"},
		{"payload string", "POST", "/events", `{"kind":"other","source":"s","payload":"x"}`, 422, "payload"},
		{"payload null", "POST", "/events", `{"kind":"other","source":"s","payload":null}`, 422, "payload"},
		{"unknown kind", "POST", "/events", `{"kind":"made_up","source":"s"}`, 422, "made_up"},
		{"missing kind", "POST", "/events", `{"source":"s"}`, 422, "kind"},
		{"unknown field", "POST", "/events", `{"kind":"other","source":"s","extra":1}`, 422, "extra"},
		{"empty source", "POST", "/events", `{"kind":"other","source":""}`, 422, "source"},
		{"missing source", "POST", "/events", `{"kind":"other"}`, 422, "source"},
		{"bad timestamp", "POST", "/events", `{"kind":"other","source":"s","timestamp":"yesterday"}`, 422, "timestamp"},
		{"timestamp free text", "POST", "/events", `{"kind":"other","source":"s","timestamp":"15 May 2026"}`, 422, "2026-05-15T03:14:15.123456+00:00"},
		{"NaN", "POST", "/events", `{"kind":"other","source":"s","payload":{"x":NaN}}`, 422, ""},
		{"Infinity", "POST", "/events", `{"kind":"other","source":"s","payload":{"x":Infinity}}`, 422, ""},
		{"-Infinity", "POST", "/events", `{"kind":"other","source":"s","payload":{"x":-Infinity}}`, 422, ""},
		{"number beyond double range", "POST", "/events", `{"kind":"other","source":"s","payload":{"x":1e400}}`, 422, ""},
		{"nesting too deep", "POST", "/events", deep, 422, "nesting"},
		{"lone surrogate", "POST", "/events", `{"kind":"other","source":"s","payload":{"x":"\ud800"}}`, 422, "surrogate"},
		{"invalid UTF-8", "POST", "/events", "{\"kind\":\"other\",\"source\":\"s\",\"payload\":{\"x\":\"\xff\"}}", 422, "UTF-8"},
		{"trailing garbage", "POST", "/events", `{"kind":"other","source":"s"} x`, 422, ""},
		{"body over limit", "POST", "/events", `{"kind":"other","source":"s","payload":{"x":"` + strings.Repeat("a", 1<<20) + `"}}`, 413, "limit"},
		{"query limit zero", "GET", "/events?limit=0", "", 400, "limit"},
		{"query limit too big", "GET", "/events?limit=100001", "", 400, "limit"},
		{"query limit not a number", "GET", "/events?limit=ten", "", 400, "limit"},
		{"query unknown kind", "GET", "/events?kind=made_up", "", 422, "made_up"},
		{"get non-integer id", "GET", "/events/abc", "", 422, "abc"},
		{"get zero id", "GET", "/events/0", "", 404, "no event with id 0"},
		{"get negative id", "GET", "/events/-3", "", 404, "no event with id -3"},
		{"get id beyond int64", "GET", "/events/99999999999999999999", "", 404, "no event"},
		{"unknown query parameter", "GET", "/events?knd=other", "", 400, `"knd" (did you mean "kind"?)`},
		{"export takes no order", "GET", "/export?order=asc", "", 400, `unknown query parameter "order"`},
		{"get unknown id", "GET", "/events/99", "", 404, "99"},
		{"stream after beyond head", "GET", "/stream?after=5", "", 400, "beyond"},
		{"stream bad after", "GET", "/stream?after=x", "", 400, "after"},
		{"stream unknown kind", "GET", "/stream?kind=made_up", "", 422, "made_up"},
		{"unknown endpoint", "GET", "/nope", "", 404, "/nope"},
		{"wrong method on events", "DELETE", "/events", "", 405, "GET, HEAD, POST"},
		{"wrong method on an event", "POST", "/events/1", "", 405, "GET"},
		{"wrong method on healthz", "POST", "/healthz", "", 405, "GET"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, b := do(t, tc.method, env.URL+tc.path, tc.body)
			if code != tc.status {
				t.Fatalf("status %d, want %d: %s", code, tc.status, b)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q, want application/problem+json", ct)
			}
			var p struct {
				Status int    `json:"status"`
				Detail string `json:"detail"`
				Title  string `json:"title"`
			}
			mustJSON(t, b, &p)
			if p.Status != tc.status || p.Detail == "" || p.Title == "" {
				t.Fatalf("problem %s lacks status/title/detail", b)
			}
			if !strings.Contains(p.Detail, tc.detail) {
				t.Fatalf("detail %q does not mention %q", p.Detail, tc.detail)
			}
		})
	}
	if n, latest := stats(t, env.URL); n != 0 || latest != nil {
		t.Fatalf("after rejections: count %d latest %v, want an empty log", n, latest)
	}
	verifyValid(t, env.URL, 0)
}

func TestQuery(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	kinds := []string{"request_allowed", "request_denied", "watch_created"}
	sources := []string{"a", "b"}
	for i := 1; i <= 30; i++ {
		body := fmt.Sprintf(`{"kind":%q,"source":%q,"payload":{"i":%d}}`, kinds[i%3], sources[i%2], i)
		if code, _, b := do(t, "POST", env.URL+"/events", body); code != 201 {
			t.Fatalf("%d %s", code, b)
		}
	}
	ids := func(path string) []int64 {
		code, _, b := do(t, "GET", env.URL+path, "")
		if code != 200 {
			t.Fatalf("%s: %d %s", path, code, b)
		}
		var evs []stored
		mustJSON(t, b, &evs)
		out := []int64{}
		for _, e := range evs {
			out = append(out, e.EventID)
		}
		return out
	}
	cases := []struct {
		path string
		want []int64
	}{
		{"/events?limit=3", []int64{28, 29, 30}},
		{"/events?kind=request_denied&limit=4", []int64{19, 22, 25, 28}},
		// kind and source combine with AND (the original ignored source
		// when kind was given).
		{"/events?kind=request_denied&source=a&limit=4", []int64{4, 10, 16, 22, 28}[1:]},
		{"/events?source=b&limit=2", []int64{27, 29}},
		{"/events?kind=request_allowed&kind=watch_created&limit=4", []int64{26, 27, 29, 30}},
		{"/events?source=nobody", []int64{}},
	}
	for _, tc := range cases {
		if got := ids(tc.path); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s = %v, want %v", tc.path, got, tc.want)
		}
	}
	if got := ids("/events"); len(got) != 30 || got[0] != 1 {
		t.Errorf("default query returned %d events starting at %v", len(got), got)
	}
}

func TestIndexAndHealth(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	code, _, b := do(t, "GET", env.URL+"/healthz", "")
	if code != 200 || strings.TrimSpace(string(b)) != `{"status":"ok"}` {
		t.Fatalf("healthz: %d %s", code, b)
	}
	code, _, b = do(t, "GET", env.URL+"/", "")
	var idx struct {
		Name        string            `json:"name"`
		Version     string            `json:"version"`
		Description string            `json:"description"`
		Endpoints   map[string]string `json:"endpoints"`
	}
	mustJSON(t, b, &idx)
	if code != 200 || idx.Name != "audit-stream" || idx.Version == "" || idx.Description == "" || len(idx.Endpoints) == 0 {
		t.Fatalf("index: %d %s", code, b)
	}
}

// Appends from many goroutines at once get distinct, gap-free ids and one
// unbroken chain.
func TestConcurrentAppends(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	const producers, each = 16, 25
	var wg sync.WaitGroup
	seen := make(chan int64, producers*each)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				code, _, b := do(t, "POST", env.URL+"/events", fmt.Sprintf(`{"kind":"other","source":"p%d","payload":{"i":%d}}`, p, i))
				if code != 201 {
					t.Errorf("%d %s", code, b)
					return
				}
				var e stored
				mustJSON(t, b, &e)
				seen <- e.EventID
			}
		}()
	}
	wg.Wait()
	close(seen)
	got := map[int64]bool{}
	for id := range seen {
		if got[id] {
			t.Fatalf("id %d given twice", id)
		}
		got[id] = true
	}
	for id := int64(1); id <= producers*each; id++ {
		if !got[id] {
			t.Fatalf("id %d missing", id)
		}
	}
	verifyValid(t, env.URL, producers*each)
}

// Stop the server, start it again on the same data: the chain continues.
func TestRestartContinuesChain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := apitest.Start(t, apitest.Options{Dir: dir})
	var last stored
	for i := range 5 {
		_, _, b := do(t, "POST", env.URL+"/events", fmt.Sprintf(`{"kind":"other","source":"s","payload":{"i":%d}}`, i))
		mustJSON(t, b, &last)
	}
	env.Stop()
	env = apitest.Start(t, apitest.Options{Dir: dir})
	code, _, b := do(t, "POST", env.URL+"/events", `{"kind":"other","source":"s"}`)
	var next stored
	mustJSON(t, b, &next)
	if code != 201 || next.EventID != 6 || next.PrevHash != last.Hash {
		t.Fatalf("after restart: %d %s; want id 6 linked to %s", code, b, last.Hash)
	}
	verifyValid(t, env.URL, 6)
}

// The data directory may hold other files; the server leaves them alone.
func TestForeignFilesUntouched(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	foreign := filepath.Join(dir, "backup-2026.tar")
	if err := os.WriteFile(foreign, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := apitest.Start(t, apitest.Options{Dir: dir})
	do(t, "POST", env.URL+"/events", `{"kind":"other","source":"s"}`)
	env.Stop()
	if b, err := os.ReadFile(foreign); err != nil || string(b) != "keep me" {
		t.Fatalf("foreign file changed: %q %v", b, err)
	}
}

// GET /metrics serves Prometheus text with the sequencer's commits, the head,
// and requests counted by route pattern (not by raw path).
func TestMetrics(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	for i := range 3 {
		if code, _, b := do(t, "POST", env.URL+"/events", fmt.Sprintf(`{"kind":"other","source":"s","payload":{"i":%d}}`, i)); code != 201 {
			t.Fatalf("%d %s", code, b)
		}
	}
	do(t, "GET", env.URL+"/events/2", "")
	do(t, "GET", env.URL+"/events/3", "")
	do(t, "POST", env.URL+"/events", `{"kind":"made_up","source":"s"}`)
	code, hdr, b := do(t, "GET", env.URL+"/metrics", "")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics: %d %s", code, hdr.Get("Content-Type"))
	}
	body := string(b)
	for _, want := range []string{
		"audit_stream_head_event_id 3\n",
		"audit_stream_committed_events_total 3\n",
		`audit_stream_http_requests_total{code="201",route="POST /events"} 3`,
		`audit_stream_http_requests_total{code="422",route="POST /events"} 1`,
		`audit_stream_http_requests_total{code="200",route="GET /events/{id}"} 2`,
		"audit_stream_auth_denied_total 0\n",
		"audit_stream_streams_open 0\n",
		"audit_stream_checkpoint_tree_size ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, `route="/events/2"`) {
		t.Error("metrics label a raw path")
	}
}
