package kinds_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/kinds"
)

// FuzzParse: any kinds file is accepted or refused with a one-line error
// naming the file, never a panic; an accepted one lists the built-in kinds
// first and its schemas are valid JSON.
func FuzzParse(f *testing.F) {
	f.Add("kinds.yaml", paymentsYAML)
	f.Add("kinds.json", `{"kinds":[{"name":"a","description":"x","schema":{"type":"object","properties":{"n":{"minimum":1}}}}]}`)
	f.Add("kinds.yaml", aliasBomb())
	f.Add("kinds.yaml", "kinds:\n  - {name: a, description: x, schema: {$ref: \"#/$defs/a\", $defs: {a: {$ref: \"#/$defs/a\"}}}}\n")
	f.Add("k.json", `{"kinds":[{"name":"a","description":"x","retired":true}]}`)
	f.Fuzz(func(t *testing.T, name, data string) {
		if !strings.HasSuffix(name, ".json") {
			name = "k.yaml"
		}
		c, err := kinds.Parse(name, []byte(data))
		if err != nil {
			// A name with a line break in it is shown escaped, as the
			// rest of a one-line error is.
			prefix := "kinds file " + name + ": "
			if strings.ContainsFunc(name, unicode.IsControl) {
				prefix = "kinds file "
			}
			if !strings.HasPrefix(err.Error(), prefix) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q", err)
			}
			return
		}
		list := c.Kinds()
		builtin := event.DefaultKindSet.Kinds()
		if len(list) < len(builtin) || len(c.Set().Names()) != len(list) {
			t.Fatalf("%d kinds", len(list))
		}
		for i, k := range builtin {
			if list[i].Name != k.Name {
				t.Fatalf("kind %d is %q", i, list[i].Name)
			}
		}
		for _, k := range list {
			if k.Description == "" || (k.Schema != nil && !json.Valid(k.Schema)) {
				t.Fatalf("%+v", k)
			}
		}
	})
}

// FuzzCheck: any payload the parser accepts is checked against a schema
// using most keywords without a panic, and every failure is located in the
// payload.
func FuzzCheck(f *testing.F) {
	c, err := kinds.Parse("k.yaml", []byte(paymentsYAML+`
  - name: everything
    description: most keywords
    schema:
      $defs: {node: {anyOf: [{type: array, items: {$ref: "#/$defs/node"}}, {type: object, additionalProperties: {$ref: "#/$defs/node"}}, {type: [string, number, boolean, "null"]}]}}
      type: object
      properties:
        tree: {$ref: "#/$defs/node"}
        u: {uniqueItems: true, maxItems: 5, contains: {const: 1}}
        m: {multipleOf: 0.5, exclusiveMaximum: 100}
        s: {format: regex}
        e: {enum: [a, 1, null, [1], {x: 1}]}
        d: {dependentRequired: {a: [b]}, propertyNames: {maxLength: 3}, minProperties: 1}
        i: {if: {type: string}, then: {minLength: 2}, else: {not: {type: "null"}}}
        x: {unevaluatedProperties: false, properties: {a: true}}
`))
	if err != nil {
		f.Fatal(err)
	}
	f.Add("payment_approved", `{"amount":-1,"lines":[{}]}`)
	f.Add("everything", `{"tree":[[{"a":[1]}]],"u":[1,1],"m":3.3,"s":"(","e":{"x":2},"d":{"a":1,"long":2},"i":"x","x":{"b":1}}`)
	f.Add("everything", `{"m":1e308,"u":[1,2,3,4,5,6],"d":{}}`)
	f.Fuzz(func(t *testing.T, kind, payload string) {
		req, err := event.ParseRequest([]byte(`{"kind":`+strconvQuote(kind)+`,"source":"s","payload":`+payload+`}`), c.Set())
		if err != nil {
			return
		}
		verr := c.Check(&req)
		if verr == nil {
			return
		}
		all := verr.All()
		if len(all) > 100 {
			t.Fatalf("%d failures", len(all))
		}
		for _, e := range all {
			loc := e.Location()
			if len(loc) == 0 || (loc[0] != "payload" && loc[0] != "kind") || e.ErrorType() == "" || len(e.Reason) > 1000 {
				t.Fatalf("failure %v %q %q", loc, e.ErrorType(), e.Message())
			}
		}
	})
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
