package event

import (
	"strings"
	"unicode/utf8"
)

// The walk over a top-level object shared by ParseRequest, ParseBatch and
// ParseStored.
// A field that is valid JSON but not acceptable is reported with report and
// the walk goes on, so that a syntax error later in the body still wins; the
// limits checked inside values (depth, numbers, surrogates) end it at once.

// beginObject starts the walk. A body that is valid JSON but not an object is
// rejected as such.
func (s *scanner) beginObject(what string) error {
	clear(s.problems)
	s.problems = s.problems[:0]
	s.closed = false
	if err := s.start(); err != nil {
		return err
	}
	if c := s.data[s.pos]; c != '{' {
		if err := s.skipValue(); err != nil {
			return err
		}
		if !s.item {
			if err := s.end(); err != nil {
				return err
			}
		}
		s.closed = true
		return &ValidationError{Offset: -1, Reason: what + " must be a JSON object, got " + typeName(c), Type: "model_attributes_type"}
	}
	s.pos++
	s.depth = 1
	s.fields = 0
	return nil
}

// Results of nextField that are not an index into the field names.
const (
	done    = -1 // the object is closed and nothing but whitespace follows (outside item mode)
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
		s.closed = true
		if s.item {
			return done, nil
		}
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
