// Package kinds is the catalogue of accepted event kinds: the built-in ones
// plus those of an operator's kinds file (YAML or JSON), each with a
// description and optionally a JSON Schema its payloads must satisfy.
//
// The catalogue applies at append time only. Stored events are judged by
// their hashes alone, so nothing that verifies, exports or imports the log
// consults it: removing a kind from the file, or tightening its schema,
// never turns an old event into a failure.
package kinds

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/suggest"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Kind is one kind as GET /kinds shows it.
type Kind struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Retired kinds are refused on append but stay valid in filters, so
	// that their events can still be found by kind.
	Retired bool `json:"retired,omitempty"`
	// Schema is the JSON Schema payloads of this kind must satisfy, as
	// given in the kinds file (members sorted); absent when there is none.
	Schema json.RawMessage `json:"schema,omitempty"`
}

// Catalog is an immutable set of kinds with their append-time rules.
type Catalog struct {
	set     *event.KindSet
	kinds   []Kind
	rules   map[string]*rule // only kinds with a schema or retired
	file    string
	schemas int // kinds with a schema
}

// rule is what an append of one kind is checked against beyond its name.
type rule struct {
	retired bool
	schema  *jsonschema.Schema
	url     string // the schema's resource URL, cut from keyword locations
}

var builtin = &Catalog{set: event.DefaultKindSet, kinds: fromSet(event.DefaultKindSet)}

func fromSet(s *event.KindSet) []Kind {
	var out []Kind
	for _, k := range s.Kinds() {
		out = append(out, Kind{Name: k.Name, Description: k.Description})
	}
	return out
}

// Builtin returns the catalogue of the built-in kinds alone, without rules.
func Builtin() *Catalog { return builtin }

// Set returns every kind of the catalogue, retired ones included: the
// names requests and filters may use.
func (c *Catalog) Set() *event.KindSet { return c.set }

// Kinds returns the kinds: the built-in ones in their order, then the
// file's in its order.
func (c *Catalog) Kinds() []Kind { return slices.Clone(c.kinds) }

// File returns the kinds file the catalogue was loaded from, "" for the
// built-in catalogue.
func (c *Catalog) File() string { return c.file }

// Schemas returns how many kinds carry a schema.
func (c *Catalog) Schemas() int { return c.schemas }

// HasSchema reports whether payloads of kind are checked against a schema.
func (c *Catalog) HasSchema(kind string) bool {
	r := c.rules[kind]
	return r != nil && r.schema != nil
}

// Check applies the kind's append-time rules to a parsed request: a retired
// kind is refused, a payload that fails the kind's schema is refused with
// one failure per violation, located by JSON pointer. It returns nil when
// the request passes (always, for a kind without rules).
func (c *Catalog) Check(req *event.Request) *event.ValidationError {
	r := c.rules[req.Kind]
	if r == nil {
		return nil
	}
	if r.retired {
		return &event.ValidationError{Field: "kind", Offset: -1, Type: "value_error", Loc: []any{"kind"},
			Reason: "kind " + strconv.Quote(req.Kind) + " is retired: it names old events but takes no new ones (GET /kinds describes the kinds in use)"}
	}
	if r.schema == nil {
		return nil
	}
	list := r.validate(req.Kind, req.Payload)
	if len(list) == 0 {
		return nil
	}
	first := *list[0]
	first.More = list[1:]
	return &first
}

// Load reads a kinds file: YAML, or JSON when its name ends in .json. Every
// error names the file and, when it is about one kind, the kind.
func Load(path string) (*Catalog, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kinds file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("kinds file %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("kinds file %s: larger than %d bytes", path, MaxFileSize)
	}
	return Parse(path, data)
}

// Parse is Load for data already read; name is the file name (its
// extension chooses JSON or YAML) and starts every error.
func Parse(name string, data []byte) (*Catalog, error) {
	c, err := parse(name, event.TrimBOM(data))
	if err != nil {
		return nil, &fileError{name: name, err: err}
	}
	return c, nil
}

// fileError is why a kinds file was refused, in one line: its name (a
// path the operator gave), what it holds (a YAML tag, a scalar) and what
// the YAML decoder says of it may carry line breaks and other control characters, which would split a log
// line or a start-up error; they are shown as Go escapes (\n) instead.
type fileError struct {
	name string
	err  error
}

func (e *fileError) Error() string {
	msg := "kinds file " + e.name + ": " + e.err.Error()
	var b strings.Builder
	b.Grow(len(msg))
	for len(msg) > 0 {
		r, size := utf8.DecodeRuneInString(msg)
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteString(msg[:size]) // bytes that are not UTF-8 pass as they are
		}
		msg = msg[size:]
	}
	return b.String()
}

func (e *fileError) Unwrap() error { return e.err }

