package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Request
	}{
		{"minimal", `{"kind":"other","source":"s"}`,
			Request{Kind: "other", Source: "s", Payload: []byte("{}")}},
		{"any member order, whitespace", " {\n\"payload\" : {\"b\":[1.50,-0],\"a\":null} ,\"source\":\"svc\",\t\"kind\":\"request_denied\"}\r\n",
			Request{Kind: "request_denied", Source: "svc", Payload: []byte(`{"a":null,"b":[1.5,0]}`)}},
		{"timestamp kept as sent", `{"kind":"other","source":"s","timestamp":"2026-05-15 03:14:15.5"}`,
			Request{Kind: "other", Source: "s", Payload: []byte("{}"), Timestamp: "2026-05-15 03:14:15.5"}},
		{"timestamp null is server-stamped", `{"kind":"other","source":"s","timestamp":null}`,
			Request{Kind: "other", Source: "s", Payload: []byte("{}")}},
		{"timestamp empty is server-stamped", `{"kind":"other","source":"s","timestamp":""}`,
			Request{Kind: "other", Source: "s", Payload: []byte("{}")}},
		{"unicode source", `{"kind":"other","source":"s\u00e9rvice 🎉"}`,
			Request{Kind: "other", Source: "sérvice 🎉", Payload: []byte("{}")}},
		{"source of 256 characters", `{"kind":"other","source":"` + strings.Repeat("é", MaxSourceLen) + `"}`,
			Request{Kind: "other", Source: strings.Repeat("é", MaxSourceLen), Payload: []byte("{}")}},
		{"empty payload", `{"kind":"other","source":"s","payload":{}}`,
			Request{Kind: "other", Source: "s", Payload: []byte("{}")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest([]byte(tt.in), DefaultKindSet)
			if err != nil {
				t.Fatalf("ParseRequest: %v", err)
			}
			if got.Kind != tt.want.Kind || got.Source != tt.want.Source || got.Timestamp != tt.want.Timestamp ||
				string(got.Payload) != string(tt.want.Payload) {
				t.Errorf("got  %+v (payload %s)\nwant %+v (payload %s)", got, got.Payload, tt.want, tt.want.Payload)
			}
			// As an item of a batch, in an array and as a line.
			for _, b := range []struct {
				body   string
				ndjson bool
			}{{"[" + tt.in + "," + tt.in + "]", false}, {" [ " + tt.in + " ] ", false}, {tt.in + "\n" + tt.in, true}} {
				if b.ndjson && strings.Contains(tt.in, "\n") {
					continue // one line is one request
				}
				reqs, err := ParseBatch([]byte(b.body), b.ndjson, DefaultKindSet, nil)
				if err != nil || !reflect.DeepEqual(reqs[0], got) || !reflect.DeepEqual(reqs[len(reqs)-1], got) {
					t.Errorf("ParseBatch(%q) differs: %+v, %v", b.body, reqs, err)
				}
			}
		})
	}
}

func TestParseRequestKinds(t *testing.T) {
	custom := NewKindSet([]string{"deploy"})
	in := []byte(`{"kind":"deploy","source":"ci"}`)
	if _, err := ParseRequest(in, custom); err != nil {
		t.Errorf("custom kind rejected: %v", err)
	}
	_, err := ParseRequest(in, DefaultKindSet)
	checkRejection(t, string(in), err, "kind", `unknown kind "deploy"`)
	if _, err := ParseRequest([]byte(`{"kind":"other","source":"s"}`), nil); err != nil {
		t.Errorf("nil kinds should mean DefaultKindSet: %v", err)
	}
}

func TestParseRequestPayloadNotAliased(t *testing.T) {
	body := []byte(`{"kind":"other","source":"s","payload":{"a":"b"}}`)
	req, err := ParseRequest(body, DefaultKindSet)
	if err != nil {
		t.Fatal(err)
	}
	// Parse something else: pooled buffers must not show through.
	if _, err := ParseRequest([]byte(`{"kind":"other","source":"s","payload":{"x":"yyyyyyy"}}`), DefaultKindSet); err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = 'X'
	}
	if string(req.Payload) != `{"a":"b"}` {
		t.Errorf("payload changed to %s", req.Payload)
	}
}

