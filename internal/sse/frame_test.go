package sse_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/sse"
)

func TestAppendFrame(t *testing.T) {
	e := event.Event{ID: 42, Timestamp: "2026-05-15T03:14:15.123456+00:00", Kind: "request_denied", Source: "gw\"1", Payload: []byte(`{"a":1}`)}
	e.Hash[0] = 0xab
	want := "event: request_denied\nid: 42\ndata: " + string(e.AppendJSON(nil)) + "\n\n"
	got := sse.AppendFrame([]byte("x"), &e)
	if string(got) != "x"+want {
		t.Fatalf("got %q\nwant %q", got, "x"+want)
	}
	if n := sse.FrameSize(&e); n < len(want) {
		t.Fatalf("FrameSize %d < frame length %d", n, len(want))
	}
}

func TestAppendCheckpointFrame(t *testing.T) {
	note := "example.com/audit\n12\nAAAA\n\n\u2014 example.com/audit abc=\n"
	c := sse.Checkpoint{TreeSize: 12, From: 8, Proof: []string{"ab", "cd"}, Note: note}
	got := string(sse.AppendCheckpointFrame(nil, &c))
	want := `event: checkpoint` + "\n" + `data: {"tree_size":12,"from":8,"proof":["ab","cd"],"checkpoint":"example.com/audit\n12\nAAAA\n\n— example.com/audit abc=\n"}` + "\n\n"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	// No proof is an empty array, not null: readers index it.
	got = string(sse.AppendCheckpointFrame(nil, &sse.Checkpoint{TreeSize: 3, Note: "x\n"}))
	if !strings.Contains(got, `"proof":[]`) || strings.Contains(got, "\nid:") {
		t.Fatalf("got %q", got)
	}
	var back sse.Checkpoint
	if err := json.Unmarshal([]byte(strings.TrimSuffix(strings.TrimPrefix(want, "event: checkpoint\ndata: "), "\n\n")), &back); err != nil || back.Note != note {
		t.Fatalf("round trip: %+v %v", back, err)
	}
}
