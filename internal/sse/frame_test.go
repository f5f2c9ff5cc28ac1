package sse_test

import (
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
