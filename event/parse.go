package event

import (
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrInvalid is matched, with errors.Is, by every *ValidationError.
var ErrInvalid = errors.New("event: invalid input")

// ValidationError is every rejection of a request body or stored event. The
// HTTP layer maps it to 422 and shows Error() as the problem detail.
type ValidationError struct {
	// Field names the offending field as a path from the top-level object:
	// "kind", "payload.a.b", "payload.items[3]", `payload["a.b"]`. It is ""
	// when the error is about the whole body, and for every JSON syntax error.
	Field string
	// Offset is the byte offset in the body of a syntax error, or of the
	// offending value for the limits checked while parsing (nesting depth,
	// number range, NaN, unpaired surrogates); -1 otherwise.
	Offset int
	// Reason says what is wrong, without the field or the offset.
	Reason string
	// Type classifies the failure with the names pydantic gives its
	// validation errors ("missing", "string_type", "value_error", ...), which
	// the original service's clients know from its 422 answers; see
	// ErrorType.
	Type string
	// Loc locates the failure inside the body as FastAPI does, without its
	// leading "body": member names and array indexes, or for a JSON syntax
	// error the byte offset; see Location.
	Loc []any
	// More lists the other failures found in the same body, in order. The
	// receiver is the first; All returns them together.
	More []*ValidationError
}

// All returns e followed by e.More.
func (e *ValidationError) All() []*ValidationError {
	return append([]*ValidationError{e}, e.More...)
}

// ErrorType returns Type, or the type implied by the kind of error: a
// syntax error is "json_invalid", anything else "value_error".
func (e *ValidationError) ErrorType() string {
	switch {
	case e.Type != "":
		return e.Type
	case e.Field == "" && e.Offset >= 0:
		return "json_invalid"
	default:
		return "value_error"
	}
}

// Location returns Loc, or the location implied by Field and Offset.
func (e *ValidationError) Location() []any {
	switch {
	case e.Loc != nil:
		return e.Loc
	case e.Field == "" && e.Offset >= 0:
		return []any{e.Offset}
	case e.Field == "":
		return []any{}
	default:
		return []any{e.Field}
	}
}

// Message is Error() of this failure alone, without More.
func (e *ValidationError) Message() string {
	switch {
	case e.Field == "" && e.Offset >= 0:
		return "invalid JSON at offset " + strconv.Itoa(e.Offset) + ": " + e.Reason
	case e.Field == "":
		return e.Reason
	case e.Offset >= 0:
		return e.Field + ": " + e.Reason + " at offset " + strconv.Itoa(e.Offset)
	default:
		return e.Field + ": " + e.Reason
	}
}

// maxProblems bounds the failures one body reports: a body of ten thousand
// unknown members gets a short answer.
const maxProblems = 100

// joinProblems returns the first of list with the others in More.
func joinProblems(list []*ValidationError) *ValidationError {
	first := *list[0]
	first.More = append([]*ValidationError(nil), list[1:]...)
	return &first
}

// Error returns the reason with the field or position, for example
//
//	invalid JSON at offset 17: unexpected character '}', expected a value
//	payload: nesting deeper than 64 levels at offset 130
//	kind: unknown kind "foo"
//
// followed by the other failures in More, separated by "; ".
func (e *ValidationError) Error() string {
	msg := e.Message()
	for i, m := range e.More {
		if i == 9 {
			return msg + "; and " + strconv.Itoa(len(e.More)-i) + " more"
		}
		msg += "; " + m.Message()
	}
	return msg
}

// Is reports whether target is ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// MaxSourceLen is the longest accepted source, in characters (code points).
const MaxSourceLen = 256

// Request is a validated append request.
type Request struct {
	Kind      string
	Source    string
	Payload   []byte // canonical JSON of the payload object; "{}" when omitted
	Timestamp string // exactly as sent; "" when the producer did not send one
}

// ParseRequest parses and validates a POST /events body against kinds (nil
// means DefaultKindSet). The body must be one JSON object, parsed as strictly
// as by Canonicalize, with the members
//
//	kind       string, required, one of kinds
//	source     string, required, 1 to MaxSourceLen characters
//	payload    object, optional (null is not an object), default {}
//	timestamp  string, optional, a date-time as Python 3.11's
//	           datetime.fromisoformat accepts it (timestamp.go); kept as
//	           sent. null or "" is the same as leaving it out: the server
//	           stamps the event
//
// and no others; a member may not be repeated. Every error is a
// *ValidationError. When the body is not valid JSON, that is the error
// reported, whatever else is wrong with it.
func ParseRequest(body []byte, kinds *KindSet) (Request, error) {
	return ParseRequestValue(body, kinds)
}

// ParseRequestValue is ParseRequest for an already-isolated JSON value: an
// item of a batch array or one NDJSON line. Offsets in its errors are relative
// to value.
func ParseRequestValue(value []byte, kinds *KindSet) (Request, error) {
	if kinds == nil {
		kinds = DefaultKindSet
	}
	s := getScanner(value)
	defer putScanner(s)
	if err := s.beginObject("body"); err != nil {
		return Request{}, err
	}
	var (
		req  Request
		seen [len(requestFields)]bool
	)
	for {
		f, err := s.nextField(requestFields[:], seen[:])
		if err != nil {
			return Request{}, s.fail(err)
		}
		if f == done {
			break
		}
		if f == skipped {
			continue
		}
		var ok bool
		switch name := requestFields[f]; name {
		case "kind":
			if req.Kind, ok, err = s.stringField(name); ok && !kinds.Has(req.Kind) {
				s.report(&ValidationError{Field: name, Offset: -1, Reason: kinds.Unknown(req.Kind)})
			}
		case "source":
			if req.Source, ok, err = s.stringField(name); !ok {
				break
			}
			if req.Source == "" {
				s.report(&ValidationError{Field: name, Offset: -1, Reason: "must not be empty", Type: "string_too_short"})
			} else if n := utf8.RuneCountInString(req.Source); n > MaxSourceLen {
				s.report(&ValidationError{Field: name, Offset: -1, Type: "string_too_long", Reason: "longer than " +
					strconv.Itoa(MaxSourceLen) + " characters (" + strconv.Itoa(n) + ")"})
			}
		case "timestamp":
			// null and "" ask for a server timestamp, as the original's
			// request model (timestamp: Optional[str] = None) did: it
			// sends null for a timestamp the producer left out.
			if s.data[s.pos] == 'n' {
				err = s.skipValue()
				break
			}
			if req.Timestamp, ok, err = s.stringField(name); !ok || req.Timestamp == "" {
				break
			}
			if reason := checkTimestamp(req.Timestamp); reason != "" {
				s.report(&ValidationError{Field: name, Offset: -1, Reason: reason})
			}
		case "payload":
			if err = s.objectField(name); err == nil {
				req.Payload = append([]byte(nil), s.out...)
			}
		}
		if err != nil {
			return Request{}, s.fail(err)
		}
	}
	if err := s.finish(requestFields[:], seen[:], "kind", "source"); err != nil {
		return Request{}, err
	}
	if req.Payload == nil {
		req.Payload = []byte("{}")
	}
	return req, nil
}

var requestFields = [...]string{"kind", "source", "payload", "timestamp"}

// ParseStored parses one event in wire form,
//
//	{event_id, timestamp, kind, source, payload, prev_hash, hash}
//
// as served by this service or by the original Python service (whose
// GET /events dump is pretty-printed, raw UTF-8, payload keys unsorted), in
// any member order. All seven members are required and no others are allowed.
// The payload is re-canonicalised so that the event can be re-hashed. The
// kind is not checked against any set and the timestamp is not checked (the
// hash covers them as they are); event_id must be an integer from 1 to 2^63-1
// and prev_hash and hash 64 lowercase hex characters, but whether hash is
// right is for verification to decide. None of the append-time limits of
// ParseRequest apply beyond strict JSON: a source of any length, a payload
// nested up to MaxStoredDepth levels, repeated payload keys (the last wins,
// as in Python) are all judged by the hash alone. Every error is a
// *ValidationError.
func ParseStored(data []byte) (Event, error) {
	s := getScanner(data)
	defer putScanner(s)
	s.maxDepth = MaxStoredDepth
	if err := s.beginObject("event"); err != nil {
		return Event{}, err
	}
	var (
		ev   Event
		seen [len(storedFields)]bool
	)
	for {
		f, err := s.nextField(storedFields[:], seen[:])
		if err != nil {
			return Event{}, err
		}
		if f == done {
			break
		}
		if f == skipped {
			continue
		}
		switch name := storedFields[f]; name {
		case "event_id":
			err = s.idField(name, &ev.ID)
		case "timestamp":
			ev.Timestamp, _, err = s.stringField(name)
		case "kind":
			ev.Kind, _, err = s.stringField(name)
		case "source":
			ev.Source, _, err = s.stringField(name)
		case "payload":
			if err = s.objectField(name); err == nil {
				ev.Payload = append([]byte(nil), s.out...)
			}
		case "prev_hash":
			err = s.hashField(name, &ev.PrevHash)
		case "hash":
			err = s.hashField(name, &ev.Hash)
		}
		if err != nil {
			return Event{}, err
		}
	}
	if err := s.finish(storedFields[:], seen[:], storedFields[:]...); err != nil {
		return Event{}, err
	}
	return ev, nil
}

var storedFields = [...]string{"event_id", "timestamp", "kind", "source", "payload", "prev_hash", "hash"}

// The walk over a top-level object shared by ParseRequest and ParseStored.
// A field that is valid JSON but not acceptable is reported with report and
// the walk goes on, so that a syntax error later in the body still wins; the
// limits checked inside values (depth, numbers, surrogates) end it at once.

// beginObject starts the walk. A body that is valid JSON but not an object is
// rejected as such.
func (s *scanner) beginObject(what string) error {
	clear(s.problems)
	s.problems = s.problems[:0]
	if err := s.start(); err != nil {
		return err
	}
	if c := s.data[s.pos]; c != '{' {
		if err := s.skipValue(); err != nil {
			return err
		}
		if err := s.end(); err != nil {
			return err
		}
		return &ValidationError{Offset: -1, Reason: what + " must be a JSON object, got " + typeName(c), Type: "model_attributes_type"}
	}
	s.pos++
	s.depth = 1
	s.fields = 0
	return nil
}

// Results of nextField that are not an index into the field names.
const (
	done    = -1 // the object is closed and nothing but whitespace follows
	skipped = -2 // an unknown member, reported and checked
)

// nextField reads up to the value of the next member and returns the index
// of its key in names, recording it in seen. A repeated member is reported
// (and its value read as usual); an unknown one is reported and its value
// checked and skipped.
func (s *scanner) nextField(names []string, seen []bool) (int, error) {
	s.skipSpace()
	switch {
	case s.pos < len(s.data) && s.data[s.pos] == '}':
		s.pos++
		s.depth = 0
		return done, s.end()
	case s.fields == 0:
	case s.pos < len(s.data) && s.data[s.pos] == ',':
		s.pos++
		s.skipSpace()
	default:
		return done, s.expected("',' or '}' in an object")
	}
	if s.pos == len(s.data) || s.data[s.pos] != '"' {
		return done, s.expected("a string for an object key")
	}
	s.fields++
	s.path[0] = pathElem{index: -1, key: s.pos}
	var err error
	if s.keys, _, err = s.decodeString(s.keys[:0]); err != nil {
		return done, err
	}
	s.skipSpace()
	if s.pos == len(s.data) || s.data[s.pos] != ':' {
		return done, s.expected("':' after an object key")
	}
	s.pos++
	s.skipSpace()
	if s.pos == len(s.data) {
		return done, s.syntaxError("unexpected end of input, expected a value")
	}
	for i, name := range names {
		if string(s.keys) == name {
			if seen[i] {
				s.report(&ValidationError{Field: name, Offset: -1, Reason: "duplicate field"})
			}
			seen[i] = true
			return i, nil
		}
	}
	s.report(&ValidationError{Field: s.fieldPath(), Offset: -1, Type: "extra_forbidden", Loc: []any{string(s.keys)},
		Reason: "unknown field (allowed: " + strings.Join(names, ", ") + ")"})
	return skipped, s.skipValue()
}

// finish returns the problems reported during the walk and the required
// fields that are missing, the first with the others in More, or nil.
func (s *scanner) finish(names []string, seen []bool, required ...string) error {
	for _, r := range required {
		for i, name := range names {
			if name == r && !seen[i] {
				s.report(&ValidationError{Field: name, Offset: -1, Reason: "required field is missing", Type: "missing"})
			}
		}
	}
	if len(s.problems) == 0 {
		return nil
	}
	return joinProblems(s.problems)
}

// report records a problem found in a syntactically valid body.
func (s *scanner) report(e *ValidationError) {
	if len(s.problems) < maxProblems {
		s.problems = append(s.problems, e)
	}
}

// fail is the error for a walk that ended early with err. A syntax error is
// reported alone, whatever else is wrong with the body; a limit broken
// inside a value joins the problems found before it.
func (s *scanner) fail(err error) error {
	v, ok := err.(*ValidationError)
	if !ok || len(s.problems) == 0 || v.Field == "" {
		return err
	}
	s.report(v)
	return joinProblems(s.problems)
}

// skipValue checks the value at s.pos and moves past it.
func (s *scanner) skipValue() (err error) {
	s.skip, err = s.value(s.skip[:0])
	return err
}

// stringField reads the value of member name, which must be a string; ok is
// false if it is not, and that has been reported.
func (s *scanner) stringField(name string) (v string, ok bool, err error) {
	if c := s.data[s.pos]; c != '"' {
		s.report(&ValidationError{Field: name, Offset: -1, Reason: "must be a string, got " + typeName(c), Type: "string_type"})
		return "", false, s.skipValue()
	}
	if s.str, _, err = s.decodeString(s.str[:0]); err != nil {
		return "", false, err
	}
	return string(s.str), true, nil
}

// objectField reads the value of member name, which must be an object, into
// s.out in canonical form.
func (s *scanner) objectField(name string) (err error) {
	s.out = s.out[:0]
	if c := s.data[s.pos]; c != '{' {
		s.report(&ValidationError{Field: name, Offset: -1, Reason: "must be an object, got " + typeName(c), Type: "dict_type"})
		return s.skipValue()
	}
	s.out, err = s.value(s.out)
	return err
}

// hashField reads a hash: 64 lowercase hex characters.
func (s *scanner) hashField(name string, h *Hash) error {
	v, ok, err := s.stringField(name)
	if !ok {
		return err
	}
	if *h, err = ParseHash(v); err != nil {
		s.report(&ValidationError{Field: name, Offset: -1, Reason: "must be 64 lowercase hex characters"})
	}
	return nil
}

// idField reads an event id: an integer from 1 to 2^63-1.
func (s *scanner) idField(name string, id *int64) error {
	c := s.data[s.pos]
	if c != '-' && (c < '0' || c > '9') {
		s.report(&ValidationError{Field: name, Offset: -1, Reason: "must be an integer, got " + typeName(c), Type: "int_type"})
		return s.skipValue()
	}
	start := s.pos
	isFloat, err := s.scanNumber()
	if err != nil {
		return err
	}
	n, err := strconv.ParseInt(string(s.data[start:s.pos]), 10, 64)
	switch {
	case isFloat:
		s.report(&ValidationError{Field: name, Offset: -1, Reason: "must be an integer, got " + quoteShort(string(s.data[start:s.pos]))})
	case err != nil || n < 1:
		s.report(&ValidationError{Field: name, Offset: -1, Reason: "must be an integer from 1 to 9223372036854775807"})
	}
	*id = n
	return nil
}

func typeName(c byte) string {
	switch {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	default:
		return "number"
	}
}

// quoteShort quotes v as a JSON string, cut to 64 bytes so that an error
// message stays short.
func quoteShort(v string) string {
	const max = 64
	if len(v) <= max {
		return string(AppendString(nil, v))
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return string(AppendString(nil, v[:cut])) + "..."
}

// checkTimestamp returns why ts is not a timestamp we accept, or "".
func checkTimestamp(ts string) string {
	if _, ok := parseISO(ts); ok {
		return ""
	}
	return "must be an ISO 8601 date-time as Python's datetime.fromisoformat reads it, such as " +
		TimestampExample + " or 2026-05-15 03:14:15 (got " + quoteShort(ts) + ")"
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// Errors of the scanner.

func (s *scanner) syntaxError(reason string) error {
	return &ValidationError{Offset: s.pos, Reason: reason}
}

// fieldError reports a value at offset that breaks a limit, naming the field
// that holds it.
func (s *scanner) fieldError(offset int, reason string) error {
	return &ValidationError{Field: s.fieldPath(), Loc: s.fieldLoc(), Offset: offset, Reason: reason}
}

// unexpected reports the character at s.pos.
func (s *scanner) unexpected() error {
	return s.syntaxError(s.describeHere())
}

// expected reports the character at s.pos, or the end of the input, where
// what was expected.
func (s *scanner) expected(what string) error {
	if s.pos == len(s.data) {
		return s.syntaxError("unexpected end of input, expected " + what)
	}
	return s.syntaxError(s.describeHere() + ", expected " + what)
}

func (s *scanner) describeHere() string {
	r, size := utf8.DecodeRune(s.data[s.pos:])
	if r == utf8.RuneError && size == 1 {
		return "invalid UTF-8"
	}
	return "unexpected character " + strconv.QuoteRune(r)
}

// fieldPath names the value at the current depth, from s.path.
func (s *scanner) fieldPath() string {
	var b []byte
	for d := 0; d < s.depth; d++ {
		if d == MaxDepth { // only stored events nest deeper: keep it short
			b = append(b, "..."...)
			break
		}
		e := s.path[d]
		if e.index >= 0 {
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(e.index), 10)
			b = append(b, ']')
			continue
		}
		k := &scanner{data: s.data, pos: e.key}
		key, _, err := k.decodeString(nil)
		if err != nil { // the error is in this key: name its object
			break
		}
		b = appendPathKey(b, key, d == 0)
	}
	return string(b)
}

// fieldLoc is fieldPath as a list of member names and array indexes.
func (s *scanner) fieldLoc() []any {
	loc := []any{}
	for d := 0; d < s.depth; d++ {
		e := s.path[d]
		if e.index >= 0 {
			loc = append(loc, e.index)
			continue
		}
		k := &scanner{data: s.data, pos: e.key}
		key, _, err := k.decodeString(nil)
		if err != nil {
			break
		}
		loc = append(loc, string(key))
	}
	return loc
}

// appendPathKey appends .key, or ["key"] (JSON-escaped) for a key that would
// be ambiguous or unreadable that way; a long key is cut.
func appendPathKey(b, key []byte, first bool) []byte {
	const max = 64
	if len(key) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(key[cut]) {
			cut--
		}
		key = append(key[:cut:cut], "..."...)
	}
	simple := len(key) > 0
	for _, r := range string(key) {
		if r == ' ' || r == '.' || r == '[' || r == ']' || r == '"' || r == '\\' || !unicode.IsPrint(r) {
			simple = false
			break
		}
	}
	if !simple {
		b = append(b, '[')
		b = appendQuoted(b, key)
		return append(b, ']')
	}
	if !first {
		b = append(b, '.')
	}
	return append(b, key...)
}
