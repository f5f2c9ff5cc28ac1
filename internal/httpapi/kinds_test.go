package httpapi_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/httpapi"
	"github.com/audit-stream/audit-stream/internal/kinds"
	"github.com/audit-stream/audit-stream/verify"
)

const testKinds = `
kinds:
  - name: payment_approved
    description: A payment was approved.
    schema:
      type: object
      required: [amount, currency]
      properties:
        amount: {type: number, minimum: 0}
        currency: {type: string, pattern: "^[A-Z]{3}$"}
        lines: {type: array, items: {type: object, required: [sku]}}
  - name: request_denied
    schema: {type: object, required: [rule]}
  - name: legacy_payment
    description: Payments before 2026.
    retired: true
`

func testCatalog(t testing.TB, data string) *kinds.Catalog {
	t.Helper()
	c, err := kinds.Parse("kinds.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type problemBody struct {
	Detail string
	Errors []struct {
		Loc  []any
		Msg  string
		Type string
	}
}

// locs returns each error as its loc followed by its type.
func (p problemBody) locs() [][]any {
	var out [][]any
	for _, e := range p.Errors {
		loc := append([]any(nil), e.Loc...)
		for i, v := range loc {
			if f, ok := v.(float64); ok {
				loc[i] = int(f)
			}
		}
		out = append(out, append(loc, e.Type))
	}
	return out
}

func TestKindSchemasOverHTTP(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{API: httpapi.Options{Kinds: testCatalog(t, testKinds)}})
	good := `{"kind":"payment_approved","source":"billing","payload":{"amount":12.5,"currency":"EUR"}}`
	bad := `{"kind":"payment_approved","source":"billing","payload":{"amount":-5,"lines":[{"sku":"a"},{}]}}`
	for _, tc := range []struct {
		name, path, ctype, body string
		status                  int
		want                    [][]any // loc..., type
		detail                  string  // a substring of the detail
	}{
		{"valid", "/events", "application/json", good, 201, nil, ""},
		{"built-in kind without its rule", "/events", "application/json", `{"kind":"request_denied","source":"gw","payload":{"user":"u"}}`, 422,
			[][]any{{"body", "payload", "rule", "missing"}}, "/payload/rule: required by the schema but missing (schema #/required)"},
		{"built-in kind without a schema", "/events", "application/json", `{"kind":"other","source":"gw","payload":{"anything":[1]}}`, 201, nil, ""},
		{"every failure, by pointer", "/events", "application/json", bad, 422, [][]any{
			{"body", "payload", "amount", "schema_minimum"},
			{"body", "payload", "currency", "missing"},
			{"body", "payload", "lines", 1, "sku", "missing"},
		}, "/payload/amount: minimum: got -5, want 0"},
		{"retired kind", "/events", "application/json", `{"kind":"legacy_payment","source":"billing"}`, 422,
			[][]any{{"body", "kind", "value_error"}}, `kind "legacy_payment" is retired`},
		{"unknown kind suggests a file kind", "/events", "application/json", `{"kind":"payment_aproved","source":"billing"}`, 422,
			[][]any{{"body", "kind", "value_error"}}, `did you mean "payment_approved"?`},
		{"a parse failure comes before the schema", "/events", "application/json", `{"kind":"payment_approved","source":"","payload":{}}`, 422,
			[][]any{{"body", "source", "string_too_short"}}, "source: must not be empty"},
		{"batch valid", "/events/batch", "application/json", "[" + good + "," + good + "]", 201, nil, ""},
		{"batch: the failing item's index", "/events/batch", "application/json", "[" + good + "," + good + "," + bad + "]", 422, [][]any{
			{"body", 2, "payload", "amount", "schema_minimum"},
			{"body", 2, "payload", "currency", "missing"},
			{"body", 2, "payload", "lines", 1, "sku", "missing"},
		}, "item 2: /payload/amount: minimum"},
		{"batch: parse and schema failures together", "/events/batch", "application/json", `[{"kind":"other"},` + bad + "]", 422, [][]any{
			{"body", 0, "source", "missing"},
			{"body", 1, "payload", "amount", "schema_minimum"},
			{"body", 1, "payload", "currency", "missing"},
			{"body", 1, "payload", "lines", 1, "sku", "missing"},
		}, "item 0: source"},
		{"NDJSON batch", "/events/batch", "application/x-ndjson", good + "\n" + `{"kind":"legacy_payment","source":"b"}` + "\n", 422,
			[][]any{{"body", 1, "kind", "value_error"}}, `item 1: kind: kind "legacy_payment" is retired`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := count(t, env.Store)
			r := call(t, "POST", env.URL+tc.path, "", tc.body, "Content-Type", tc.ctype)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status != 422 {
				return
			}
			if n := count(t, env.Store); n != before {
				t.Fatalf("a refused request stored %d events", n-before)
			}
			var p problemBody
			if err := json.Unmarshal(r.body, &p); err != nil {
				t.Fatal(err)
			}
			if got := p.locs(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("errors\n got %v\nwant %v", got, tc.want)
			}
			if !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("detail %q, want %q in it", p.Detail, tc.detail)
			}
		})
	}

	// GET /kinds shows the schemas and the retired kind.
	r := call(t, "GET", env.URL+"/kinds", "", "")
	var list struct{ Kinds []kinds.Kind }
	if err := json.Unmarshal(r.body, &list); err != nil {
		t.Fatal(err)
	}
	byName := map[string]kinds.Kind{}
	for _, k := range list.Kinds {
		byName[k.Name] = k
	}
	if len(list.Kinds) != 24 || !byName["legacy_payment"].Retired || string(byName["request_denied"].Schema) != `{"required":["rule"],"type":"object"}` ||
		byName["request_denied"].Description == "" || !bytes.Contains(byName["payment_approved"].Schema, []byte(`"minimum":0`)) || byName["other"].Schema != nil {
		t.Errorf("GET /kinds: %s", r.body)
	}
	// A retired kind still filters: its old events stay findable by kind.
	if r := call(t, "GET", env.URL+"/events?kind=legacy_payment", "", ""); r.status != 200 {
		t.Errorf("filter on a retired kind: %d %s", r.status, r.body)
	}
	if r := call(t, "GET", env.URL+"/events?kind=payment_approved&limit=100", "", ""); r.status != 200 || bytes.Count(r.body, []byte(`"event_id"`)) != 3 {
		t.Errorf("filter on a file kind: %d %s", r.status, r.body)
	}
}

