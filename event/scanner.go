package event

import (
	"bytes"
	"slices"
	"strconv"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Canonicalize, the request, batch and stored-event parsers all read JSON
// through the one scanner below, so that there is one definition of the JSON
// accepted and one set of limits.

// MaxDepth is the deepest nesting of objects and arrays that is accepted.
// Every object and array counts one level, the outermost value included: in a
// request body the top-level object is level 1 and the payload object is
// level 2, so a payload may hold 62 further levels.
const MaxDepth = 64

// MaxStoredDepth is the nesting limit for events that are already stored
// (exports, dumps, the live tail), which are judged by their hashes alone:
// the original accepted payloads deeper than MaxDepth, and refusing them
// would be a false tamper alarm. Python's json cannot parse deeper than its
// recursion limit (1,000 by default), so no original event comes near this
// bound; it only keeps a hostile input from exhausting the stack.
const MaxStoredDepth = 10000

// MaxIntDigits is the largest number of digits accepted in an integer, the
// default limit of Python's int() (sys.int_info.default_max_str_digits). The
// original service could not have parsed a longer integer.
const MaxIntDigits = 4300

// scanner is a strict single-pass JSON parser that writes the canonical form
// of what it reads. It recurses once per object or array, at most MaxDepth
// times.
type scanner struct {
	data     []byte
	pos      int
	depth    int // objects and arrays open around the current position
	maxDepth int // MaxDepth, or MaxStoredDepth for stored events

	// Each object in progress records its members here (a stack shared by
	// the nested objects) so that it can sort them when it closes; keys holds
	// their decoded keys, which are what the sort compares.
	members []member
	keys    []byte
	str     []byte // a decoded string value
	tmp     []byte // a copy of an object's members while it is reordered
	out     []byte // the payload while a request is parsed
	skip    []byte // the canonical form of a value that is only checked

	fields   int                // members read so far in a top-level walk
	problems []*ValidationError // problems found by a top-level walk
	// item makes a top-level walk read one item of a batch array: it ends
	// where the item does, and what follows is the array's. closed reports
	// that the walk read its value to the end.
	item, closed bool

	// path[d] says where the value at depth d+1 sits inside the value at
	// depth d, for naming the field of an error. It grows past MaxDepth+1
	// only for stored events.
	path []pathElem
}

type member struct {
	kStart, kEnd int // the key, in scanner.keys
	start, end   int // `"key":value`, in the output
}

type pathElem struct {
	index int // array index, or -1 for an object member
	key   int // offset of the member key's opening quote in data
}

var scanners = sync.Pool{New: func() any { return new(scanner) }}

func getScanner(data []byte) *scanner {
	s := scanners.Get().(*scanner)
	s.data, s.pos, s.depth, s.maxDepth, s.item = data, 0, 0, MaxDepth, false
	if s.path == nil {
		s.path = make([]pathElem, MaxDepth+1)
	}
	return s
}

func putScanner(s *scanner) {
	const keep = 64 << 10 // do not pin large buffers in the pool
	if cap(s.keys) > keep || cap(s.str) > keep || cap(s.tmp) > keep || cap(s.out) > keep ||
		cap(s.skip) > keep || cap(s.members) > 4096 || len(s.path) > MaxDepth+1 {
		return
	}
	s.data = nil
	clear(s.problems)
	s.problems = s.problems[:0]
	s.members, s.keys = s.members[:0], s.keys[:0]
	scanners.Put(s)
}

// start rejects an input with no value in it.
func (s *scanner) start() error {
	s.skipSpace()
	if s.pos == len(s.data) {
		return &ValidationError{Offset: -1, Reason: "empty body: expected a JSON value", Type: "missing"}
	}
	return nil
}

// end rejects anything but whitespace after the value.
func (s *scanner) end() error {
	s.skipSpace()
	if s.pos != len(s.data) {
		return s.syntaxError("unexpected data after the JSON value")
	}
	return nil
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// value parses the value at s.pos (after optional whitespace) and appends its
// canonical form to dst.
func (s *scanner) value(dst []byte) ([]byte, error) {
	s.skipSpace()
	if s.pos == len(s.data) {
		return dst, s.syntaxError("unexpected end of input, expected a value")
	}
	switch c := s.data[s.pos]; c {
	case '{':
		return s.object(dst)
	case '[':
		return s.array(dst)
	case '"':
		// Most strings are printable ASCII without escapes, and are their
		// own canonical form.
		i := s.pos + 1
		for i < len(s.data) && s.data[i] < utf8.RuneSelf && plain[s.data[i]] {
			i++
		}
		if i < len(s.data) && s.data[i] == '"' {
			dst = append(dst, s.data[s.pos:i+1]...)
			s.pos = i + 1
			return dst, nil
		}
		var err error
		if s.str, _, err = s.decodeString(s.str[:0]); err != nil {
			return dst, err
		}
		return appendQuoted(dst, s.str), nil
	case 't':
		return s.literal(dst, "true")
	case 'f':
		return s.literal(dst, "false")
	case 'n':
		return s.literal(dst, "null")
	case 'N', 'I':
		return dst, s.nonFinite()
	default:
		if c == '-' || '0' <= c && c <= '9' {
			return s.number(dst)
		}
		return dst, s.unexpected()
	}
}

func (s *scanner) literal(dst []byte, lit string) ([]byte, error) {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(lit)) {
		return dst, s.unexpected()
	}
	s.pos += len(lit)
	return append(dst, lit...), nil
}

// nonFinite reports NaN, Infinity and -Infinity, which Python accepts and we
// do not; anything else starting like them is an ordinary syntax error.
func (s *scanner) nonFinite() error {
	rest := s.data[s.pos:]
	for _, lit := range []string{"NaN", "Infinity", "-Infinity"} {
		if bytes.HasPrefix(rest, []byte(lit)) {
			return s.fieldError(s.pos, lit+" is not a valid JSON number")
		}
	}
	return s.unexpected()
}

// enter moves past the '{' or '[' at s.pos, one level deeper.
func (s *scanner) enter() error {
	if s.depth == s.maxDepth {
		return s.fieldError(s.pos, "nesting deeper than "+strconv.Itoa(s.maxDepth)+" levels")
	}
	s.depth++
	s.pos++
	if s.depth > len(s.path) {
		s.path = append(s.path, pathElem{})
	}
	return nil
}

func (s *scanner) object(dst []byte) ([]byte, error) {
	if err := s.enter(); err != nil {
		return dst, err
	}
	dst = append(dst, '{')
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		s.depth--
		return append(dst, '}'), nil
	}
	first, kbase := len(s.members), len(s.keys)
	sorted := true
	for {
		s.skipSpace()
		if s.pos == len(s.data) || s.data[s.pos] != '"' {
			return dst, s.expected("a string for an object key")
		}
		s.path[s.depth-1] = pathElem{index: -1, key: s.pos}
		kStart := len(s.keys)
		keys, keyPlain, err := s.decodeString(s.keys)
		if s.keys = keys; err != nil {
			return dst, err
		}
		kEnd := len(s.keys)
		s.skipSpace()
		if s.pos == len(s.data) || s.data[s.pos] != ':' {
			return dst, s.expected("':' after an object key")
		}
		s.pos++
		if len(s.members) > first {
			dst = append(dst, ',')
			prev := s.members[len(s.members)-1]
			if sorted && bytes.Compare(s.keys[prev.kStart:prev.kEnd], s.keys[kStart:kEnd]) >= 0 {
				sorted = false
			}
		}
		start := len(dst)
		if keyPlain {
			dst = append(dst, '"')
			dst = append(dst, s.keys[kStart:kEnd]...)
			dst = append(dst, '"', ':')
		} else {
			dst = appendQuoted(dst, s.keys[kStart:kEnd])
			dst = append(dst, ':')
		}
		if dst, err = s.value(dst); err != nil {
			return dst, err
		}
		s.members = append(s.members, member{kStart, kEnd, start, len(dst)})
		s.skipSpace()
		if s.pos < len(s.data) {
			if c := s.data[s.pos]; c == ',' {
				s.pos++
				continue
			} else if c == '}' {
				s.pos++
				break
			}
		}
		return dst, s.expected("',' or '}' in an object")
	}
	if !sorted {
		dst = s.reorder(dst, first)
	}
	s.members, s.keys = s.members[:first], s.keys[:kbase]
	s.depth--
	return append(dst, '}'), nil
}