func TestParseRequestRejects(t *testing.T) {
	const ok = `"kind":"other","source":"s"`
	tests := []struct {
		name   string
		in     string
		field  string
		reason string
	}{
		// The body.
		{"empty", "", "", "empty body"},
		{"whitespace", " \n ", "", "empty body"},
		{"array", `[{"kind":"other","source":"s"}]`, "", "body must be a JSON object, got array"},
		{"string", `"hello"`, "", "body must be a JSON object, got string"},
		{"number", `12`, "", "body must be a JSON object, got number"},
		{"null", `null`, "", "body must be a JSON object, got null"},
		{"invalid array", `[1,`, "", "unexpected end of input"},
		{"trailing garbage", `{` + ok + `}}`, "", "unexpected data after the JSON value"},
		{"trailing second object", `{` + ok + `} {}`, "", "unexpected data after the JSON value"},
		{"invalid JSON wins over a bad field", `{"kind":"nope","source":"s",}`, "", "expected a string for an object key"},
		{"unterminated", `{` + ok, "", "unexpected end of input, expected ',' or '}'"},
		{"invalid UTF-8", "{" + ok + ",\"payload\":{\"a\":\"\xc3\"}}", "", "invalid UTF-8"},
		// Members.
		{"unknown field", `{` + ok + `,"extra":1}`, "extra", "unknown field"},
		{"unknown field, odd name", `{` + ok + `,"a.b":1}`, `["a.b"]`, "unknown field"},
		{"duplicate kind", `{` + ok + `,"kind":"other"}`, "kind", "duplicate field"},
		{"duplicate payload", `{` + ok + `,"payload":{},"payload":{}}`, "payload", "duplicate field"},
		{"missing kind", `{"source":"s"}`, "kind", "required field is missing"},
		{"missing source", `{"kind":"other"}`, "source", "required field is missing"},
		{"missing both", `{}`, "kind", "required field is missing"},
		{"unknown kind", `{"kind":"foo","source":"s"}`, "kind", `unknown kind "foo"`},
		{"kind case matters", `{"kind":"OTHER","source":"s"}`, "kind", `unknown kind "OTHER"`},
		{"empty kind", `{"kind":"","source":"s"}`, "kind", `unknown kind ""`},
		{"long unknown kind is cut", `{"kind":"` + strings.Repeat("k", 1000) + `","source":"s"}`, "kind", `unknown kind "` + strings.Repeat("k", 64) + `"...`},
		{"kind number", `{"kind":1,"source":"s"}`, "kind", "must be a string, got number"},
		{"kind null", `{"kind":null,"source":"s"}`, "kind", "must be a string, got null"},
		{"kind array", `{"kind":["other"],"source":"s"}`, "kind", "must be a string, got array"},
		{"source empty", `{"kind":"other","source":""}`, "source", "must not be empty"},
		{"source too long", `{"kind":"other","source":"` + strings.Repeat("é", MaxSourceLen+1) + `"}`, "source", "longer than 256 characters (257)"},
		{"source bool", `{"kind":"other","source":true}`, "source", "must be a string, got boolean"},
		{"source object", `{"kind":"other","source":{}}`, "source", "must be a string, got object"},
		{"payload null", `{` + ok + `,"payload":null}`, "payload", "must be an object, got null"},
		{"payload array", `{` + ok + `,"payload":[]}`, "payload", "must be an object, got array"},
		{"payload string", `{` + ok + `,"payload":"{}"}`, "payload", "must be an object, got string"},
		{"payload number", `{` + ok + `,"payload":0}`, "payload", "must be an object, got number"},
		{"timestamp number", `{` + ok + `,"timestamp":1747278855}`, "timestamp", "must be a string, got number"},
		{"timestamp array", `{` + ok + `,"timestamp":[]}`, "timestamp", "must be a string, got array"},
		// Limits inside the payload name the field.
		{"payload NaN", `{` + ok + `,"payload":{"a":{"b":NaN}}}`, "payload.a.b", "NaN is not a valid JSON number"},
		{"payload Infinity", `{` + ok + `,"payload":{"x":[1,Infinity]}}`, "payload.x[1]", "Infinity is not a valid JSON number"},
		{"payload overflow", `{` + ok + `,"payload":{"n":-1e999}}`, "payload.n", "number outside the float64 range"},
		{"payload long int", `{` + ok + `,"payload":{"n":` + strings.Repeat("7", MaxIntDigits+1) + `}}`, "payload.n", "integer longer than 4300 digits"},
		{"payload lone surrogate", `{` + ok + `,"payload":{"s":"\udc00"}}`, "payload.s", "unpaired UTF-16 surrogate"},
		// Body level 1, payload 2, "a" 3: the 63rd array is level 65.
		{"payload too deep", `{` + ok + `,"payload":{"a":` + nest(MaxDepth-1, "[", "]", "") + `}}`, "payload.a" + strings.Repeat("[0]", MaxDepth-2), "nesting deeper than 64 levels"},
		{"payload deep enough", `{` + ok + `,"payload":{"a":` + nest(MaxDepth-2, "[", "]", "") + `,"b":NaN}}`, "payload.b", "NaN"},
		{"payload control char", "{" + ok + ",\"payload\":{\"s\":\"\t\"}}", "", "control character U+0009"},
		{"payload leading zero", `{` + ok + `,"payload":{"n":007}}`, "", "leading zeros"},
		{"kind lone surrogate", `{"kind":"\ud800","source":"s"}`, "kind", "unpaired UTF-16 surrogate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := ParseRequest([]byte(tt.in), DefaultKindSet)
			if err == nil {
				t.Fatalf("accepted: %+v", req)
			}
			checkRejection(t, tt.in, err, tt.field, tt.reason)
		})
	}
}

