package event

import (
	"bytes"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"
)

// Canonical JSON.
//
// The canonical form of a JSON value is exactly what the original Python
// service produced with
//
//	json.dumps(json.loads(x), sort_keys=True, separators=(",", ":"))
//
// (ensure_ascii left at its default, True):
//
//   - no whitespace; object members sorted by the code points of their keys
//     (the same order as their UTF-8 bytes), at every depth; when a key is
//     repeated the last member wins; arrays keep their order;
//   - strings escape '"', '\\', \b \f \n \r \t by name, other control
//     characters and every non-ASCII code point as \uXXXX in lowercase hex
//     (a UTF-16 surrogate pair beyond U+FFFF), and so is U+007F (DEL):
//     only ' ' to '~' stand for themselves, so '/', '<', '>', '&' stay
//     literal;
//   - an integer (a number token without '.', 'e' or 'E') keeps its digits
//     exactly, at any size, except that -0 becomes 0;
//   - every other number becomes the nearest float64, printed as Python's
//     repr(float) prints it.
//
// Parsing is stricter than Python's json.loads: see Canonicalize.

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

// AppendString appends s as a canonical JSON string (Python json.dumps
// ensure_ascii=True style). Bytes of s that are not valid UTF-8 are each
// written as \ufffd; strings that come out of this package's parsers are
// always valid UTF-8.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	i, run := 0, 0
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf && plain[c] {
			i++
			continue
		}
		dst = append(dst, s[run:i]...)
		if c < utf8.RuneSelf {
			dst = appendEscapedASCII(dst, c)
			i++
		} else {
			r, size := utf8.DecodeRuneInString(s[i:])
			dst = appendEscapedRune(dst, r)
			i += size
		}
		run = i
	}
	dst = append(dst, s[run:]...)
	return append(dst, '"')
}

// appendQuoted is AppendString for a byte slice holding valid UTF-8.
func appendQuoted(dst, s []byte) []byte {
	dst = append(dst, '"')
	i, run := 0, 0
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf && plain[c] {
			i++
			continue
		}
		dst = append(dst, s[run:i]...)
		if c < utf8.RuneSelf {
			dst = appendEscapedASCII(dst, c)
			i++
		} else {
			r, size := utf8.DecodeRune(s[i:])
			dst = appendEscapedRune(dst, r)
			i += size
		}
		run = i
	}
	dst = append(dst, s[run:]...)
	return append(dst, '"')
}

// plain reports the ASCII bytes that stand for themselves inside a canonical
// string: ' ' to '~' except '"' and '\\'. Python escapes DEL (U+007F) too.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := ' '; c <= '~'; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

func appendEscapedASCII(dst []byte, c byte) []byte {
	switch c {
	case '"':
		return append(dst, '\\', '"')
	case '\\':
		return append(dst, '\\', '\\')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	}
	return appendU4(dst, rune(c))
}

// appendEscapedRune writes a non-ASCII code point as \uXXXX, or as a UTF-16
// surrogate pair beyond the Basic Multilingual Plane.
func appendEscapedRune(dst []byte, r rune) []byte {
	if r > 0xFFFF {
		r -= 0x10000
		dst = appendU4(dst, 0xD800+(r>>10))
		return appendU4(dst, 0xDC00+(r&0x3FF))
	}
	return appendU4(dst, r)
}

func appendU4(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u',
		hexDigits[r>>12&0xF], hexDigits[r>>8&0xF], hexDigits[r>>4&0xF], hexDigits[r&0xF])
}

// appendFloat appends f as Python's repr(float) writes it: the shortest
// digits that round-trip, in fixed notation when the decimal exponent is
// between -5 and 15 (with ".0" when there is no fraction), else in scientific
// notation with a signed exponent of at least two digits. f must be finite.
func appendFloat(dst []byte, f float64) []byte {
	var buf [32]byte
	// 'e' with precision -1 gives the shortest round-trip digits, formatted
	// as d[.ddd]e±XX, which is already Python's scientific form.
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64)
	neg := e[0] == '-'
	mant := e
	if neg {
		mant = e[1:]
	}
	ePos := bytes.IndexByte(mant, 'e')
	exp := 0
	for _, c := range mant[ePos+2:] {
		exp = exp*10 + int(c-'0')
	}
	if mant[ePos+1] == '-' {
		exp = -exp
	}
	// Python: scientific iff decpt <= -4 or decpt > 16, decpt = exp+1.
	if exp < -4 || exp >= 16 {
		return append(dst, e...)
	}
	// Collect the significant digits without the point.
	var dbuf [20]byte
	digits := append(dbuf[:0], mant[0])
	if ePos > 1 {
		digits = append(digits, mant[2:ePos]...)
	}
	if neg {
		dst = append(dst, '-')
	}
	if exp < 0 {
		dst = append(dst, '0', '.')
		for i := -1; i > exp; i-- {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	}
	intLen := exp + 1
	if len(digits) <= intLen {
		dst = append(dst, digits...)
		for i := len(digits); i < intLen; i++ {
			dst = append(dst, '0')
		}
		return append(dst, '.', '0')
	}
	dst = append(dst, digits[:intLen]...)
	dst = append(dst, '.')
	return append(dst, digits[intLen:]...)
}

// Canonicalize parses one JSON value from data and returns its canonical
// bytes. Surrounding whitespace is allowed; anything else after the value is
// not.
//
// Parsing is strict; it rejects, with a *ValidationError, what Python's
// json.loads rejects and more: an empty input, trailing data, the NaN,
// Infinity and -Infinity literals, raw control characters in strings, invalid
// escapes, unpaired UTF-16 surrogate escapes, invalid UTF-8, nesting deeper
// than MaxDepth, numbers that break the RFC 8259 grammar (leading zeros, a
// bare '.', '+1', ...), integers longer than MaxIntDigits digits and numbers
// beyond the float64 range (1e400). Numbers that underflow become 0.0, as in
// Python.
func Canonicalize(data []byte) ([]byte, error) {
	s := getScanner(data)
	defer putScanner(s)
	if err := s.start(); err != nil {
		return nil, err
	}
	out, err := s.value(make([]byte, 0, len(data)))
	if err != nil {
		return nil, err
	}
	if err := s.end(); err != nil {
		return nil, err
	}
	return out, nil
}

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
	s.data, s.pos, s.depth, s.maxDepth = data, 0, 0, MaxDepth
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
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil { // only overflow is possible: the grammar was checked
		return dst, s.fieldError(start, "number outside the float64 range")
	}
	return appendFloat(dst, f), nil
}