// reorder rewrites the members of the object being closed, s.members[first:],
// in key order, keeping only the last member of each key.
func (s *scanner) reorder(dst []byte, first int) []byte {
	ms := s.members[first:]
	base := ms[0].start // the first member read is the first written
	keys := s.keys
	slices.SortStableFunc(ms, func(a, b member) int {
		return bytes.Compare(keys[a.kStart:a.kEnd], keys[b.kStart:b.kEnd])
	})
	s.tmp = append(s.tmp[:0], dst[base:]...)
	dst = dst[:base]
	for i, m := range ms {
		if i+1 < len(ms) && bytes.Equal(keys[m.kStart:m.kEnd], keys[ms[i+1].kStart:ms[i+1].kEnd]) {
			continue // a later member has the same key
		}
		if len(dst) > base {
			dst = append(dst, ',')
		}
		dst = append(dst, s.tmp[m.start-base:m.end-base]...)
	}
	return dst
}

func (s *scanner) array(dst []byte) ([]byte, error) {
	if err := s.enter(); err != nil {
		return dst, err
	}
	dst = append(dst, '[')
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		s.depth--
		return append(dst, ']'), nil
	}
	for i := 0; ; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		s.path[s.depth-1] = pathElem{index: i}
		var err error
		if dst, err = s.value(dst); err != nil {
			return dst, err
		}
		s.skipSpace()
		if s.pos < len(s.data) {
			if c := s.data[s.pos]; c == ',' {
				s.pos++
				continue
			} else if c == ']' {
				s.pos++
				break
			}
		}
		return dst, s.expected("',' or ']' in an array")
	}
	s.depth--
	return append(dst, ']'), nil
}

