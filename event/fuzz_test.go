package event

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var fuzzSeeds = []string{
	``, ` `, `0`, `-0`, `-0.0`, `1e400`, `1e-400`, `5e-324`, `1.7976931348623157e308`, `12345678901234567.0`,
	`01`, `1.`, `.5`, `NaN`, `-Infinity`, `true`, `nul`, `"\ud83c\udf89"`, `"\ud800"`, `"\udc00\ud800"`,
	`"\u00e9\/\b\f\n\r\t\"\\"`, "\"\x7f\xc3\xa9\"", "\"\xff\"", "\"\xed\xa0\x80\"", "\"\t\"",
	`{"b":1,"a":[2,{"d":null,"c":false}],"a":3}`, `{"🎉":0,"\uffff":1,"é":2}`, `[[[[[[[[]]]]]]]]`,
	`{"a":1,}`, `[1 2]`, `{"a" 1}`, `{} x`,
}

func FuzzCanonicalize(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(nest(MaxDepth, "[", "]", "")))
	f.Add([]byte(nest(MaxDepth+1, "[", "]", "")))
	// Canonical already, or nearly (canonicalLen).
	for _, s := range []string{`{"a":[1,2.5,"x",true,null,{},[]],"b":{"c":-3,"d":0.000123}}`, `-0`, `{"a":1,"a":2}`, `{"b":1,"a":2}`,
		`[1.50]`, `{"a":"\u00e9"}`, `{"":0}`, `[0,-1,10,1e5]`, nest(40, "[", "]", "")} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Canonicalize(in)
		// What canonicalLen passes as canonical is.
		if n, ok := canonicalLen(in, 1); ok {
			if c, err := Canonicalize(in[:n]); err != nil || !bytes.Equal(c, in[:n]) {
				t.Fatalf("canonicalLen(%q) = %d, but Canonicalize of that gives %q, %v", in, n, c, err)
			}
		}
		if err != nil {
			if _, ok := err.(*ValidationError); !ok {
				t.Fatalf("error %v is not a *ValidationError", err)
			}
			return
		}
		if !json.Valid(in) {
			t.Fatalf("accepted %q, which encoding/json says is invalid", in)
		}
		if !json.Valid(out) {
			t.Fatalf("Canonicalize(%q) = %q, not valid JSON", in, out)
		}
		for _, c := range out {
			if c < 0x20 || c > 0x7e {
				t.Fatalf("Canonicalize(%q) = %q holds byte %#x", in, out, c)
			}
		}
		again, err := Canonicalize(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not a fixed point: Canonicalize(%q) = %q, %v", out, again, err)
		}
		// The same value as encoding/json sees it (numbers as float64, so
		// that 1.0 and 1e0 agree; the last duplicate key wins in both).
		var vin, vout any
		errIn, errOut := json.Unmarshal(in, &vin), json.Unmarshal(out, &vout)
		if (errIn == nil) != (errOut == nil) {
			t.Fatalf("encoding/json: %v on input, %v on output %q", errIn, errOut, out)
		}
		if errIn == nil && !reflect.DeepEqual(vin, vout) {
			t.Fatalf("value changed:\n in %q\nout %q", in, out)
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"kind":"other","source":"s"}`,
		`{"kind":"request_allowed","source":"policy-as-code-engine","payload":{"z":1,"a":{"y":[3,2,1],"b":null},"m":true}}`,
		`{"kind":"other","source":"s","timestamp":"2026-05-15T03:14:15.123456+00:00","payload":{"n":1e-7}}`,
		`{"kind":"other","source":"s","timestamp":"2026-02-29T03:14:15Z"}`,
		`{"kind":"foo","source":""}`, `{"kind":"other","source":"s","payload":null}`, `[]`, `{"kind":"other","kind":"other","source":"s"}`,
		`{"kind":"other","source":"s","extra":[1,NaN]}`,
	} {
		f.Add([]byte(s))
	}
	for _, s := range fuzzSeeds {
		f.Add([]byte(`{"kind":"other","source":"s","payload":{"v":` + s + `}}`))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseRequest(body, DefaultKindSet)
		if err != nil {
			if _, ok := err.(*ValidationError); !ok {
				t.Fatalf("error %v is not a *ValidationError", err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted %q, which encoding/json says is invalid", body)
		}
		if !DefaultKindSet.Has(req.Kind) || req.Source == "" || utf8.RuneCountInString(req.Source) > MaxSourceLen {
			t.Fatalf("accepted %+v", req)
		}
		if req.Timestamp != "" && checkTimestamp(req.Timestamp) != "" {
			t.Fatalf("accepted timestamp %q", req.Timestamp)
		}
		if !strings.HasPrefix(string(req.Payload), "{") {
			t.Fatalf("payload %q is not an object", req.Payload)
		}
		again, err := Canonicalize(req.Payload)
		if err != nil || !bytes.Equal(again, req.Payload) {
			t.Fatalf("payload %q re-canonicalises to %q, %v", req.Payload, again, err)
		}
		// The event made from it is valid JSON and parses back as stored.
		ev := Event{ID: 1, Timestamp: req.Timestamp, Kind: req.Kind, Source: req.Source, Payload: req.Payload}
		ev.Hash, _ = ev.ComputeHash(nil)
		back, err := ParseStored(ev.AppendJSON(nil))
		if err != nil || !equalEvents(back, ev) {
			t.Fatalf("ParseStored(AppendJSON(%+v)) = %+v, %v", ev, back, err)
		}
	})
}

func FuzzParseStored(f *testing.F) {
	zero := strings.Repeat("0", 64)
	f.Add([]byte(`{"event_id":1,"timestamp":"t","kind":"k","source":"s","payload":{},"prev_hash":"` + zero + `","hash":"` + zero + `"}`))
	f.Add([]byte("{\n \"hash\": \"" + zero + "\",\n \"event_id\": 7,\n \"timestamp\": \"\",\n \"kind\": \"\",\n \"source\": \"é\",\n" +
		" \"payload\": {\"z\": [1, 2.50], \"a\": \"é🎉\"},\n \"prev_hash\": \"" + zero + "\"\n}"))
	served := `{"event_id":12,"timestamp":"2026-05-15T03:14:15.123456+00:00","kind":"k","source":"s","payload":{"a":[1,2.5,"x"]},"prev_hash":"` + zero + `","hash":"` + zero + `"}`
	f.Add([]byte(served))
	for _, c := range [][2]string{{"12", "012"}, {"12", "9223372036854775808"}, {"12", "1.0"}, {`"k"`, `"k"`}, {`"s"`, `"é"`},
		{`{"a"`, `{ "a"`}, {`"a":[1,2.5,"x"]`, `"b":1,"a":2`}, {`"prev_hash":"0`, `"prev_hash":"A`}, {`"}`, `"} `}, {`:12,`, `:12,"kind":"k",`}} {
		f.Add([]byte(strings.Replace(served, c[0], c[1], 1)))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		ev, err := ParseStored(in)
		// The short way for served events gives what the walk does.
		walked, werr := parseStored(in, false)
		if (err == nil) != (werr == nil) || err != nil && err.Error() != werr.Error() || err == nil && !equalEvents(ev, walked) {
			t.Fatalf("ParseStored = %+v, %v; the walk alone: %+v, %v", ev, err, walked, werr)
		}
		if err != nil {
			if _, ok := err.(*ValidationError); !ok {
				t.Fatalf("error %v is not a *ValidationError", err)
			}
			return
		}
		if ev.ID < 1 {
			t.Fatalf("accepted event_id %d", ev.ID)
		}
		back, err := ParseStored(ev.AppendJSON(nil))
		if err != nil || !equalEvents(back, ev) {
			t.Fatalf("ParseStored(AppendJSON(%+v)) = %+v, %v", ev, back, err)
		}
	})
}

// FuzzParseTimestamp: any string either parses to an instant within the
// years Python can hold (shifted by at most a day of offset) or is refused
// with the same verdict by the request parser; never a panic.
func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{
		"2026-05-15T03:14:15.123456", "2026-05-15 03:14:15+00:00", "2026-W20-5T03:14:15,5Z",
		"20260515T031415.123456789-0530", "2026W205T03:14:15+05:30:15.5", "9999-12-31T23:59:59-23:59",
		"2026-05-15é03:14", "2026-05-15T03:14:15x+01:00", "yesterday", "2026-05-15T03:14:15Z\x00x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTimestamp(s)
		if (err == nil) != (checkTimestamp(s) == "") {
			t.Fatalf("%q: ParseTimestamp and checkTimestamp disagree (%v)", s, err)
		}
		if err != nil {
			return
		}
		if got.Location() != time.UTC || got.Year() < 0 || got.Year() > 10000 || got.Nanosecond()%1000 != 0 {
			t.Fatalf("%q: %v", s, got)
		}
		if utf8.RuneCountInString(s) < 7 || !isDigit(s[0]) || !isDigit(s[3]) {
			t.Fatalf("%q accepted", s)
		}
		again, err := ParseTimestamp(s)
		if err != nil || !again.Equal(got) {
			t.Fatalf("%q: not deterministic", s)
		}
	})
}

// FuzzFloatRepr: a number that reprAlready passes through unchanged is
// exactly what parsing and printing it gives.
func FuzzFloatRepr(f *testing.F) {
	for _, s := range []string{"0.5", "-0.0", "0.000123", "0.00009", "123456789012345.0", "1234567890123456.5", "0.12345678901234567", "5.10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		if !jsonFraction.MatchString(tok) || !reprAlready([]byte(tok)) {
			return
		}
		v, err := strconv.ParseFloat(tok, 64)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(appendFloat(nil, v)); got != tok {
			t.Fatalf("%s passed through, but repr writes %s", tok, got)
		}
	})
}

// jsonFraction is a JSON number with a fraction and no exponent.
var jsonFraction = regexp.MustCompile(`^-?(0|[1-9][0-9]*)\.[0-9]+$`)