// Verification never consults the kinds: a log whose kinds file lost a kind
// (or all of them) still verifies, serves, exports and replays the events of
// that kind. Only new appends of it, and filters naming it, are refused.
func TestRemovedKindNeverBreaksVerification(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := apitest.Start(t, apitest.Options{Dir: dir, API: httpapi.Options{Kinds: testCatalog(t, testKinds+`
  - name: shipment_sent
    description: A shipment left the warehouse.
`)}})
	for _, body := range []string{
		`{"kind":"shipment_sent","source":"wh","payload":{"box":1}}`,
		`{"kind":"payment_approved","source":"billing","payload":{"amount":1,"currency":"EUR"}}`,
		`{"kind":"other","source":"x"}`,
		`{"kind":"shipment_sent","source":"wh","payload":{"box":2}}`,
	} {
		if r := call(t, "POST", first.URL+"/events", "", body, "Content-Type", "application/json"); r.status != 201 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	first.Stop()

	for _, tc := range []struct {
		name string
		cat  *kinds.Catalog
	}{
		{"kind removed from the file", testCatalog(t, testKinds)},
		{"no kinds file at all", nil},
		{"schema tightened so old payloads fail it", testCatalog(t, `
kinds:
  - {name: shipment_sent, description: A shipment left the warehouse., schema: {required: [carrier]}}
  - {name: payment_approved, description: A payment was approved., schema: false}
`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := apitest.Start(t, apitest.Options{Dir: dir, API: httpapi.Options{Kinds: tc.cat}})
			defer env.Stop()
			r := call(t, "GET", env.URL+"/verify", "", "")
			var rep struct {
				Valid   bool
				Checked int
			}
			if json.Unmarshal(r.body, &rep); r.status != 200 || !rep.Valid || rep.Checked != 4 {
				t.Fatalf("/verify: %d %s", r.status, r.body)
			}
			if r := call(t, "GET", env.URL+"/events/1", "", ""); r.status != 200 || !bytes.Contains(r.body, []byte(`"kind":"shipment_sent"`)) {
				t.Fatalf("GET /events/1: %d %s", r.status, r.body)
			}
			if r := call(t, "GET", env.URL+"/events?source=wh", "", ""); r.status != 200 || bytes.Count(r.body, []byte(`"shipment_sent"`)) != 2 {
				t.Fatalf("query by source: %d %s", r.status, r.body)
			}
			// The export verifies offline, event by event.
			r = call(t, "GET", env.URL+"/export?after=0", "", "")
			chain := verify.NewChain()
			sc := bufio.NewScanner(bytes.NewReader(r.body))
			for sc.Scan() {
				e, err := event.ParseStored(sc.Bytes())
				if err != nil {
					t.Fatal(err)
				}
				if err := chain.Add(&e); err != nil {
					t.Fatalf("export: %v", err)
				}
			}
			if chain.Checked() != 4 {
				t.Fatalf("export checked %d events", chain.Checked())
			}
			// The live tail replays them too.
			stream := readStream(t, env.URL+"/stream?after=0", 4)
			if !strings.Contains(stream, "event: shipment_sent\nid: 4\n") {
				t.Fatalf("replay:\n%s", stream)
			}
		})
	}
}

// readStream reads /stream until n events have arrived.
func readStream(t *testing.T, url string, n int) string {
	t.Helper()
	res, err := apitest.Client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(res.Body)
	for seen := 0; seen < n && sc.Scan(); {
		b.WriteString(sc.Text() + "\n")
		if strings.HasPrefix(sc.Text(), "data: ") {
			seen++
		}
	}
	return b.String()
}

// Large payloads of kinds with a schema are checked a bounded number at a
// time: with every slot taken, such an append is a 503 with Retry-After,
// while small payloads and kinds without a schema go on.
func TestHeavySchemaChecksBounded(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{API: httpapi.Options{Kinds: testCatalog(t, testKinds)}})
	big := strings.Repeat("x", httpapi.HeavyCheckBytes)
	large := `{"kind":"payment_approved","source":"b","payload":{"amount":1,"currency":"EUR","memo":"` + big + `"}}`
	small := `{"kind":"payment_approved","source":"b","payload":{"amount":1,"currency":"EUR"}}`
	noSchema := `{"kind":"other","source":"b","payload":{"memo":"` + big + `"}}`
	release := httpapi.HoldHeavyChecks(env.API)
	for _, tc := range []struct {
		name, path, body string
		status           int
	}{
		{"large payload with a schema", "/events", large, 503},
		{"large batch while kinds have schemas", "/events/batch", "[" + noSchema + "]", 503},
		{"small payload with a schema", "/events", small, 201},
		{"small batch", "/events/batch", "[" + small + "," + small + "]", 201},
		{"large payload without a schema", "/events", noSchema, 201},
	} {
		r := call(t, "POST", env.URL+tc.path, "", tc.body, "Content-Type", "application/json")
		if r.status != tc.status {
			t.Errorf("%s: %d, want %d: %.200s", tc.name, r.status, tc.status, r.body)
		}
		if tc.status == 503 && (r.header.Get("Retry-After") == "" || !strings.Contains(r.detail(), "schemas")) {
			t.Errorf("%s: Retry-After %q, detail %q", tc.name, r.header.Get("Retry-After"), r.detail())
		}
	}
	release()
	if r := call(t, "POST", env.URL+"/events", "", large, "Content-Type", "application/json"); r.status != 201 {
		t.Errorf("large payload with a slot free: %d %.200s", r.status, r.body)
	}
	// The slots are returned on refusals too.
	bad := strings.Replace(large, `"amount":1`, `"amount":-1`, 1)
	for range 3 * runtime.GOMAXPROCS(0) {
		if r := call(t, "POST", env.URL+"/events", "", bad, "Content-Type", "application/json"); r.status != 422 {
			t.Fatalf("a failing large payload: %d", r.status)
		}
	}
	if r := call(t, "POST", env.URL+"/events/batch", "", "["+large+"]", "Content-Type", "application/json"); r.status != 201 {
		t.Errorf("large batch with a slot free: %d %.200s", r.status, r.body)
	}
}
