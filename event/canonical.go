package event

import (
	"bytes"
	"strconv"
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

// reprAlready reports that tok, a JSON number with a fraction and no
// exponent, is exactly what appendFloat writes for its value, so that the
// value need not be parsed and printed again: at most 15 significant digits
// (any two decimals that short are different doubles, so the shortest
// digits that give the value back are these), no zero ending the fraction
// but the one of "5.0", and a first significant digit from the 10^-4 to
// the 10^15 place, where Python writes a float without an exponent.
func reprAlready(tok []byte) bool {
	if len(tok) > 0 && tok[0] == '-' {
		tok = tok[1:]
	}
	dot := bytes.IndexByte(tok, '.')
	if dot < 1 || dot == len(tok)-1 {
		return false
	}
	intPart, frac := tok[:dot], tok[dot+1:]
	for _, c := range frac {
		if c < '0' || c > '9' {
			return false // an exponent
		}
	}
	if frac[len(frac)-1] == '0' && len(frac) > 1 {
		return false
	}
	if intPart[0] != '0' { // the first significant digit is in intPart
		return len(intPart)+len(frac) <= 15 || len(intPart) <= 15 && string(frac) == "0"
	}
	// 0.ddd: the zeros after the point place the first significant digit.
	zeros := 0
	for zeros < len(frac) && frac[zeros] == '0' {
		zeros++
	}
	if zeros == len(frac) {
		return true // 0.0
	}
	return zeros <= 3 && len(frac)-zeros <= 15
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

// canonicalLen returns the length of the JSON value at the start of d if
// it is already in canonical form and simple enough to tell so in one pass
// that writes nothing: keys and strings of plain bytes only, each object's
// keys strictly ascending, integers without "-0", numbers with a fraction
// that reprAlready keeps, no whitespace, at most 32 levels. ok is false for
// anything else, canonical or not, which the scanner then reads as usual.
// Served payloads are canonical, and checking that they are costs less
// than writing them again.
func canonicalLen(d []byte, depth int) (n int, ok bool) {
	if len(d) == 0 || depth > 32 {
		return 0, false
	}
	switch c := d[0]; {
	case c == '"':
		n := plainPrefix(d[1:])
		if 1+n == len(d) || d[1+n] != '"' {
			return 0, false
		}
		return n + 2, true
	case c == '{':
		i := 1
		var prev []byte
		for first := true; ; first = false {
			if i < len(d) && d[i] == '}' && first {
				return i + 1, true
			}
			if !first {
				if i == len(d) || d[i] != ',' {
					return 0, false
				}
				i++
			}
			k, ok := canonicalLen(d[i:], depth)
			if !ok || d[i] != '"' || i+k == len(d) || d[i+k] != ':' {
				return 0, false
			}
			key := d[i+1 : i+k-1]
			if !first && bytes.Compare(prev, key) >= 0 {
				return 0, false
			}
			prev = key
			i += k + 1
			v, ok := canonicalLen(d[i:], depth+1)
			if !ok {
				return 0, false
			}
			i += v
			if i < len(d) && d[i] == '}' {
				return i + 1, true
			}
		}
	case c == '[':
		i := 1
		if i < len(d) && d[i] == ']' {
			return 2, true
		}
		for {
			v, ok := canonicalLen(d[i:], depth+1)
			if !ok {
				return 0, false
			}
			i += v
			if i == len(d) {
				return 0, false
			}
			if d[i] == ']' {
				return i + 1, true
			}
			if d[i] != ',' {
				return 0, false
			}
			i++
		}
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(d) >= len(lit) && string(d[:len(lit)]) == lit {
				return len(lit), true
			}
		}
		return 0, false
	case c == '-' || '0' <= c && c <= '9':
		i := 0
		if c == '-' {
			i++
		}
		start := i
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
		digits := i - start
		if digits == 0 || digits > 1 && d[start] == '0' {
			return 0, false
		}
		if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
			return 0, false
		}
		if i == len(d) || d[i] != '.' {
			// An integer is written as it came but for -0 (and
			// MaxIntDigits, far beyond this cut).
			return i, digits <= 300 && string(d[:i]) != "-0"
		}
		i++
		fracStart := i
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
		if i == fracStart || i < len(d) && (d[i] == 'e' || d[i] == 'E') {
			return 0, false
		}
		return i, reprAlready(d[:i])
	}
	return 0, false
}
