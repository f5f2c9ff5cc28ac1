package event

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// The converse of the fuzzers that check what is refused: whatever is valid
// JSON within the documented limits is accepted. The fuzzer's bytes are read
// by encoding/json and written back by it, which makes valid JSON of any
// input it can read (invalid UTF-8 and lone surrogates become U+FFFD); what
// breaks a documented limit is left out.

// withinLimits reports whether v, at nesting level depth (1 for a top-level
// object or array), keeps the documented limits: MaxDepth levels, integers of
// at most MaxIntDigits digits, other numbers within the float64 range.
func withinLimits(v any, depth int) bool {
	switch v := v.(type) {
	case map[string]any:
		if depth > MaxDepth {
			return false
		}
		for _, m := range v {
			if !withinLimits(m, depth+1) {
				return false
			}
		}
	case []any:
		if depth > MaxDepth {
			return false
		}
		for _, m := range v {
			if !withinLimits(m, depth+1) {
				return false
			}
		}
	case json.Number:
		s := string(v)
		if !strings.ContainsAny(s, ".eE") {
			return len(strings.TrimPrefix(s, "-")) <= MaxIntDigits
		}
		_, err := strconv.ParseFloat(s, 64)
		return err == nil
	}
	return true
}

// sameValue compares values read by decodeValid: integers by their digits
// (-0 is 0), other numbers as float64.
func sameValue(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			if w, ok := b[k]; !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !sameValue(a[i], b[i]) {
				return false
			}
		}
		return true
	case json.Number:
		b, ok := b.(json.Number)
		if !ok {
			return false
		}
		isInt := func(n json.Number) bool { return !strings.ContainsAny(string(n), ".eE") }
		if isInt(a) && isInt(b) {
			norm := func(n json.Number) string {
				if n == "-0" {
					return "0"
				}
				return string(n)
			}
			return norm(a) == norm(b)
		}
		fa, errA := a.Float64()
		fb, errB := b.Float64()
		return errA == nil && errB == nil && fa == fb
	default:
		return reflect.DeepEqual(a, b)
	}
}

// decodeValid reads one JSON value as encoding/json does, numbers kept as
// written, and returns it written back by encoding/json.
func decodeValid(data []byte) (any, []byte, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil, nil, false
	}
	out, err := json.Marshal(v)
	return v, out, err == nil
}

func FuzzCanonicalizeAcceptsValid(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(nest(MaxDepth, "[", "]", "")))
	f.Add([]byte(`{"a":` + strings.Repeat("9", MaxIntDigits) + `,"b":-` + strings.Repeat("1", MaxIntDigits) + `}`))
	f.Add([]byte(`[1.7976931348623157e308,5e-324,1e-400,-0.0,"\u2028<&>"]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, in, ok := decodeValid(data)
		if !ok || !withinLimits(v, 1) {
			return
		}
		out, err := Canonicalize(in)
		if err != nil {
			t.Fatalf("valid JSON within the limits refused: %.300q: %v", in, err)
		}
		back, _, ok := decodeValid(out)
		if !ok || !sameValue(back, v) {
			t.Fatalf("value changed:\n in %.300q\nout %.300q", in, out)
		}
	})
}

// FuzzParseRequestAcceptsValid: a request of a known kind, a source of 1 to
// MaxSourceLen characters and any payload object within the limits (the
// payload is level 2) is accepted, alone and as the items of a batch, with
// the payload in canonical form.
func FuzzParseRequestAcceptsValid(f *testing.F) {
	f.Add(uint8(0), "billing", []byte(`{}`))
	f.Add(uint8(5), "é🎉 \"quoted\"", []byte(`{"b":[1,2.50,{"c":null}],"a":"\u00e9","a":1}`))
	f.Add(uint8(21), strings.Repeat("é", MaxSourceLen), []byte(nest(MaxDepth-1, `{"x":`, "}", "0")))
	f.Fuzz(func(t *testing.T, kind uint8, source string, payload []byte) {
		names := DefaultKindSet.Names()
		k := names[int(kind)%len(names)]
		if !utf8.ValidString(source) || source == "" || utf8.RuneCountInString(source) > MaxSourceLen {
			return
		}
		v, canonIn, ok := decodeValid(payload)
		if _, obj := v.(map[string]any); !ok || !obj || !withinLimits(v, 2) {
			return
		}
		wantPayload, err := Canonicalize(canonIn)
		if err != nil {
			t.Fatalf("payload %q refused: %v", canonIn, err)
		}
		body, err := json.Marshal(map[string]any{"kind": k, "source": source, "payload": json.RawMessage(canonIn)})
		if err != nil {
			t.Fatal(err)
		}
		want := Request{Kind: k, Source: source, Payload: wantPayload}
		req, err := ParseRequest(body, DefaultKindSet)
		if err != nil || !reflect.DeepEqual(req, want) {
			t.Fatalf("ParseRequest(%q) = %+v, %v; want %+v", body, req, err, want)
		}
		for _, b := range []struct {
			body   string
			ndjson bool
		}{{"[" + string(body) + ",\n" + string(body) + "]", false}, {string(body) + "\n\n" + string(body) + "\n", true}} {
			reqs, err := ParseBatch([]byte(b.body), b.ndjson, DefaultKindSet, nil)
			if err != nil || len(reqs) != 2 || !reflect.DeepEqual(reqs[0], want) || !reflect.DeepEqual(reqs[1], want) {
				t.Fatalf("ParseBatch(%q, ndjson %v) = %+v, %v", b.body, b.ndjson, reqs, err)
			}
		}
	})
}
