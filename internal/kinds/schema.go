package kinds

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/audit-stream/audit-stream/event"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Bounds that keep payload validation linear in the payload's size, whatever
// a producer sends. The rest is the library's or Go's own: patterns and the
// "regex" format use Go's regexp (RE2: time linear in the input, no
// catastrophic backtracking); uniqueItems hashes instead of comparing
// every pair; content assertions (contentEncoding, contentSchema) stay off.
const (
	// MaxNumberLen bounds the characters of a payload number checked
	// against a schema. The library reads every number it compares into a
	// big.Rat, which takes time quadratic in its digits: a 1 MiB integer
	// would take seconds.
	MaxNumberLen = 1000
	// MaxRegexpLen bounds a regular expression the library compiles: a
	// schema's patterns, and payload strings under "format": "regex".
	MaxRegexpLen = 16 << 10
	// maxFailures bounds the failures one payload reports.
	maxFailures = 100
	// maxReason bounds a failure's text: the library quotes the offending
	// value, which may be a megabyte long.
	maxReason = 300
)

func newCompiler() *jsonschema.Compiler {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	// A producer who reads "format": "date-time" in GET /kinds expects it
	// enforced; the 2020-12 default of treating formats as annotations
	// would accept anything.
	c.AssertFormat()
	c.UseLoader(noLoader{})
	c.UseRegexpEngine(boundedRegexp)
	return c
}

// noLoader keeps schemas self-contained: a start-up that fetches URLs or
// reads files named inside a schema would depend on the network and give
// whoever controls those the power to change what is accepted.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("cannot load %s: schemas in the kinds file must be self-contained ($ref within the schema, or to the JSON Schema meta-schemas)", url)
}

func boundedRegexp(s string) (jsonschema.Regexp, error) {
	if len(s) > MaxRegexpLen {
		return nil, fmt.Errorf("regular expression longer than %d bytes", MaxRegexpLen)
	}
	return regexp.Compile(s)
}

func compile(c *jsonschema.Compiler, url string, doc any) (*jsonschema.Schema, error) {
	if err := c.AddResource(url, doc); err != nil {
		return nil, compileError(err)
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, compileError(err)
	}
	return s, nil
}

// compileError says what is wrong with a schema in one line fit for a
// start-up error: a schema that is not one is described by where it breaks
// the meta-schema, and the internal resource URL is cut out.
func compileError(err error) error {
	var sv *jsonschema.SchemaValidationError
	var ve *jsonschema.ValidationError
	if errors.As(err, &sv) && errors.As(sv.Err, &ve) {
		var leaves []string
		metaLeaves(ve, &leaves)
		if len(leaves) > 0 {
			return errors.New("not a valid JSON Schema: " + strings.Join(leaves, "; "))
		}
	}
	var le *jsonschema.LoadURLError
	if errors.As(err, &le) {
		err = le.Err
	}
	msg := strings.Join(strings.Fields(err.Error()), " ")
	return errors.New(internalURL.ReplaceAllString(msg, ""))
}

var internalURL = regexp.MustCompile(`urn:audit-stream:kind:[A-Za-z0-9_.:-]*`)

// metaLeaves lists the failures at the leaves of a meta-schema check, at
// most ten: "at /properties/a/type: got string, want array".
func metaLeaves(ve *jsonschema.ValidationError, out *[]string) {
	if len(*out) >= 10 {
		return
	}
	if len(ve.Causes) == 0 {
		where := "/" + strings.Join(ve.InstanceLocation, "/")
		*out = append(*out, "at "+where+": "+cut(ve.ErrorKind.LocalizedString(printer)))
		return
	}
	for _, c := range ve.Causes {
		metaLeaves(c, out)
	}
}

// validate checks a canonical payload against the rule's schema.
func (r *rule) validate(kindName string, payload []byte) []*event.ValidationError {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		// The parser produced this canonical JSON: it always decodes.
		return []*event.ValidationError{fail(nil, "payload does not decode: "+err.Error(), "value_error")}
	}
	if len(payload) > MaxNumberLen {
		var long []*event.ValidationError
		longNumbers(doc, nil, &long)
		if len(long) > 0 {
			return long
		}
	}
	err := r.schema.Validate(doc)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []*event.ValidationError{fail(nil, "schema of kind "+strconv.Quote(kindName)+": "+err.Error(), "value_error")}
	}
	var list []failure
	r.flatten(ve, doc, &list)
	if len(list) == 0 { // not expected: every failure has a leaf
		return []*event.ValidationError{fail(nil, cut(ve.Error()), "schema")}
	}
	out := make([]*event.ValidationError, 0, min(len(list), maxFailures))
	for _, f := range list[:min(len(list), maxFailures)] {
		out = append(out, f.error())
	}
	// The library walks objects in map order: sort, so that the same
	// payload always gets the same answer.
	slices.SortStableFunc(out, func(a, b *event.ValidationError) int {
		return cmp.Or(strings.Compare(a.Field, b.Field), strings.Compare(a.Reason, b.Reason))
	})
	return out
}

