package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// compatTestdata holds the original service's compatibility fixtures, kept in
// the repository so that a lone clone tests itself.
var compatTestdata = filepath.Join("..", "testdata")

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(compatTestdata, name))
	if err != nil {
		t.Fatalf("reading compatibility fixture: %v", err)
	}
	return b
}

type vector struct {
	Name        string `json:"name"`
	RequestBody string `json:"request_body"`
	EventID     int64  `json:"event_id"`
	Timestamp   string `json:"timestamp"`
	PrevHash    string `json:"prev_hash"`
	Canonical   string `json:"canonical"`
	Hash        string `json:"hash"`
}

func loadVectors(t testing.TB) []vector {
	var f struct {
		Vectors []vector `json:"vectors"`
	}
	if err := json.Unmarshal(readFixture(t, "canonical-vectors.json"), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	return f.Vectors
}

func mustHash(t testing.TB, s string) Hash {
	t.Helper()
	h, err := ParseHash(s)
	if err != nil {
		t.Fatalf("ParseHash(%q): %v", s, err)
	}
	return h
}

func TestCanonicalVectors(t *testing.T) {
	prev := ZeroHash
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			req, err := ParseRequest([]byte(v.RequestBody), DefaultKindSet)
			if err != nil {
				t.Fatalf("ParseRequest: %v", err)
			}
			if req.Timestamp != "" {
				t.Errorf("Timestamp = %q, want none sent", req.Timestamp)
			}
			ev := Event{
				ID:        v.EventID,
				Timestamp: v.Timestamp,
				Kind:      req.Kind,
				Source:    req.Source,
				Payload:   req.Payload,
				PrevHash:  mustHash(t, v.PrevHash),
			}
			if ev.PrevHash != prev {
				t.Errorf("vectors do not chain: prev_hash %s, previous hash %s", ev.PrevHash, prev)
			}
			if got := ev.AppendCanonicalBody(nil); string(got) != v.Canonical {
				t.Errorf("canonical body\n got %s\nwant %s", got, v.Canonical)
			}
			h, _ := ev.ComputeHash(nil)
			if h.String() != v.Hash {
				t.Errorf("hash = %s, want %s", h, v.Hash)
			}
			// The payload is canonical already: canonicalising it again
			// changes nothing.
			again, err := Canonicalize(req.Payload)
			if err != nil || !bytes.Equal(again, req.Payload) {
				t.Errorf("Canonicalize(payload) = %s, %v; want %s", again, err, req.Payload)
			}
			prev = mustHash(t, v.Hash)
		})
	}
}

func TestAppendString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"plain ascii", `"plain ascii"`},
		{`"\`, `"\"\\"`},
		{"\n\r\t\b\f", `"\n\r\t\b\f"`},
		{"\x00\x01\x1f", `"\u0000\u0001\u001f"`},
		{"\x7f", `"\u007f"`}, // Python escapes DEL: only ' ' to '~' stay literal
		{"/<>&'", `"/<>&'"`},
		{"é", `"\u00e9"`},
		{"中文", `"\u4e2d\u6587"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"\uFEFF\uFFFF", `"\ufeff\uffff"`},
		{"🎉", `"\ud83c\udf89"`},
		{"\U0010FFFF", `"\udbff\udfff"`},
		{"\U00010000", `"\ud800\udc00"`},
		{"a\xffb", `"a\ufffdb"`}, // invalid UTF-8 cannot come from a parser
	}
	for _, tt := range tests {
		if got := string(AppendString([]byte("x"), tt.in)); got != "x"+tt.want {
			t.Errorf("AppendString(%q) = %s, want x%s", tt.in, got, tt.want)
		}
	}
}

