package kinds_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/kinds"
)

// benchKinds gives request_allowed_checked the schema a careful operator
// would write for the benchmark payload: every member typed, a pattern, a
// format, a bound, no other members.
const benchKinds = `
kinds:
  - name: request_allowed_checked
    description: request_allowed, with a schema
    schema:
      type: object
      required: [request_id, user, action, resource, latency_ms, allowed]
      additionalProperties: false
      properties:
        request_id: {type: string, pattern: "^req-[0-9a-f]{8}$"}
        user: {type: string, format: email}
        action: {enum: [read, write, delete]}
        resource: {type: string, minLength: 1, maxLength: 1024}
        latency_ms: {type: number, minimum: 0}
        allowed: {type: boolean}
`

const benchPayload = `{"request_id":"req-8f14e45f","user":"alice@example.com","action":"read","resource":"/v1/contracts/42","latency_ms":12.5,"allowed":true}`

// BenchmarkAppendCheck is what an append costs before storage with and
// without a schema: parse and validate the body, then the kind's rules.
// "schema" against "none" is the cost of schema validation.
func BenchmarkAppendCheck(b *testing.B) {
	c, err := kinds.Parse("k.yaml", []byte(benchKinds))
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, kind string }{{"none", "request_allowed"}, {"schema", "request_allowed_checked"}} {
		body := []byte(`{"kind":"` + tc.kind + `","source":"policy-as-code-engine","payload":` + benchPayload + `}`)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req, err := event.ParseRequest(body, c.Set())
				if err != nil {
					b.Fatal(err)
				}
				if verr := c.Check(&req); verr != nil {
					b.Fatal(verr)
				}
			}
		})
	}
}

// BenchmarkHostilePayload: what a producer can make schema validation cost
// with the largest payload an append takes (1 MiB), against the schema
// keyword that would suffer most, next to what parsing the same body costs
// ("parse", the baseline). Validation must stay a small multiple of it.
func BenchmarkHostilePayload(b *testing.B) {
	const size = 1 << 20
	long := strings.Repeat("a", size-64)
	var arr, nums, nested strings.Builder
	arr.WriteString("[")
	for i := 0; arr.Len() < size-64; i++ {
		if i > 0 {
			arr.WriteString(",")
		}
		arr.WriteString(strconv.Itoa(i))
	}
	arr.WriteString("]")
	nums.WriteString("[")
	for i := 0; nums.Len() < size-2*kinds.MaxNumberLen; i++ {
		if i > 0 {
			nums.WriteString(",")
		}
		nums.WriteString(strings.Repeat("7", kinds.MaxNumberLen))
	}
	nums.WriteString("]")
	// 58 levels of arrays (the limit is 64 for the whole request) holding
	// as many small objects as fit.
	nested.WriteString(strings.Repeat("[", 58))
	for i := 0; nested.Len() < size-200; i++ {
		if i > 0 {
			nested.WriteString(",")
		}
		nested.WriteString(`{"a":{"b":1}}`)
	}
	nested.WriteString(strings.Repeat("]", 58))
	cases := []struct{ name, schema, value string }{
		{"pattern", `{properties: {v: {pattern: "^[A-Za-z0-9._-]+$"}}}`, `"` + long + `"`},
		{"pattern alternation", `{properties: {v: {pattern: "^(a|b|ab)*c$"}}}`, `"` + long + `"`},
		{"format", `{properties: {v: {format: email}}}`, `"` + long + `"`},
		{"uniqueItems", `{properties: {v: {uniqueItems: true}}}`, arr.String()},
		{"multipleOf", `{properties: {v: {items: {multipleOf: 7}}}}`, nums.String()},
		{"nested anyOf", `{$defs: {n: {anyOf: [{type: array, items: {$ref: "#/$defs/n"}}, {type: object, properties: {a: {$ref: "#/$defs/n"}}}, {type: integer}]}}, properties: {v: {$ref: "#/$defs/n"}}}`, nested.String()},
	}
	for _, tc := range cases {
		c, err := kinds.Parse("k.yaml", []byte(fmt.Sprintf("kinds: [{name: h, description: h, schema: %s}]", tc.schema)))
		if err != nil {
			b.Fatal(err)
		}
		body := []byte(`{"kind":"h","source":"s","payload":{"v":` + tc.value + `}}`)
		if len(body) > size {
			b.Fatalf("%s: %d bytes", tc.name, len(body))
		}
		b.Run(tc.name+"/parse", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := event.ParseRequest(body, c.Set()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/parse+schema", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				req, err := event.ParseRequest(body, c.Set())
				if err != nil {
					b.Fatal(err)
				}
				c.Check(&req)
			}
		})
	}
}

// BenchmarkCompile: loading a kinds file of 1,000 kinds, each with a schema
// of 20 typed properties, patterns and formats: the start-up cost of a
// large file.
func BenchmarkCompile(b *testing.B) {
	var f strings.Builder
	f.WriteString("kinds:\n")
	for i := range 1000 {
		fmt.Fprintf(&f, "  - name: k%d\n    description: kind %d\n    schema:\n      type: object\n      required: [p0, p1]\n      properties:\n", i, i)
		for j := range 20 {
			fmt.Fprintf(&f, "        p%d: {type: string, pattern: \"^[a-z]{1,%d}$\", format: hostname, maxLength: 64}\n", j, j+1)
		}
	}
	data := []byte(f.String())
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := kinds.Parse("k.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