// longNumbers lists the numbers of doc too long to check.
func longNumbers(v any, path []any, out *[]*event.ValidationError) {
	if len(*out) >= maxFailures {
		return
	}
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			longNumbers(c, append(path[:len(path):len(path)], k), out)
		}
	case []any:
		for i, c := range x {
			longNumbers(c, append(path[:len(path):len(path)], i), out)
		}
	case json.Number:
		if len(x) > MaxNumberLen {
			*out = append(*out, fail(path, "a number of "+strconv.Itoa(len(x))+" characters is longer than a schema check takes ("+
				strconv.Itoa(MaxNumberLen)+"); send it as a string", "schema_number_too_long"))
		}
	}
}

// failure is one violated keyword: where in the payload, what, and the
// keyword's location in the schema.
type failure struct {
	path    []any
	msg     string
	keyword string // "#/properties/amount/minimum"
	typ     string
}

func (f failure) error() *event.ValidationError {
	return fail(f.path, cut(f.msg)+" (schema "+f.keyword+")", f.typ)
}

// flatten turns the library's tree of failures into one failure per
// violated keyword, each located at the offending value.
func (r *rule) flatten(ve *jsonschema.ValidationError, doc any, out *[]failure) {
	if len(*out) >= maxFailures {
		return
	}
	where := pathOf(doc, ve.InstanceLocation)
	add := func(path []any, msg, typ string) {
		*out = append(*out, failure{path: path, msg: msg, keyword: r.keyword(ve), typ: typ})
	}
	switch k := ve.ErrorKind.(type) {
	case *kind.Schema, *kind.Reference, *kind.Group, *kind.AllOf:
		for _, c := range ve.Causes {
			r.flatten(c, doc, out)
		}
	case *kind.AnyOf, *kind.OneOf:
		// One failure for the combinator: its branches' failures are
		// alternatives, not separate faults, and go in its reason.
		var branches []failure
		for _, c := range ve.Causes {
			r.flatten(c, doc, &branches)
		}
		msg := k.LocalizedString(printer)
		for i, b := range branches {
			if i == 3 {
				msg += "; …"
				break
			}
			sep := "; "
			if i == 0 {
				sep = ": "
			}
			msg += sep + b.msg + " (" + b.keyword + ")"
		}
		add(where, msg, "schema_"+ve.ErrorKind.KeywordPath()[0])
	case *kind.Required:
		for _, p := range k.Missing {
			add(append(where[:len(where):len(where)], p), "required by the schema but missing", "missing")
		}
	case *kind.AdditionalProperties:
		for _, p := range k.Properties {
			add(append(where[:len(where):len(where)], p), "not allowed by the schema", "extra_forbidden")
		}
	case *kind.FalseSchema:
		add(where, "not allowed by the schema (false)", "schema_false")
	default:
		if len(ve.Causes) > 0 {
			for _, c := range ve.Causes {
				r.flatten(c, doc, out)
			}
			return
		}
		typ := "schema"
		if kp := ve.ErrorKind.KeywordPath(); len(kp) > 0 {
			typ += "_" + kp[0]
		}
		add(where, ve.ErrorKind.LocalizedString(printer), typ)
	}
}

// keyword is the location of the keyword that failed, as a JSON pointer
// into the kind's schema (GET /kinds shows it).
func (r *rule) keyword(ve *jsonschema.ValidationError) string {
	loc, ok := strings.CutPrefix(ve.SchemaURL, r.url)
	if !ok {
		loc = ve.SchemaURL // another resource (an $id inside the schema)
	} else if loc == "" {
		loc = "#"
	}
	for _, t := range ve.ErrorKind.KeywordPath() {
		loc += "/" + escapeToken(t)
	}
	return loc
}

// pathOf turns the library's instance location into member names and
// array indexes, as the other 422 locations are.
func pathOf(doc any, tokens []string) []any {
	path := make([]any, 0, len(tokens))
	v := doc
	for _, t := range tokens {
		switch x := v.(type) {
		case []any:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(x) {
				path = append(path, t)
				v = nil
				continue
			}
			path = append(path, i)
			v = x[i]
		case map[string]any:
			path = append(path, t)
			v = x[t]
		default:
			path = append(path, t)
			v = nil
		}
	}
	return path
}

// fail is one failure at path inside the payload. Its Field is the JSON
// pointer of the value in the request body (RFC 6901).
func fail(path []any, reason, typ string) *event.ValidationError {
	ptr := "/payload"
	for _, p := range path {
		switch t := p.(type) {
		case string:
			ptr += "/" + escapeToken(t)
		case int:
			ptr += "/" + strconv.Itoa(t)
		}
	}
	return &event.ValidationError{
		Field:  ptr,
		Offset: -1,
		Reason: reason,
		Type:   typ,
		Loc:    append([]any{"payload"}, path...),
	}
}

func escapeToken(t string) string {
	return strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1")
}

// cut shortens s to about maxReason bytes, on character boundaries,
// keeping its start and its end: the library puts the offending value in
// the middle and the reason after it.
func cut(s string) string {
	if len(s) <= maxReason {
		return s
	}
	head, tail := maxReason*2/3, len(s)-maxReason/3
	for head > 0 && !utf8.RuneStart(s[head]) {
		head--
	}
	for tail < len(s) && !utf8.RuneStart(s[tail]) {
		tail++
	}
	return s[:head] + "…" + s[tail:]
}

var printer = message.NewPrinter(language.English)