func TestTimestamps(t *testing.T) {
	valid := []string{
		"2026-05-15T03:14:15.123456",       // datetime.utcnow().isoformat()
		"2026-05-15T03:14:15.123456+00:00", // datetime.now(timezone.utc).isoformat()
		"2026-05-15 03:14:15",
		"2026-05-15T03:14:15Z",
		"2026-05-15T03:14:15+0000",
		"2026-05-15T03:14:15-00:00",
		"2026-05-15T03:14:15.1Z",
		"2026-05-15T03:14:15,5Z",
		"2026-05-15T03:14:15.123456789-07:30",
		"2026-05-15",
		"2026-05-15T03:14",
		"2024-02-29T00:00:00Z",
		"2000-02-29T23:59:59+23:59",
		"0001-01-01T00:00:00Z",
		"9999-12-31T23:59:59Z",
		"2026-W20-5T03:14:15",
	}
	for _, ts := range valid {
		if reason := checkTimestamp(ts); reason != "" {
			t.Errorf("%q rejected: %s", ts, reason)
		}
		in := `{"kind":"other","source":"s","timestamp":"` + ts + `"}`
		if req, err := ParseRequest([]byte(in), DefaultKindSet); err != nil || req.Timestamp != ts {
			t.Errorf("ParseRequest with timestamp %q: %+v, %v", ts, req, err)
		}
	}
	invalid := []string{
		"yesterday",
		"2026-05-15T03:14:15z",       // Python wants an upper-case Z
		"2026-05-15T03:14:15+24:00",  // offset of a day
		"2026-13-01T00:00:00Z",       // month
		"2026-00-01T00:00:00Z",       // month
		"2026-04-31T00:00:00Z",       // day
		"2026-02-29T00:00:00Z",       // not a leap year
		"1900-02-29T00:00:00Z",       // not a leap year
		"2026-05-15T24:00:00Z",       // hour
		"2026-05-15T23:60:00Z",       // minute
		"2026-05-15T23:59:60Z",       // leap second
		"2026-05-15T03:14:15ZZ",      // trailing
		"2026-05-15T03:14:15Z ",      // trailing space
		"+2026-05-15T03:14:15Z",      // sign
		"26-05-15T03:14:15Z",         // short year
		"2026-5-15T03:14:15Z",        // short month
		"0000-01-01T00:00:00Z",       // year 0
		"２０２６-05-15T03:14:15Z",       // non-ASCII digits
		"2026-05-15T03:14:15\u00a0Z", // odd space
		"2026-05-15T03:14:15Z\x00",   // CPython stops at a NUL; we refuse it
		"1747278855",
	}
	for _, ts := range invalid {
		reason := checkTimestamp(ts)
		if reason == "" {
			t.Errorf("%q accepted", ts)
		}
		if !strings.Contains(reason, TimestampExample) {
			t.Errorf("%q: reason %q shows no accepted example", ts, reason)
		}
		in := `{"kind":"other","source":"s","timestamp":` + string(AppendString(nil, ts)) + `}`
		_, err := ParseRequest([]byte(in), DefaultKindSet)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != "timestamp" || ve.Offset != -1 {
			t.Errorf("timestamp %q: err = %v", ts, err)
		}
	}
	// null and "" ask the server to stamp the event, as the original did.
	for _, v := range []string{`null`, `""`} {
		req, err := ParseRequest([]byte(`{"kind":"other","source":"s","timestamp":`+v+`}`), DefaultKindSet)
		if err != nil || req.Timestamp != "" {
			t.Errorf("timestamp %s: %+v, %v; want accepted and server-stamped", v, req, err)
		}
	}
}