// NameRule is the shape of a kind name a kinds file may add. Names end up
// in SSE "event:" lines, URLs and log lines, so they hold no spaces,
// quotes or line breaks.
var nameRule = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.:-]{0,127}$`)

// MaxDescription is the longest description, in bytes.
const MaxDescription = 1024

var (
	fileFields  = []string{"kinds"}
	entryFields = []string{"name", "description", "schema", "retired"}
)

func parse(name string, data []byte) (*Catalog, error) {
	var (
		doc any
		err error
	)
	if strings.HasSuffix(strings.ToLower(name), ".json") {
		doc, err = decodeJSON(data)
	} else {
		doc, err = decodeYAML(data)
	}
	if err != nil {
		return nil, err
	}
	top, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf(`must be an object with a "kinds" list, got %s`, typeName(doc))
	}
	if err := onlyFields(top, fileFields); err != nil {
		return nil, err
	}
	list, ok := top["kinds"].([]any)
	if !ok {
		if _, present := top["kinds"]; !present {
			return nil, fmt.Errorf(`no "kinds" list`)
		}
		return nil, fmt.Errorf(`"kinds" must be a list, got %s`, typeName(top["kinds"]))
	}
	c := &Catalog{kinds: fromSet(event.DefaultKindSet), rules: map[string]*rule{}, file: name}
	index := make(map[string]int, len(c.kinds)+len(list))
	for i, k := range c.kinds {
		index[k.Name] = i
	}
	fromFile := map[string]bool{}
	compiler := newCompiler()
	for i, item := range list {
		k, err := parseEntry(item)
		where := "kinds[" + strconv.Itoa(i) + "]"
		if k.Name != "" {
			where = "kind " + strconv.Quote(k.Name) + " (" + where + ")"
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if fromFile[k.Name] {
			return nil, fmt.Errorf("%s: listed twice", where)
		}
		fromFile[k.Name] = true
		pos, isBuiltin := index[k.Name]
		if !isBuiltin && k.Description == "" {
			return nil, fmt.Errorf("%s: no description (a kind the file adds must say what it records)", where)
		}
		r := &rule{retired: k.Retired}
		if k.schema != nil {
			r.url = "urn:audit-stream:kind:" + k.Name
			if r.schema, err = compile(compiler, r.url, k.schema); err != nil {
				return nil, fmt.Errorf("%s: schema: %w", where, err)
			}
			if k.Schema, err = json.Marshal(k.schema); err != nil {
				return nil, fmt.Errorf("%s: schema: %w", where, err)
			}
		}
		if r.retired || r.schema != nil {
			c.rules[k.Name] = r
		}
		if r.schema != nil {
			c.schemas++
		}
		if isBuiltin {
			// The file refines a built-in kind: its description stays
			// unless the file gives one.
			if k.Description == "" {
				k.Description = c.kinds[pos].Description
			}
			c.kinds[pos] = k.Kind
			continue
		}
		index[k.Name] = len(c.kinds)
		c.kinds = append(c.kinds, k.Kind)
	}
	ek := make([]event.Kind, len(c.kinds))
	for i, k := range c.kinds {
		ek[i] = event.Kind{Name: k.Name, Description: k.Description}
	}
	if c.set, err = event.KindSetOf(ek); err != nil {
		return nil, err
	}
	return c, nil
}

// entry is one item of the file's list.
type entry struct {
	Kind
	schema any // nil: none
}

func parseEntry(item any) (entry, error) {
	var k entry
	obj, ok := item.(map[string]any)
	if !ok {
		return k, fmt.Errorf("must be an object with name, description and optionally schema and retired, got %s", typeName(item))
	}
	if s, ok := obj["name"].(string); ok {
		k.Name = s
	}
	if err := onlyFields(obj, entryFields); err != nil {
		return k, err
	}
	switch v := obj["name"].(type) {
	case string:
		if !nameRule.MatchString(v) {
			return k, fmt.Errorf("name %q: a kind name is 1 to 128 ASCII letters, digits, '_', '.', ':' or '-', starting with a letter", v)
		}
	case nil:
		return k, fmt.Errorf("no name")
	default:
		return k, fmt.Errorf("name must be a string, got %s", typeName(v))
	}
	if v, ok := obj["description"]; ok {
		s, isStr := v.(string)
		switch {
		case !isStr:
			return k, fmt.Errorf("description must be a string, got %s", typeName(v))
		case strings.TrimSpace(s) == "":
			return k, fmt.Errorf("description is empty")
		case len(s) > MaxDescription:
			return k, fmt.Errorf("description is longer than %d bytes", MaxDescription)
		}
		k.Description = strings.TrimSpace(s)
	}
	if v, ok := obj["retired"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return k, fmt.Errorf("retired must be true or false, got %s", typeName(v))
		}
		k.Retired = b
	}
	if v, ok := obj["schema"]; ok {
		switch v.(type) {
		case map[string]any, bool:
			k.schema = v
		default:
			return k, fmt.Errorf("schema must be a JSON Schema (an object, or true or false), got %s", typeName(v))
		}
	}
	return k, nil
}

func onlyFields(obj map[string]any, allowed []string) error {
	var unknown []string
	for name := range obj {
		if !slices.Contains(allowed, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	msg := "unknown member " + strconv.Quote(unknown[0])
	if near, d := suggest.Closest(unknown[0], allowed); d >= 0 && d <= 2 {
		msg += " (did you mean " + strconv.Quote(near) + "?)"
	}
	return fmt.Errorf("%s; the members are %s", msg, strings.Join(allowed, ", "))
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}
