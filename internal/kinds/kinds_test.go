package kinds_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/kinds"
)

const paymentsYAML = `
# kinds this deployment adds
kinds:
  - name: payment_approved
    description: A payment was approved.
    schema:
      type: object
      required: [amount, currency]
      additionalProperties: false
      properties:
        amount: {type: number, minimum: 0}
        currency: {type: string, pattern: "^[A-Z]{3}$"}
        when: {type: string, format: date-time}
        lines:
          type: array
          items: {type: object, required: [sku], properties: {sku: {type: string, minLength: 1}}}
        ref: {oneOf: [{type: string}, {type: integer}]}
        "a/b~c": {type: boolean}
        big: {type: integer}
  - name: request_denied        # a built-in kind: the file adds a schema
    schema: {type: object, required: [rule]}
  - name: legacy_payment
    description: Payments before 2026; kept so old events stay findable by kind.
    retired: true
`

func mustParse(t *testing.T, name, data string) *kinds.Catalog {
	t.Helper()
	c, err := kinds.Parse(name, []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type failure struct {
	Loc  []any
	Type string
	Msg  string // a substring of the message
}

func failures(verr *event.ValidationError) []failure {
	if verr == nil {
		return nil
	}
	var out []failure
	for _, e := range verr.All() {
		out = append(out, failure{Loc: e.Location(), Type: e.ErrorType(), Msg: e.Message()})
	}
	return out
}

func TestSchemaFailures(t *testing.T) {
	c := mustParse(t, "kinds.yaml", paymentsYAML)
	ok := `"amount":1,"currency":"EUR"`
	for _, tc := range []struct {
		name, kind, payload string
		want                []failure
	}{
		{"valid", "payment_approved", `{` + ok + `}`, nil},
		{"valid with everything", "payment_approved", `{` + ok + `,"when":"2026-05-15T03:14:15Z","lines":[{"sku":"a"}],"ref":7,"a/b~c":true}`, nil},
		{"no schema: anything goes", "other", `{"x":[1,2,{"y":null}]}`, nil},
		{"required, one failure per member", "payment_approved", `{}`, []failure{
			{[]any{"payload", "amount"}, "missing", "/payload/amount: required by the schema but missing (schema #/required)"},
			{[]any{"payload", "currency"}, "missing", "/payload/currency: required by the schema but missing (schema #/required)"},
		}},
		{"minimum", "payment_approved", `{"amount":-1,"currency":"EUR"}`, []failure{
			{[]any{"payload", "amount"}, "schema_minimum", "/payload/amount: minimum: got -1, want 0 (schema #/properties/amount/minimum)"},
		}},
		{"type", "payment_approved", `{"amount":"1","currency":"EUR"}`, []failure{
			{[]any{"payload", "amount"}, "schema_type", "/payload/amount: got string, want number (schema #/properties/amount/type)"},
		}},
		{"pattern", "payment_approved", `{"amount":1,"currency":"eur"}`, []failure{
			{[]any{"payload", "currency"}, "schema_pattern", "/payload/currency: 'eur' does not match pattern '^[A-Z]{3}$'"},
		}},
		{"format is asserted", "payment_approved", `{` + ok + `,"when":"yesterday"}`, []failure{
			{[]any{"payload", "when"}, "schema_format", "/payload/when: 'yesterday' is not valid date-time"},
		}},
		{"additional property", "payment_approved", `{` + ok + `,"extra":1}`, []failure{
			{[]any{"payload", "extra"}, "extra_forbidden", "/payload/extra: not allowed by the schema (schema #/additionalProperties)"},
		}},
		{"array index is an integer in loc", "payment_approved", `{` + ok + `,"lines":[{"sku":"a"},{},{"sku":""}]}`, []failure{
			{[]any{"payload", "lines", 1, "sku"}, "missing", "/payload/lines/1/sku: required by the schema but missing (schema #/properties/lines/items/required)"},
			{[]any{"payload", "lines", 2, "sku"}, "schema_minLength", "/payload/lines/2/sku: minLength"},
		}},
		{"oneOf is one failure naming its branches", "payment_approved", `{` + ok + `,"ref":1.5}`, []failure{
			{[]any{"payload", "ref"}, "schema_oneOf", "'oneOf' failed, none matched: got number, want string (#/properties/ref/oneOf/0/type); got number, want integer (#/properties/ref/oneOf/1/type)"},
		}},
		{"pointer escapes ~ and /", "payment_approved", `{` + ok + `,"a/b~c":1}`, []failure{
			{[]any{"payload", "a/b~c"}, "schema_type", "/payload/a~1b~0c: got number, want boolean"},
		}},
		{"several failures, sorted by pointer", "payment_approved", `{"amount":-5,"currency":"x","extra":true}`, []failure{
			{[]any{"payload", "amount"}, "schema_minimum", "/payload/amount: minimum"},
			{[]any{"payload", "currency"}, "schema_pattern", "/payload/currency: 'x' does not match"},
			{[]any{"payload", "extra"}, "extra_forbidden", "/payload/extra: not allowed"},
		}},
		{"schema on a built-in kind", "request_denied", `{"user":"u-17"}`, []failure{
			{[]any{"payload", "rule"}, "missing", "/payload/rule: required by the schema but missing"},
		}},
		{"built-in kind passing its schema", "request_denied", `{"rule":"no-pii-export"}`, nil},
		{"retired kind", "legacy_payment", `{}`, []failure{
			{[]any{"kind"}, "value_error", `kind: kind "legacy_payment" is retired`},
		}},
		{"number too long to check", "payment_approved", `{` + ok + `,"big":` + strings.Repeat("9", kinds.MaxNumberLen+1) + `}`, []failure{
			{[]any{"payload", "big"}, "schema_number_too_long", "/payload/big: a number of 1001 characters is longer than a schema check takes (1000); send it as a string"},
		}},
		{"long number within the bound is checked", "payment_approved", `{` + ok + `,"big":` + strings.Repeat("9", kinds.MaxNumberLen) + `}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := event.ParseRequest([]byte(`{"kind":"`+tc.kind+`","source":"s","payload":`+tc.payload+`}`), c.Set())
			if err != nil {
				t.Fatal(err)
			}
			got := failures(c.Check(&req))
			if len(got) != len(tc.want) {
				t.Fatalf("got %d failures, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				g := got[i]
				if !reflect.DeepEqual(g.Loc, w.Loc) || g.Type != w.Type || !strings.Contains(g.Msg, w.Msg) {
					t.Errorf("failure %d:\n got %v %s %q\nwant %v %s %q", i, g.Loc, g.Type, g.Msg, w.Loc, w.Type, w.Msg)
				}
			}
		})
	}
}

// The same payload gets the same answer every time, although the library
// walks objects in map order.
func TestSchemaFailuresStable(t *testing.T) {
	c := mustParse(t, "kinds.yaml", paymentsYAML)
	req := event.Request{Kind: "payment_approved", Payload: []byte(`{"a/b~c":0,"amount":-1,"currency":1,"extra":1,"lines":[{}],"when":"x"}`)}
	first := c.Check(&req).Error()
	for range 50 {
		if got := c.Check(&req).Error(); got != first {
			t.Fatalf("answers differ:\n%s\n%s", first, got)
		}
	}
}

// A failure's message is bounded although the library quotes the value.
func TestSchemaFailureMessageBounded(t *testing.T) {
	c := mustParse(t, "kinds.yaml", paymentsYAML)
	req := event.Request{Kind: "payment_approved", Payload: []byte(`{"amount":1,"currency":"` + strings.Repeat("é", 100000) + `"}`)}
	verr := c.Check(&req)
	if verr == nil || len(verr.Error()) > 1000 {
		t.Fatalf("got %d bytes", len(verr.Error()))
	}
	if !strings.Contains(verr.Error(), "…") {
		t.Fatal(verr)
	}
}

func TestCatalogListing(t *testing.T) {
	c := mustParse(t, "kinds.yaml", paymentsYAML)
	list := c.Kinds()
	builtin := event.DefaultKindSet.Kinds()
	if len(list) != len(builtin)+2 {
		t.Fatalf("%d kinds", len(list))
	}
	for i, k := range builtin {
		if list[i].Name != k.Name || list[i].Description != k.Description {
			t.Errorf("kind %d: %+v, want the built-in %+v", i, list[i], k)
		}
	}
	denied, _ := c.Set().Lookup("request_denied")
	if denied.Description == "" {
		t.Error("a built-in kind the file refines keeps its description")
	}
	var withSchema kinds.Kind
	for _, k := range list {
		if k.Name == "request_denied" {
			withSchema = k
		}
	}
	if string(withSchema.Schema) != `{"required":["rule"],"type":"object"}` {
		t.Errorf("schema %s", withSchema.Schema)
	}
	if k := list[len(list)-2]; k.Name != "payment_approved" || k.Retired || len(k.Schema) == 0 {
		t.Errorf("%+v", k)
	}
	if k := list[len(list)-1]; k.Name != "legacy_payment" || !k.Retired || k.Schema != nil {
		t.Errorf("%+v", k)
	}
	if c.Schemas() != 2 {
		t.Errorf("%d schemas", c.Schemas())
	}
	// Retired kinds stay valid names: filters on them keep working.
	if !c.Set().Has("legacy_payment") {
		t.Error("a retired kind must stay in the set")
	}
	if kinds.Builtin().File() != "" || len(kinds.Builtin().Kinds()) != len(builtin) {
		t.Error("built-in catalogue")
	}
}

// The unknown-kind answer suggests file-defined kinds as it does built-in ones.
func TestUnknownKindSuggestsFileKinds(t *testing.T) {
	c := mustParse(t, "kinds.yaml", paymentsYAML)
	_, err := event.ParseRequest([]byte(`{"kind":"payment_aproved","source":"s"}`), c.Set())
	if err == nil || !strings.Contains(err.Error(), `did you mean "payment_approved"?`) || !strings.Contains(err.Error(), "lists all 24") {
		t.Fatal(err)
	}
	_, err = event.ParseRequest([]byte(`{"kind":"request_denid","source":"s"}`), c.Set())
	if err == nil || !strings.Contains(err.Error(), `did you mean "request_denied"?`) {
		t.Fatal(err)
	}
}

// YAML and JSON files describing the same kinds give the same catalogue.
func TestJSONAndYAMLAgree(t *testing.T) {
	y := mustParse(t, "kinds.yaml", paymentsYAML)
	j := mustParse(t, "kinds.json", `{"kinds":[
	 {"name":"payment_approved","description":"A payment was approved.","schema":{"type":"object","required":["amount","currency"],"additionalProperties":false,
	  "properties":{"amount":{"type":"number","minimum":0},"currency":{"type":"string","pattern":"^[A-Z]{3}$"},"when":{"type":"string","format":"date-time"},
	  "lines":{"type":"array","items":{"type":"object","required":["sku"],"properties":{"sku":{"type":"string","minLength":1}}}},
	  "ref":{"oneOf":[{"type":"string"},{"type":"integer"}]},"a/b~c":{"type":"boolean"},"big":{"type":"integer"}}}},
	 {"name":"request_denied","schema":{"type":"object","required":["rule"]}},
	 {"name":"legacy_payment","description":"Payments before 2026; kept so old events stay findable by kind.","retired":true}]}`)
	yj, _ := json.Marshal(y.Kinds())
	jj, _ := json.Marshal(j.Kinds())
	if string(yj) != string(jj) {
		t.Fatalf("YAML:\n%s\nJSON:\n%s", yj, jj)
	}
}

func TestYAMLValues(t *testing.T) {
	c := mustParse(t, "k.yml", `
kinds:
  - name: t
    description: types
    schema:
      properties:
        day: {const: 2026-01-01}          # a date stays the string it is in JSON
        hex: {const: 0x10}                 # YAML integer forms become JSON numbers
        big: {const: 123456789012345678901234567890}
        f: {const: 1.5e3}
        n: {const: null}
        yes: {const: yes}                  # YAML 1.2: a string
        anchored: &a {type: string}
        aliased: *a
`)
	var schema string
	for _, k := range c.Kinds() {
		if k.Name == "t" {
			schema = string(k.Schema)
		}
	}
	const want = `{"properties":{"aliased":{"type":"string"},"anchored":{"type":"string"},"big":{"const":123456789012345678901234567890},` +
		`"day":{"const":"2026-01-01"},"f":{"const":1.5e3},"hex":{"const":16},"n":{"const":null},"yes":{"const":"yes"}}}`
	if schema != want {
		t.Fatalf("got  %s\nwant %s", schema, want)
	}
}

func TestFileErrors(t *testing.T) {
	entry := func(s string) string { return "kinds:\n  - " + s + "\n" }
	for _, tc := range []struct {
		name, file, data string
		want             string // a substring of the error, after "kinds file NAME: "
	}{
		{"empty", "k.yaml", "", "the file is empty"},
		{"not YAML", "k.yaml", "kinds: [", "yaml"},
		{"not JSON", "k.json", `{"kinds":[}`, "line 1: invalid character"},
		{"JSON after the value", "k.json", `{"kinds":[]} {}`, "data after the top-level value"},
		{"JSON repeated member", "k.json", `{"kinds":[{"name":"a","name":"b"}]}`, `member "name" is repeated`},
		{"YAML repeated key", "k.yaml", "kinds: []\nkinds: []\n", `key "kinds" is repeated`},
		{"top level a list", "k.yaml", "- a\n", `must be an object with a "kinds" list, got a list`},
		{"no kinds", "k.yaml", "other: 1\n", `unknown member "other"`},
		{"kinds misspelt", "k.yaml", "kind: []\n", `unknown member "kind" (did you mean "kinds"?)`},
		{"kinds not a list", "k.yaml", "kinds: {a: 1}\n", `"kinds" must be a list, got an object`},
		{"kinds missing", "k.json", `{}`, `no "kinds" list`},
		{"entry not an object", "k.yaml", "kinds: [a]\n", "kinds[0]: must be an object"},
		{"no name", "k.yaml", entry("{description: x}"), "kinds[0]: no name"},
		{"name not a string", "k.yaml", entry("{name: 1, description: x}"), "kinds[0]: name must be a string, got a number"},
		{"name with a space", "k.yaml", entry(`{name: "a b", description: x}`), `kind "a b" (kinds[0]): name "a b": a kind name is`},
		{"name with a newline", "k.json", `{"kinds":[{"name":"a\nevent: x","description":"x"}]}`, "a kind name is"},
		{"name too long", "k.yaml", entry("{name: a" + strings.Repeat("b", 128) + ", description: x}"), "a kind name is 1 to 128"},
		{"unknown member", "k.yaml", entry("{name: a, descripton: x}"), `kind "a" (kinds[0]): unknown member "descripton" (did you mean "description"?)`},
		{"no description", "k.yaml", entry("{name: a}"), `kind "a" (kinds[0]): no description`},
		{"empty description", "k.yaml", entry(`{name: a, description: " "}`), "description is empty"},
		{"description not a string", "k.yaml", entry("{name: a, description: [x]}"), "description must be a string, got a list"},
		{"description too long", "k.yaml", entry("{name: a, description: " + strings.Repeat("x", kinds.MaxDescription+1) + "}"), "description is longer than 1024 bytes"},
		{"retired not a boolean", "k.yaml", entry("{name: a, description: x, retired: soon}"), "retired must be true or false, got a string"},
		{"listed twice", "k.yaml", "kinds:\n  - {name: a, description: x}\n  - {name: a, description: y}\n", `kind "a" (kinds[1]): listed twice`},
		{"schema not a schema", "k.yaml", entry("{name: a, description: x, schema: [1]}"), "schema must be a JSON Schema (an object, or true or false), got a list"},
		{"schema breaks the meta-schema", "k.yaml", entry("{name: a, description: x, schema: {type: objekt}}"), `kind "a" (kinds[0]): schema: not a valid JSON Schema: at /type: value must be one of`},
		{"schema minimum not a number", "k.yaml", entry("{name: a, description: x, schema: {minimum: low}}"), "schema: not a valid JSON Schema: at /minimum: got string, want number"},
		{"pattern Go cannot compile", "k.yaml", entry(`{name: a, description: x, schema: {pattern: "(?=x)"}}`), "at /pattern: '(?=x)' is not valid regex"},
		{"pattern too long", "k.yaml", entry(`{name: a, description: x, schema: {pattern: "` + strings.Repeat("a", kinds.MaxRegexpLen+1) + `"}}`), "regular expression longer than 16384 bytes"},
		{"remote $ref", "k.yaml", entry(`{name: a, description: x, schema: {$ref: "https://example.com/s.json"}}`), "schema: cannot load https://example.com/s.json: schemas in the kinds file must be self-contained"},
		{"file $ref", "k.yaml", entry(`{name: a, description: x, schema: {$ref: "file:///etc/passwd"}}`), "cannot load file:///etc/passwd"},
		{"dangling $ref", "k.yaml", entry(`{name: a, description: x, schema: {$ref: "#/$defs/nope"}}`), `schema: json-pointer in "#/$defs/nope" not found`},
		{"NaN", "k.yaml", entry("{name: a, description: x, schema: {const: .nan}}"), ".nan is not a JSON number"},
		{"binary", "k.yaml", entry("{name: a, description: x, schema: {const: !!binary aGk=}}"), "values tagged !!binary have no JSON form"},
		{"number with a line break", "k.yaml", entry("{name: a, description: x, schema: {const: !!float \"1\\n\"}}"), "cannot construct !!str `1\\n` as a !!float"},
		{"merge key", "k.yaml", "base: &b {description: x}\nkinds: [{<<: *b, name: a}]\n", "merge keys (<<) are not supported"},
		{"mapping key", "k.yaml", "kinds: []\n? [a]\n: 1\n", "a mapping key must be a plain value"},
		{"alias bomb", "k.yaml", aliasBomb(), "more than 1048576 values (aliases expanded)"},
		{"deep nesting", "k.json", `{"kinds":` + strings.Repeat("[", 300) + strings.Repeat("]", 300) + `}`, "nested deeper than 256 levels"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := kinds.Parse(tc.file, []byte(tc.data))
			if err == nil {
				t.Fatal("accepted")
			}
			prefix := "kinds file " + tc.file + ": "
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got  %v\nwant %s…%s", err, prefix, tc.want)
			}
			if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "urn:audit-stream") {
				t.Fatalf("the error must be one line without internal names: %q", err)
			}
		})
	}
}

// aliasBomb is the "billion laughs" of YAML: ten levels of ten aliases.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	b.WriteString("kinds: []\n")
	return b.String()
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kinds.yaml")
	if err := os.WriteFile(path, append([]byte("\ufeff"), paymentsYAML...), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := kinds.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.File() != path || !c.Set().Has("payment_approved") {
		t.Fatalf("%s %v", c.File(), c.Set().Names())
	}
	if _, err := kinds.Load(filepath.Join(dir, "none.yaml")); err == nil || !strings.Contains(err.Error(), "none.yaml") {
		t.Fatalf("a missing file: %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, kinds.MaxFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := kinds.Load(big); err == nil || !strings.Contains(err.Error(), "big.yaml: larger than 4194304 bytes") {
		t.Fatalf("a huge file: %v", err)
	}
}

// A kinds file with no kinds is the built-in catalogue.
func TestEmptyList(t *testing.T) {
	c := mustParse(t, "k.yaml", "kinds: []\n")
	if len(c.Kinds()) != len(event.DefaultKindSet.Kinds()) || c.Schemas() != 0 {
		t.Fatal(c.Kinds())
	}
}

// A payload string is compiled as a regular expression under "format":
// "regex"; the bound applies there too.
func TestRegexFormatBounded(t *testing.T) {
	c := mustParse(t, "k.yaml", `kinds: [{name: r, description: x, schema: {properties: {re: {format: regex}}}}]`)
	for _, tc := range []struct {
		re   string
		fail bool
	}{{"^a+$", false}, {"(", true}, {strings.Repeat("a", kinds.MaxRegexpLen+1), true}} {
		b, _ := json.Marshal(map[string]string{"re": tc.re})
		req := event.Request{Kind: "r", Payload: b}
		if verr := c.Check(&req); (verr != nil) != tc.fail {
			t.Errorf("%.20q: %v", tc.re, verr)
		}
	}
}