// timestamps.json records, for thousands of strings, whether Python 3.11's
// datetime.fromisoformat accepts them and which instant they name
// (testdata/regen_timestamps.py derives it by running fromisoformat). We
// must agree on every row.
func TestTimestampsAgreeWithPython(t *testing.T) {
	var rows []struct {
		Input    string `json:"input"`
		Accepted bool   `json:"accepted"`
		UTCMicro int64  `json:"utc_us"`
	}
	if err := json.Unmarshal(readFixture(t, "timestamps.json"), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) < 1000 {
		t.Fatalf("only %d rows", len(rows))
	}
	accepted := 0
	for _, r := range rows {
		got, err := ParseTimestamp(r.Input)
		if (err == nil) != r.Accepted {
			t.Errorf("%q: Python accepts: %v, we accept: %v", r.Input, r.Accepted, err == nil)
			continue
		}
		if (checkTimestamp(r.Input) == "") != r.Accepted {
			t.Errorf("%q: checkTimestamp disagrees with ParseTimestamp", r.Input)
		}
		if err != nil {
			continue
		}
		accepted++
		if got.Location() != time.UTC || got.UnixMicro() != r.UTCMicro {
			t.Errorf("%q: %v (%d µs), Python reads %d µs", r.Input, got, got.UnixMicro(), r.UTCMicro)
		}
	}
	if accepted == 0 || accepted == len(rows) {
		t.Fatalf("%d of %d rows accepted: the table tests nothing", accepted, len(rows))
	}
}

