// Package sse encodes the Server-Sent Events frame of a log event. The
// /stream handler hands it to the ledger's feed as the encoder of its
// subscriptions, so each event's frame is encoded once, when the event is
// published, and the same bytes go to every subscriber.
package sse

import (
	"strconv"

	"github.com/audit-stream/audit-stream/event"
)

// AppendFrame appends e's frame: "event: <kind>\nid: <id>\ndata: <event
// JSON>\n\n".
func AppendFrame(dst []byte, e *event.Event) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, e.Kind...)
	dst = append(dst, "\nid: "...)
	dst = strconv.AppendInt(dst, e.ID, 10)
	dst = append(dst, "\ndata: "...)
	dst = e.AppendJSON(dst)
	return append(dst, "\n\n"...)
}

// FrameSize estimates the length of e's frame, to size buffers.
func FrameSize(e *event.Event) int {
	// Field names, punctuation, two hex hashes and the id twice, with
	// room for a few escapes.
	return 256 + 2*len(e.Kind) + len(e.Source) + len(e.Timestamp) + len(e.Payload)
}