// decodeString decodes the string token at s.pos, appending its UTF-8 text to
// dst, and moves s.pos past the closing quote. isPlain reports that the token
// was printable ASCII without escapes, and so its own canonical form.
func (s *scanner) decodeString(dst []byte) (_ []byte, isPlain bool, err error) {
	data := s.data
	i := s.pos + 1
	run := i
	isPlain = true
	for {
		if i == len(data) {
			s.pos = i
			return dst, false, s.syntaxError("unexpected end of input in a string")
		}
		c := data[i]
		if c < utf8.RuneSelf && plain[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			s.pos = i + 1
			return append(dst, data[run:i]...), isPlain, nil
		case c == '\\':
			isPlain = false
			dst = append(dst, data[run:i]...)
			if dst, i, err = s.decodeEscape(dst, i); err != nil {
				return dst, false, err
			}
			run = i
		case c < ' ':
			s.pos = i
			return dst, false, s.syntaxError("control character " + hexRune(rune(c)) + " in a string must be escaped")
		default: // DEL or c >= utf8.RuneSelf
			isPlain = false
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				s.pos = i
				return dst, false, s.syntaxError("invalid UTF-8")
			}
			i += size
		}
	}
}

// decodeEscape decodes the escape sequence at data[i] == '\\'.
func (s *scanner) decodeEscape(dst []byte, i int) ([]byte, int, error) {
	data := s.data
	if i+1 == len(data) {
		s.pos = i + 1
		return dst, i, s.syntaxError("unexpected end of input in a string")
	}
	switch c := data[i+1]; c {
	case '"', '\\', '/':
		return append(dst, c), i + 2, nil
	case 'b':
		return append(dst, '\b'), i + 2, nil
	case 'f':
		return append(dst, '\f'), i + 2, nil
	case 'n':
		return append(dst, '\n'), i + 2, nil
	case 'r':
		return append(dst, '\r'), i + 2, nil
	case 't':
		return append(dst, '\t'), i + 2, nil
	case 'u':
		r, ok := hex4(data, i+2)
		if !ok {
			s.pos = i
			return dst, i, s.syntaxError(`invalid \u escape: expected 4 hex digits`)
		}
		switch {
		case 0xDC00 <= r && r <= 0xDFFF:
			return dst, i, s.fieldError(i, "unpaired UTF-16 surrogate "+hexRune(r)+" (a low surrogate must follow a high one)")
		case 0xD800 <= r && r <= 0xDBFF:
			lo, ok := rune(0), false
			if i+7 < len(data) && data[i+6] == '\\' && data[i+7] == 'u' {
				lo, ok = hex4(data, i+8)
			}
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return dst, i, s.fieldError(i, "unpaired UTF-16 surrogate "+hexRune(r)+" (a high surrogate must be followed by a \\u escape of a low one)")
			}
			return utf8.AppendRune(dst, 0x10000+(r-0xD800)<<10+(lo-0xDC00)), i + 12, nil
		}
		return utf8.AppendRune(dst, r), i + 6, nil
	default:
		s.pos = i
		if c < ' ' || c >= utf8.RuneSelf {
			return dst, i, s.syntaxError("invalid escape in a string")
		}
		return dst, i, s.syntaxError(`invalid escape '\` + string(rune(c)) + `' in a string`)
	}
}