func TestParseStoredSeedExport(t *testing.T) {
	var raw []json.RawMessage
	if err := json.Unmarshal(readFixture(t, "seed-export.json"), &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 {
		t.Fatal("empty seed export")
	}
	prev := ZeroHash
	for i, r := range raw {
		ev, err := ParseStored(r)
		if err != nil {
			t.Fatalf("event %d: ParseStored: %v", i, err)
		}
		if ev.ID != int64(i+1) {
			t.Errorf("event %d: ID = %d", i, ev.ID)
		}
		if ev.PrevHash != prev {
			t.Errorf("event %d: prev_hash %s, want %s", ev.ID, ev.PrevHash, prev)
		}
		if h, _ := ev.ComputeHash(nil); h != ev.Hash {
			t.Errorf("event %d: re-hash %s, stored %s", ev.ID, h, ev.Hash)
		}
		// What we serve parses back to the same event.
		back, err := ParseStored(ev.AppendJSON(nil))
		if err != nil {
			t.Fatalf("event %d: ParseStored(AppendJSON): %v", ev.ID, err)
		}
		if !equalEvents(back, ev) {
			t.Errorf("event %d: round trip through AppendJSON changed it:\n%+v\n%+v", ev.ID, back, ev)
		}
		prev = ev.Hash
	}
}

// The tampered export still parses: only verification can tell that the
// hashes are wrong, so ParseStored must not reject them.
func TestParseStoredTamperedExportParses(t *testing.T) {
	var cases []struct {
		Name   string            `json:"name"`
		Events []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(readFixture(t, "seed-export-tampered.json"), &cases); err != nil {
		t.Fatal(err)
	}
	mismatches := 0
	for _, c := range cases {
		for _, r := range c.Events {
			ev, err := ParseStored(r)
			if err != nil {
				t.Errorf("%s: ParseStored: %v", c.Name, err)
				continue
			}
			if h, _ := ev.ComputeHash(nil); h != ev.Hash {
				mismatches++
			}
		}
	}
	if mismatches == 0 {
		t.Error("no event of the tampered export fails to re-hash; the fixture should contain some")
	}
}

func equalEvents(a, b Event) bool {
	return a.ID == b.ID && a.Timestamp == b.Timestamp && a.Kind == b.Kind && a.Source == b.Source &&
		bytes.Equal(a.Payload, b.Payload) && a.PrevHash == b.PrevHash && a.Hash == b.Hash
}

func TestParseStoredPythonDump(t *testing.T) {
	// Pretty-printed, raw UTF-8, payload keys unsorted, members in any order.
	in := "{\n \"hash\": \"" + strings.Repeat("ab", 32) + "\",\n \"event_id\": 7,\n" +
		" \"timestamp\": \"2026-05-15T03:00:01+00:00\",\n \"kind\": \"legacy_kind\",\n" +
		" \"source\": \"sérvice\",\n \"payload\": {\n  \"z\": [1, 2.50],\n  \"a\": \"é🎉\"\n },\n" +
		" \"prev_hash\": \"" + strings.Repeat("0", 64) + "\"\n}\n"
	ev, err := ParseStored([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Event{ID: 7, Timestamp: "2026-05-15T03:00:01+00:00", Kind: "legacy_kind", Source: "sérvice",
		Payload: []byte(`{"a":"\u00e9\ud83c\udf89","z":[1,2.5]}`), Hash: mustHash(t, strings.Repeat("ab", 32))}
	if !equalEvents(ev, want) {
		t.Errorf("got  %+v\nwant %+v", ev, want)
	}
}

func TestParseStoredRejects(t *testing.T) {
	zero, ab := strings.Repeat("0", 64), strings.Repeat("ab", 32)
	valid := map[string]string{
		"event_id": "1", "timestamp": `"t"`, "kind": `"k"`, "source": `"s"`,
		"payload": "{}", "prev_hash": `"` + zero + `"`, "hash": `"` + ab + `"`,
	}
	tests := []struct {
		name   string
		change map[string]string
		field  string
		reason string
	}{
		{"missing hash", map[string]string{"hash": ""}, "hash", "required field is missing"},
		{"missing payload", map[string]string{"payload": ""}, "payload", "required field is missing"},
		{"uppercase hash", map[string]string{"hash": `"` + strings.ToUpper(ab) + `"`}, "hash", "must be 64 lowercase hex characters"},
		{"short prev_hash", map[string]string{"prev_hash": `"00"`}, "prev_hash", "must be 64 lowercase hex characters"},
		{"hash not a string", map[string]string{"hash": "1"}, "hash", "must be a string, got number"},
		{"float id", map[string]string{"event_id": "1.0"}, "event_id", "must be an integer"},
		{"zero id", map[string]string{"event_id": "0"}, "event_id", "must be an integer from 1"},
		{"negative id", map[string]string{"event_id": "-3"}, "event_id", "must be an integer from 1"},
		{"huge id", map[string]string{"event_id": "9223372036854775808"}, "event_id", "must be an integer from 1"},
		{"string id", map[string]string{"event_id": `"1"`}, "event_id", "must be an integer, got string"},
		{"null payload", map[string]string{"payload": "null"}, "payload", "must be an object, got null"},
		{"kind not a string", map[string]string{"kind": "[]"}, "kind", "must be a string, got array"},
		{"unknown field", map[string]string{"extra": "1"}, "extra", "unknown field"},
		{"surrogate in hash", map[string]string{"hash": `"\ud800"`}, "hash", "unpaired UTF-16 surrogate"},
		{"surrogate in kind", map[string]string{"kind": `"\udc00"`}, "kind", "unpaired UTF-16 surrogate"},
		{"NaN id", map[string]string{"event_id": "NaN"}, "event_id", "NaN is not a valid JSON number"},
		{"-Infinity id", map[string]string{"event_id": "-Infinity"}, "event_id", "-Infinity is not a valid JSON number"},
		{"deep payload", map[string]string{"payload": `{"a":` + nest(MaxStoredDepth-1, "[", "]", "") + `}`}, "payload.a" + strings.Repeat("[0]", MaxDepth-2) + "...", "nesting deeper than 10000 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := buildStored(valid, tt.change)
			_, err := ParseStored([]byte(in))
			checkRejection(t, in, err, tt.field, tt.reason)
		})
	}
	// A syntax error inside any member is reported as such.
	for _, k := range storedFields {
		change := map[string]string{k: valid[k][:len(valid[k])-1]} // cut the last byte
		if k == "event_id" {
			change[k] = "1x"
		}
		in := buildStored(valid, change)
		_, err := ParseStored([]byte(in))
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != "" || ve.Offset < 0 {
			t.Errorf("%s cut short: err = %v, want a syntax error", k, err)
		}
	}
	// Any kind and any timestamp string are accepted.
	if _, err := ParseStored([]byte(buildStored(valid, map[string]string{"kind": `"no such kind"`, "timestamp": `""`}))); err != nil {
		t.Errorf("ParseStored with an unknown kind: %v", err)
	}
}

func buildStored(valid, change map[string]string) string {
	var parts []string
	for _, k := range storedFields {
		v, ok := valid[k]
		if c, changed := change[k]; changed {
			v, ok = c, c != ""
		}
		if ok {
			parts = append(parts, `"`+k+`":`+v)
		}
	}
	if extra, ok := change["extra"]; ok {
		parts = append(parts, `"extra":`+extra)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// checkRejection asserts that err is a *ValidationError for field whose
// reason contains reason.
func checkRejection(t *testing.T, in string, err error, field, reason string) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("input %q: err = %v, want a *ValidationError", in, err)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
	}
	if ve.Field != field {
		t.Errorf("input %q: Field = %q, want %q (error: %v)", in, ve.Field, field, err)
	}
	if !strings.Contains(ve.Reason, reason) {
		t.Errorf("input %q: Reason = %q, want it to contain %q", in, ve.Reason, reason)
	}
	if ve.Error() == "" {
		t.Error("empty Error()")
	}
}

// Every failure of a syntactically valid body is listed, each with the
// location and pydantic type the original's clients know from its 422s.
func TestParseRequestListsEveryFailure(t *testing.T) {
	type item struct {
		loc, typ string
	}
	tests := []struct {
		name string
		in   string
		want []item
	}{
		{"three at once", `{"kind":"made_up","source":"","extra":1}`,
			[]item{{`["kind"]`, "value_error"}, {`["source"]`, "string_too_short"}, {`["extra"]`, "extra_forbidden"}}},
		{"wrong types and a missing field", `{"kind":1,"payload":[],"timestamp":5}`,
			[]item{{`["kind"]`, "string_type"}, {`["payload"]`, "dict_type"}, {`["timestamp"]`, "string_type"}, {`["source"]`, "missing"}}},
		{"bad timestamp, long source", `{"kind":"other","source":"` + strings.Repeat("s", MaxSourceLen+1) + `","timestamp":"now"}`,
			[]item{{`["source"]`, "string_too_long"}, {`["timestamp"]`, "value_error"}}},
		{"a limit inside the payload joins earlier failures", `{"kind":"nope","source":"s","payload":{"a":[0,{"b":NaN}]}}`,
			[]item{{`["kind"]`, "value_error"}, {`["payload","a",1,"b"]`, "value_error"}}},
		{"a syntax error is reported alone", `{"kind":"nope","source":"","payload":{"a":}}`,
			[]item{{`[42]`, "json_invalid"}}},
		{"not an object", `[1]`, []item{{`[]`, "model_attributes_type"}}},
		{"empty body", ` `, []item{{`[]`, "missing"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRequest([]byte(tt.in), DefaultKindSet)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v", err)
			}
			var got []item
			for _, e := range ve.All() {
				loc, _ := json.Marshal(e.Location())
				got = append(got, item{string(loc), e.ErrorType()})
				if !strings.Contains(err.Error(), e.Message()) {
					t.Errorf("Error() %q leaves out %q", err.Error(), e.Message())
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("failures %v, want %v", got, tt.want)
			}
		})
	}
}

// TestPlainPrefix holds the eight-bytes-at-a-time scan to the byte loop:
// every byte value at every position of a run of plain bytes.
func TestPlainPrefix(t *testing.T) {
	for n := range 20 {
		for at := range n {
			for c := range 256 {
				d := bytes.Repeat([]byte{'a'}, n)
				d[at] = byte(c)
				want := 0
				for want < len(d) && d[want] < utf8.RuneSelf && plain[d[want]] {
					want++
				}
				if got := plainPrefix(d); got != want {
					t.Fatalf("plainPrefix(%q) = %d, want %d", d, got, want)
				}
			}
		}
	}
}