func TestFloatFormat(t *testing.T) {
	tests := []struct{ in, want string }{
		{"1.0", "1.0"},
		{"100.0", "100.0"},
		{"1e2", "100.0"},
		{"1E2", "100.0"},
		{"0.0001", "0.0001"},
		{"0.00012", "0.00012"},
		{"0.00001", "1e-05"},
		{"0.000012", "1.2e-05"},
		{"1e16", "1e+16"},
		{"1e15", "1000000000000000.0"},
		{"12345678901234567.0", "1.2345678901234568e+16"},
		{"1234567890123456.0", "1234567890123456.0"},
		{"9999999999999998.0", "9999999999999998.0"},
		{"-0.0", "-0.0"},
		{"0.0", "0.0"},
		{"0e0", "0.0"},
		{"-0e5", "-0.0"},
		{"1.5e300", "1.5e+300"},
		{"5e-324", "5e-324"},
		{"4.9e-324", "5e-324"},
		{"1.7976931348623157e308", "1.7976931348623157e+308"},
		{"1.7976931348623158e308", "1.7976931348623157e+308"},
		{"0.30000000000000004", "0.30000000000000004"},
		{"0.1", "0.1"},
		{"-2.5", "-2.5"},
		{"3.14159", "3.14159"},
		{"100.25", "100.25"},
		{"2.5E-7", "2.5e-07"},
		{"2.5e-07", "2.5e-07"},
		{"1e-400", "0.0"}, // underflow is 0, as in Python
		{"-1e-400", "-0.0"},
		{"123.456e-2", "1.23456"},
		{"1e22", "1e+22"},
		{"1e-7", "1e-07"},
		{"1.0e+100", "1e+100"},
		{"0.1e1", "1.0"},
		{"123456789.123456789", "123456789.12345679"},
		{"9007199254740993.0", "9007199254740992.0"},
		{"2.2250738585072014e-308", "2.2250738585072014e-308"},
		// Around the shortcut for numbers already written as repr writes
		// them (reprAlready).
		{"0.50", "0.5"},
		{"5.10", "5.1"},
		{"5.00", "5.0"},
		{"0.00", "0.0"},
		{"-0.000", "-0.0"},
		{"0.000123", "0.000123"},
		{"0.00009", "9e-05"},
		{"123456789012345.0", "123456789012345.0"},
		{"123456789012345.6", "123456789012345.6"},
		{"1234567890123456.5", "1234567890123456.5"},
		{"0.123456789012345", "0.123456789012345"},
		{"0.1234567890123456", "0.1234567890123456"},
		{"0.12345678901234567", "0.12345678901234566"},
		{"99999999999999.99", "99999999999999.98"},
		{"9999999999999999.0", "1e+16"},
	}
	for _, tt := range tests {
		got, err := Canonicalize([]byte(tt.in))
		if err != nil || string(got) != tt.want {
			t.Errorf("Canonicalize(%s) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestCanonicalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"0", "0"},
		{"-0", "0"},
		{"  -1 ", "-1"},
		{"123456789012345678901234567890", "123456789012345678901234567890"},
		{"-9223372036854775809", "-9223372036854775809"},
		{strings.Repeat("9", MaxIntDigits), strings.Repeat("9", MaxIntDigits)},
		{"-" + strings.Repeat("9", MaxIntDigits), "-" + strings.Repeat("9", MaxIntDigits)},
		{"true", "true"},
		{"false", "false"},
		{"null", "null"},
		{`"a\/b"`, `"a/b"`},
		{`"\u00E9\u00e9"`, `"\u00e9\u00e9"`},
		{`"\ud83c\udf89"`, `"\ud83c\udf89"`},
		{`"\uD83C\uDF89"`, `"\ud83c\udf89"`},
		{`"\u0000"`, `"\u0000"`},
		{"\"\x7f\"", `"\u007f"`},
		{`"\u007F"`, `"\u007f"`},
		{"\"~\"", "\"~\""},
		{`"\u0041"`, `"A"`},
		{" [ ] ", "[]"},
		{" { } ", "{}"},
		{"[1, [2, [3]], {}]", "[1,[2,[3]],{}]"},
		{`{"b":1,"a":2}`, `{"a":2,"b":1}`},
		{`{"a":1,"a":2}`, `{"a":2}`},
		{`{"a":1,"b":0,"a":2}`, `{"a":2,"b":0}`},
		{`{"b":0,"a":1,"b":2,"a":3,"b":4}`, `{"a":3,"b":4}`},
		{`{"a":{"y":1,"x":2},"a":{"d":1,"c":2}}`, `{"a":{"c":2,"d":1}}`},
		// Code point order: "B" < "a" < "e" < "z" < "é" < "中" < "🎉"; an
		// escaped key sorts by what it decodes to.
		{`{"🎉":0,"中":1,"\u00e9":2,"z":3,"e":4,"a":5,"B":6}`,
			`{"B":6,"a":5,"e":4,"z":3,"\u00e9":2,"\u4e2d":1,"\ud83c\udf89":0}`},
		// U+FFFF sorts before U+10000 by code point (Python), though not by
		// UTF-16 code units.
		{`{"\ud800\udc00":1,"\uffff":2}`, `{"\uffff":2,"\ud800\udc00":1}`},
		{`{"aa":1,"a":2,"":3}`, `{"":3,"a":2,"aa":1}`},
		{`[{"b":1,"a":2},"z","a",3,1]`, `[{"a":2,"b":1},"z","a",3,1]`},
		{"{\"k\":\"tab\\there\\nnew\\u0001\\u001f\\b\\f\\r\"}", `{"k":"tab\there\nnew\u0001\u001f\b\f\r"}`},
	}
	for _, tt := range tests {
		got, err := Canonicalize([]byte(tt.in))
		if err != nil || string(got) != tt.want {
			t.Errorf("Canonicalize(%q) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func nest(n int, open, close, inner string) string {
	return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
}

// TestDepthLimit pins the depth rule: every object and array counts, the
// outermost one is level 1, MaxDepth levels are accepted and one more is not.
func TestDepthLimit(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   func(depth int) string
	}{
		{"arrays", func(d int) string { return nest(d, "[", "]", "") }},
		{"objects", func(d int) string { return nest(d-1, `{"a":`, "}", "{}") }},
		{"mixed", func(d int) string {
			return nest(d/2, `{"a":[`, "]}", strings.Repeat("[", d%2)+strings.Repeat("]", d%2))
		}},
	} {
		if _, err := Canonicalize([]byte(tc.in(MaxDepth))); err != nil {
			t.Errorf("%s: depth %d rejected: %v", tc.name, MaxDepth, err)
		}
		_, err := Canonicalize([]byte(tc.in(MaxDepth + 1)))
		var ve *ValidationError
		if !errors.As(err, &ve) || !strings.Contains(ve.Reason, "nesting deeper than 64 levels") {
			t.Errorf("%s: depth %d: err = %v, want nesting error", tc.name, MaxDepth+1, err)
		}
	}

	// In a request, the body is level 1 and the payload object level 2.
	body := func(payloadDepth int) string {
		return `{"kind":"other","source":"s","payload":` + nest(payloadDepth-1, `{"a":`, "}", "{}") + "}"
	}
	if _, err := ParseRequest([]byte(body(MaxDepth-1)), DefaultKindSet); err != nil {
		t.Errorf("payload of %d levels (body %d) rejected: %v", MaxDepth-1, MaxDepth, err)
	}
	in := body(MaxDepth)
	_, err := ParseRequest([]byte(in), DefaultKindSet)
	checkRejection(t, in, err, "payload"+strings.Repeat(".a", MaxDepth-1), "nesting deeper than 64 levels")
	var ve *ValidationError
	errors.As(err, &ve)
	if want := strings.LastIndex(in, "{}"); ve.Offset != want {
		t.Errorf("Offset = %d, want %d", ve.Offset, want)
	}
	// Deep input far beyond the limit fails fast, without deep recursion.
	if _, err := Canonicalize([]byte(strings.Repeat("[", 1<<20))); err == nil {
		t.Error("a million open brackets accepted")
	}
}

func TestCanonicalizeRejects(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		field  string
		offset int
		reason string
	}{
		{"empty", "", "", -1, "empty body"},
		{"whitespace only", " \n\t\r ", "", -1, "empty body"},
		{"trailing garbage", `{} x`, "", 3, "unexpected data after the JSON value"},
		{"two values", `1 2`, "", 2, "unexpected data after the JSON value"},
		{"NaN", `NaN`, "", 0, "NaN is not a valid JSON number"},
		{"Infinity", `[Infinity]`, "[0]", 1, "Infinity is not a valid JSON number"},
		{"-Infinity", `{"a":-Infinity}`, "a", 5, "-Infinity is not a valid JSON number"},
		{"nan lowercase", `nan`, "", 0, "unexpected character 'n'"},
		{"raw newline in string", "\"a\nb\"", "", 2, "control character U+000a"},
		{"raw NUL in string", "\"\x00\"", "", 1, "control character U+0000"},
		{"invalid escape", `"\x"`, "", 1, `invalid escape '\x'`},
		{"escape of a quote char", `"\'"`, "", 1, `invalid escape '\''`},
		{"short unicode escape", `"\u12"`, "", 1, `invalid \u escape`},
		{"bad hex in escape", `"\u12g4"`, "", 1, `invalid \u escape`},
		{"lone high surrogate", `{"a":"x\ud800"}`, "a", 7, "unpaired UTF-16 surrogate U+d800"},
		{"high then text", `"\ud800abcdef"`, "", 1, "unpaired UTF-16 surrogate"},
		{"high then high", `"\ud800\ud800"`, "", 1, "unpaired UTF-16 surrogate"},
		{"high then BMP", `"\ud800\u0041"`, "", 1, "unpaired UTF-16 surrogate"},
		{"lone low surrogate", `["\udc00"]`, "[0]", 2, "unpaired UTF-16 surrogate U+dc00"},
		{"low then high", `"\udc00\ud800"`, "", 1, "unpaired UTF-16 surrogate"},
		{"surrogate in key", `{"a":{"\udfff":1}}`, "a", 7, "unpaired UTF-16 surrogate"},
		{"invalid UTF-8 in string", "\"a\xffb\"", "", 2, "invalid UTF-8"},
		{"UTF-8 encoded surrogate", "\"\xed\xa0\x80\"", "", 1, "invalid UTF-8"},
		{"overlong UTF-8", "\"\xc0\xaf\"", "", 1, "invalid UTF-8"},
		{"truncated UTF-8", "\"\xe4\xb8\"", "", 1, "invalid UTF-8"},
		{"invalid UTF-8 outside strings", "[1,\xff]", "", 3, "invalid UTF-8"},
		{"BOM", "\xef\xbb\xbf{}", "", 0, `unexpected character '\ufeff'`},
		{"leading zero", `01`, "", 0, "leading zeros"},
		{"negative leading zero", `[-012]`, "", 2, "leading zeros"},
		{"plus sign", `+1`, "", 0, "unexpected character '+'"},
		{"bare fraction", `.5`, "", 0, "unexpected character '.'"},
		{"trailing dot", `1.`, "", 2, "expected a digit after '.'"},
		{"dot exponent", `1.e5`, "", 2, "expected a digit after '.'"},
		{"empty exponent", `1e`, "", 2, "expected a digit in the exponent"},
		{"signed empty exponent", `1e+`, "", 3, "expected a digit in the exponent"},
		{"lone minus", `-`, "", 1, "expected a digit"},
		{"minus letter", `-a`, "", 1, "expected a digit"},
		{"hex number", `0x10`, "", 1, "unexpected data after the JSON value"},
		{"overflow", `{"n":1e400}`, "n", 5, "number outside the float64 range"},
		{"negative overflow", `[-1.8e308]`, "[0]", 1, "number outside the float64 range"},
		{"int too long", strings.Repeat("1", MaxIntDigits+1), "", 0, "integer longer than 4300 digits"},
		{"negative int too long", "-" + strings.Repeat("1", MaxIntDigits+1), "", 0, "integer longer than 4300 digits"},
		{"unterminated string", `"abc`, "", 4, "unexpected end of input in a string"},
		{"unterminated array", `[1,2`, "", 4, "unexpected end of input, expected ',' or ']'"},
		{"unterminated object", `{"a":1`, "", 6, "unexpected end of input, expected ',' or '}'"},
		{"missing value", `{"a":}`, "", 5, "unexpected character '}'"},
		{"trailing comma in object", `{"a":1,}`, "", 7, "expected a string for an object key"},
		{"trailing comma in array", `[1,]`, "", 3, "unexpected character ']'"},
		{"missing colon", `{"a" 1}`, "", 5, "expected ':' after an object key"},
		{"unquoted key", `{a:1}`, "", 1, "expected a string for an object key"},
		{"single quotes", `{'a':1}`, "", 1, "expected a string for an object key"},
		{"missing comma", `[1 2]`, "", 3, "expected ',' or ']'"},
		{"truncated literal", `tru`, "", 0, "unexpected character 't'"},
		{"capital literal", `True`, "", 0, "unexpected character 'T'"},
		{"comment", `{} // x`, "", 3, "unexpected data after the JSON value"},
		{"vertical tab is not whitespace", "\v1", "", 0, `unexpected character '\v'`},
		{"non-breaking space", "\u00a01", "", 0, "unexpected character"},
		{"nested path", `{"a":{"b.c":[0,{"d":NaN}]}}`, `a["b.c"][1].d`, 20, "NaN"},
		{"path quotes odd keys", `{"":{"a b":{"\u202e":{"é":NaN}}}}`, `[""]["a b"]["\u202e"].é`, 27, "NaN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Canonicalize([]byte(tt.in))
			if err == nil {
				t.Fatalf("Canonicalize(%q) = %s, want an error", tt.in, out)
			}
			checkRejection(t, tt.in, err, tt.field, tt.reason)
			if ve := err.(*ValidationError); ve.Offset != tt.offset {
				t.Errorf("Offset = %d, want %d (%v)", ve.Offset, tt.offset, err)
			}
		})
	}
}

func TestValidationErrorText(t *testing.T) {
	tests := []struct {
		err  ValidationError
		want string
	}{
		{ValidationError{Offset: 17, Reason: "unexpected character '}'"}, "invalid JSON at offset 17: unexpected character '}'"},
		{ValidationError{Field: "payload", Offset: 130, Reason: "nesting deeper than 64 levels"}, "payload: nesting deeper than 64 levels at offset 130"},
		{ValidationError{Field: "kind", Offset: -1, Reason: `unknown kind "foo"`}, `kind: unknown kind "foo"`},
		{ValidationError{Offset: -1, Reason: "body must be a JSON object, got array"}, "body must be a JSON object, got array"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
		var err error = &tt.err
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("errors.Is(%q, ErrInvalid) = false", tt.want)
		}
	}
	if errors.Is(ErrBadHash, ErrInvalid) {
		t.Error("an unrelated error matches ErrInvalid")
	}
}

// The canonical output is what Python's json.loads reads back as the same
// value: every canonical form decodes, and re-encoding what encoding/json
// decodes of an ASCII-only canonical string gives the same bytes.
func TestCanonicalIsValidJSON(t *testing.T) {
	for _, in := range []string{`{"a":"\u00e9\ud83c\udf89\u0000"}`, `[1.5e+300,-0.0,1e-05]`} {
		out, err := Canonicalize([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(out) {
			t.Errorf("%s is not valid JSON", out)
		}
		for _, c := range out {
			if c >= 0x80 || c < 0x20 {
				t.Errorf("%s holds byte %#x; canonical JSON is printable ASCII", out, c)
			}
		}
	}
}

// TestReprAlreadyRandom compares the shortcut with parsing and printing on
// many numbers of every length and magnitude near its bounds.
func TestReprAlreadyRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	passed := 0
	for range 300000 {
		var b []byte
		if r.IntN(2) == 0 {
			b = append(b, '-')
		}
		intLen, fracLen := r.IntN(18), 1+r.IntN(18)
		if intLen == 0 {
			b = append(b, '0')
		} else {
			b = append(b, byte('1'+r.IntN(9)))
			for range intLen - 1 {
				b = append(b, byte('0'+r.IntN(10)))
			}
		}
		b = append(b, '.')
		zeros := r.IntN(6) // leading zeros of the fraction, to reach the 10^-4 bound
		for i := range fracLen {
			if i < zeros {
				b = append(b, '0')
			} else {
				b = append(b, byte('0'+r.IntN(10)))
			}
		}
		if !reprAlready(b) {
			continue
		}
		passed++
		v, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendFloat(nil, v); !bytes.Equal(got, b) {
			t.Fatalf("%s passed through, but repr writes %s", b, got)
		}
	}
	if passed < 10000 {
		t.Fatalf("only %d of the numbers took the shortcut", passed)
	}
}
