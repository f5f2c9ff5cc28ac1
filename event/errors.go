package event

import (
	"errors"
	"strconv"
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
