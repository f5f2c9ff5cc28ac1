package store

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/audit-stream/audit-stream/event"
)

// PayloadMatch selects events whose payload holds, at Path (object keys from
// the top), a value equal to one of Values. A value matches a JSON string with
// exactly its text, and also the number, true, false or null it spells when
// it parses as one: "42" matches both "42" and 42 (and 42.0), "true" both
// "true" and true.
type PayloadMatch struct {
	Path   []string
	Values []string
}

// MaxPathDepth bounds a payload path.
const MaxPathDepth = 16

// CheckPathSegment reports why seg cannot be a payload path segment, or nil.
// Segments are restricted to ASCII letters, digits, '_' and '-' so that a path
// has one spelling in every backend's JSON path syntax without quoting rules.
func CheckPathSegment(seg string) error {
	if seg == "" {
		return fmt.Errorf("empty path segment")
	}
	if len(seg) > 128 {
		return fmt.Errorf("path segment longer than 128 bytes")
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("path segment %q may hold only ASCII letters, digits, '_' and '-'", seg)
		}
	}
	return nil
}

// Matches reports whether e satisfies every condition of f. It is the
// reference meaning of a Filter: backends may evaluate parts of it in their
// query language, and must select exactly the events Matches accepts.
func (f *Filter) Matches(e *event.Event) bool {
	if !in(f.Kinds, e.Kind) || !in(f.Sources, e.Source) {
		return false
	}
	if e.ID <= f.After || f.Until > 0 && e.ID > f.Until {
		return false
	}
	if f.HasTimeRange() {
		t, ok := TimeOf(e.Timestamp)
		if !ok || !f.TimeFrom.IsZero() && t < f.TimeFrom.UnixMicro() || !f.TimeTo.IsZero() && t >= f.TimeTo.UnixMicro() {
			return false
		}
	}
	return f.MatchesPayload(e.Payload)
}

// HasTimeRange reports whether f bounds the event time.
func (f *Filter) HasTimeRange() bool { return !f.TimeFrom.IsZero() || !f.TimeTo.IsZero() }

// MatchesPayload reports whether payload (canonical JSON) satisfies f's
// payload equalities and text search.
func (f *Filter) MatchesPayload(payload []byte) bool {
	for i := range f.Payload {
		if !f.Payload[i].matches(payload) {
			return false
		}
	}
	if f.Text != "" && !bytes.Contains(payload, TextNeedle(f.Text)) {
		return false
	}
	return true
}

// TextNeedle is the bytes Text is searched as: its canonical JSON string
// escaping without the quotes, so that a search for "é" or a quote finds it
// as the canonical payload spells it (\u00e9, \").
func TextNeedle(text string) []byte {
	b := event.AppendString(nil, text)
	return b[1 : len(b)-1]
}

func (m *PayloadMatch) matches(payload []byte) bool {
	raw, ok := Lookup(payload, m.Path)
	if !ok {
		return false
	}
	for _, v := range m.Values {
		if ValueEquals(raw, v) {
			return true
		}
	}
	return false
}

func in(set []string, v string) bool {
	if len(set) == 0 {
		return true
	}
	for _, s := range set {
		if s == v {
			return true
		}
	}
	return false
}

// TimeOf returns the instant of a stored timestamp in Unix microseconds (the
// unit backends index), or false if it does not parse.
func TimeOf(ts string) (int64, bool) {
	t, err := event.ParseTimestamp(ts)
	if err != nil {
		return 0, false
	}
	return t.UnixMicro(), true
}

// ValueEquals reports whether the canonical JSON value raw equals the query
// value v: as a string always, and as the number or literal v spells.
func ValueEquals(raw []byte, v string) bool {
	if len(raw) == 0 {
		return false
	}
	switch c := raw[0]; {
	case c == '"':
		return bytes.Equal(raw, event.AppendString(make([]byte, 0, len(v)+2), v))
	case c == 't' || c == 'f' || c == 'n':
		return string(raw) == v
	case c == '-' || '0' <= c && c <= '9':
		want, ok := ParseNumber(v)
		if !ok {
			return false
		}
		return numberEquals(string(raw), want)
	}
	return false
}

// Number is a query value that spells a JSON number.
type Number struct {
	Int     int64
	IsInt   bool
	Float   float64
	Literal string
}

// ParseNumber parses v if it is a JSON number (RFC 8259 grammar).
func ParseNumber(v string) (Number, bool) {
	if !isJSONNumber(v) {
		return Number{}, false
	}
	n := Number{Literal: v}
	if i, err := strconv.ParseInt(v, 10, 64); err == nil {
		n.Int, n.IsInt, n.Float = i, true, float64(i)
		return n, true
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return Number{}, false // beyond the double range
	}
	n.Float = f
	return n, true
}

func numberEquals(raw string, want Number) bool {
	if want.IsInt {
		if i, err := strconv.ParseInt(raw, 10, 64); err == nil {
			return i == want.Int
		}
	}
	f, err := strconv.ParseFloat(raw, 64)
	return err == nil && f == want.Float
}

func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		j := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		return i - j
	}
	if i < len(s) && s[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// Lookup returns the raw canonical JSON value at path in the payload object,
// or false if some key on the way is missing or not an object.
func Lookup(payload []byte, path []string) ([]byte, bool) {
	v := payload
	for _, key := range path {
		var ok bool
		if v, ok = member(v, key); !ok {
			return nil, false
		}
	}
	return v, len(path) > 0
}

// member finds key in the JSON object obj (canonical: no white space).
func member(obj []byte, key string) ([]byte, bool) {
	if len(obj) < 2 || obj[0] != '{' {
		return nil, false
	}
	i := 1
	for i < len(obj) && obj[i] != '}' {
		if obj[i] == ',' {
			i++
		}
		ks := i
		ke := skipValue(obj, i) // the key is a string value
		if ke < 0 || ke >= len(obj) || obj[ke] != ':' {
			return nil, false
		}
		vs := ke + 1
		ve := skipValue(obj, vs)
		if ve < 0 {
			return nil, false
		}
		if keyEquals(obj[ks:ke], key) {
			return obj[vs:ve], true
		}
		i = ve
	}
	return nil, false
}

// keyEquals compares a quoted canonical key with a path segment, which
// CheckPathSegment keeps free of anything JSON escapes.
func keyEquals(quoted []byte, key string) bool {
	return len(quoted) == len(key)+2 && string(quoted[1:len(quoted)-1]) == key
}

// skipValue returns the index just after the JSON value starting at i, or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		for i++; i < len(b); i++ {
			switch b[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
		return -1
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			case '"':
				j := skipValue(b, i)
				if j < 0 {
					return -1
				}
				i = j - 1
			}
		}
		return -1
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ':' {
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
}

// ScanLimitError is returned by Scan when a filter that the backend
// evaluates row by row (an unindexed payload path, a text search) examined
// MaxScan events without finishing. Events delivered before it stand.
type ScanLimitError struct {
	Examined int
	// Last is the id of the last event examined: the scan may be resumed
	// after it (ascending) or before it (descending).
	Last int64
}

func (e *ScanLimitError) Error() string {
	return fmt.Sprintf("store: filter scanned %d events (up to id %d) without finishing", e.Examined, e.Last)
}