func hex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// hexRune formats r as U+XXXX.
func hexRune(r rune) string {
	return "U+" + string(appendU4(nil, r)[2:])
}

// scanNumber moves s.pos past the number token at s.pos, checking the RFC 8259
// grammar, and reports whether it has a fraction or an exponent.
func (s *scanner) scanNumber() (isFloat bool, err error) {
	data, i := s.data, s.pos
	if data[i] == '-' {
		i++
		if i < len(data) && data[i] == 'I' {
			return false, s.nonFinite()
		}
	}
	digits := func() bool {
		start := i
		for i < len(data) && '0' <= data[i] && data[i] <= '9' {
			i++
		}
		return i > start
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
		if i < len(data) && '0' <= data[i] && data[i] <= '9' {
			s.pos = i - 1
			return false, s.syntaxError("leading zeros are not allowed in numbers")
		}
	case !digits():
		s.pos = i
		return false, s.syntaxError("invalid number: expected a digit")
	}
	if i < len(data) && data[i] == '.' {
		i++
		if !digits() {
			s.pos = i
			return false, s.syntaxError("invalid number: expected a digit after '.'")
		}
		isFloat = true
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if !digits() {
			s.pos = i
			return false, s.syntaxError("invalid number: expected a digit in the exponent")
		}
		isFloat = true
	}
	s.pos = i
	return isFloat, nil
}

func (s *scanner) number(dst []byte) ([]byte, error) {
	start := s.pos
	isFloat, err := s.scanNumber()
	if err != nil {
		return dst, err
	}
	tok := s.data[start:s.pos]
	if !isFloat {
		n := len(tok)
		if tok[0] == '-' {
			n--
		}
		if n > MaxIntDigits {
			return dst, s.fieldError(start, "integer longer than "+strconv.Itoa(MaxIntDigits)+" digits")
		}
		if len(tok) == 2 && tok[0] == '-' && tok[1] == '0' { // -0
			return append(dst, '0'), nil
		}
		return append(dst, tok...), nil
	}
	if reprAlready(tok) {
		return append(dst, tok...), nil
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil { // only overflow is possible: the grammar was checked
		return dst, s.fieldError(start, "number outside the float64 range")
	}
	return appendFloat(dst, f), nil
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
