package event

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// TestParseBatchRejections: what refuses a batch, where it is located, and
// that the failures of every item read are listed, by item index.
func TestParseBatchRejections(t *testing.T) {
	good := `{"kind":"other","source":"s"}`
	many := "[" + strings.Repeat(good+",", MaxBatch) + good + "]"
	// failure is "item N: message" for an item's failure, the message alone
	// for the body's.
	for _, c := range []struct {
		name, body string
		ndjson     bool
		want       []string
		offset     int // of the first failure; -1 if it has none
	}{
		{"empty body", "", false, []string{"body: a batch must be a JSON array"}, -1},
		{"not an array", good, false, []string{"body: a batch must be a JSON array"}, -1},
		{"empty array", " [ ] ", false, []string{"the batch is empty"}, -1},
		{"empty NDJSON", "\n \r\n\t\n", true, []string{"the batch is empty"}, -1},
		{"not closed", "[" + good, false, []string{"invalid JSON: the array is not closed"}, -1},
		{"not closed after a comma", "[" + good + ", ", false, []string{"invalid JSON: the array is not closed"}, -1},
		{"trailing comma", "[" + good + ",]", false, []string{"expected a value"}, 31},
		{"leading comma", "[," + good + "]", false, []string{"expected a value"}, 1},
		{"no comma", "[" + good + " " + good + "]", false, []string{"expected ',' or ']' after item 0"}, 31},
		{"data after", "[" + good + "] x", false, []string{"data after the array"}, 32},
		{"two items fail", "[" + good + `,{"kind":"nope","source":"s"},{"kind":"other","source":""}]`, false,
			[]string{`item 1: kind: unknown kind "nope"`, "item 2: source: must not be empty"}, -1},
		{"every failure of an item", `[{"kind":1,"source":2}]`, false,
			[]string{"item 0: kind: must be a string", "item 0: source: must be a string"}, -1},
		{"an item not an object", "[" + good + ",42," + good + "]", false, []string{"item 1: body must be a JSON object, got number"}, -1},
		{"syntax in an item, at its offset in the body", "[" + good + `,{"kind":"other","source":"s",}]`, false,
			[]string{"item 1: invalid JSON at offset 60"}, 60},
		{"syntax error ends the reading", `[{"kind":"nope","source":"s"},{"kind":x},{"kind":"nope2","source":"s"}]`, false,
			[]string{`item 0: kind: unknown kind "nope"`, "item 1: invalid JSON at offset 38"}, -1},
		{"limit in an item", `[{"kind":"other","source":"s","payload":{"x":1e400}}]`, false,
			[]string{"item 0: payload.x: number outside the float64 range at offset 45"}, 45},
		{"NDJSON lines fail alone", good + "\n{\n" + `{"kind":"other"}` + "\n", true,
			[]string{"item 1: invalid JSON at offset 31", "item 2: source: required field is missing"}, 31},
	} {
		t.Run(c.name, func(t *testing.T) {
			reqs, err := ParseBatch([]byte(c.body), c.ndjson, nil, nil)
			if err == nil {
				t.Fatalf("accepted: %+v", reqs)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%v is not ErrInvalid", err)
			}
			var got []string
			var first *ValidationError
			var be *BatchError
			if errors.As(err, &be) {
				for _, f := range be.Failures {
					got = append(got, "item "+itoa(f.Item)+": "+f.Message())
				}
				first = be.Failures[0].ValidationError
			} else {
				first = err.(*ValidationError)
				got = []string{first.Message()}
			}
			if len(got) != len(c.want) {
				t.Fatalf("failures %q, want %q", got, c.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], c.want[i]) && !strings.Contains(got[i], c.want[i]) {
					t.Fatalf("failure %d is %q, want %q", i, got[i], c.want[i])
				}
			}
			if c.offset >= 0 && first.Offset != c.offset {
				t.Fatalf("first failure at offset %d, want %d", first.Offset, c.offset)
			}
		})
	}
	if _, err := ParseBatch([]byte(many), false, nil, nil); err != ErrBatchTooLarge {
		t.Fatalf("%d items: %v", MaxBatch+1, err)
	}
	if _, err := ParseBatch([]byte(strings.Repeat(good+"\n", MaxBatch+1)), true, nil, nil); err != ErrBatchTooLarge {
		t.Fatalf("%d lines: %v", MaxBatch+1, err)
	}
	if reqs, err := ParseBatch([]byte(many[:len(many)-len(good)-2]+"]"), false, nil, nil); err != nil || len(reqs) != MaxBatch {
		t.Fatalf("%d items: %d, %v", MaxBatch, len(reqs), err)
	}
	// The check runs on every item that parses, and joins its failures.
	check := func(r *Request) *ValidationError {
		if r.Source == "bad" {
			return &ValidationError{Field: "payload", Offset: -1, Reason: "checked"}
		}
		return nil
	}
	_, err := ParseBatch([]byte("["+good+`,{"kind":"other","source":"bad"}]`), false, nil, check)
	if err == nil || err.Error() != "item 1: payload: checked" {
		t.Fatalf("check: %v", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// FuzzParseBatch: an array batch is accepted only if it is valid JSON, and
// then with one request per item, each as ParseRequest reads it alone.
func FuzzParseBatch(f *testing.F) {
	for _, s := range []string{
		`[]`, `[{"kind":"other","source":"a"}]`,
		` [ {"kind":"other","source":"a","payload":{"x":["]",{"}":1}]}} , {"kind":"other","source":"b"} ] `,
		`[{"kind":"other","source":"a\"]"}]`, `[{"kind":"other","source":"a"},]`, `[1,2]`, `[[]]`, `[{]`, `{"a":1}`, `["\`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		reqs, err := ParseBatch(body, false, nil, nil)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && err != ErrBatchTooLarge {
				t.Fatalf("error %v is neither ErrInvalid nor ErrBatchTooLarge", err)
			}
			return
		}
		var items []json.RawMessage
		if !json.Valid(body) || json.Unmarshal(body, &items) != nil {
			t.Fatalf("accepted a body that is not a JSON array: %q", body)
		}
		if len(items) != len(reqs) {
			t.Fatalf("%d requests from an array of %d items: %q", len(reqs), len(items), body)
		}
		for i, it := range items {
			r, err := ParseRequest(it, nil)
			if err != nil || r.Kind != reqs[i].Kind || r.Source != reqs[i].Source || string(r.Payload) != string(reqs[i].Payload) || r.Timestamp != reqs[i].Timestamp {
				t.Fatalf("item %d: %+v alone, %+v in the batch (%v)", i, r, reqs[i], err)
			}
		}
		if _, err := ParseBatch(body, true, nil, nil); err == nil && len(reqs) > 1 {
			// A multi-item array on one line is never valid NDJSON.
			t.Fatalf("array accepted as NDJSON: %q", body)
		}
	})
}
