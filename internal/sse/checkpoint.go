package sse

import (
	"encoding/json"
	"strconv"
)

// Checkpoint is the data of a checkpoint frame: a signed checkpoint of the
// log, and the proof that the tree of the first From events is a prefix of
// its tree. It is what a /stream subscriber that asked for checkpoints
// verifies the events it was sent against.
type Checkpoint struct {
	// TreeSize is the checkpoint's tree size, as its note says.
	TreeSize int64 `json:"tree_size"`
	// From is a tree size the subscriber can already compute the root
	// of, and Proof the RFC 6962 consistency proof from it to TreeSize,
	// as lowercase hex (empty when From is 0 or TreeSize).
	From  int64    `json:"from"`
	Proof []string `json:"proof"`
	// Note is the signed checkpoint note as GET /checkpoint serves it,
	// cosignatures included.
	Note string `json:"checkpoint"`
}

// AppendCheckpointFrame appends c's frame: "event: checkpoint\ndata:
// <JSON>\n\n". It has no id line, on purpose: a frame without one leaves
// the client's last event id alone, so Last-Event-ID stays an event id.
func AppendCheckpointFrame(dst []byte, c *Checkpoint) []byte {
	if c.Proof == nil {
		c.Proof = []string{}
	}
	// JSON escapes every line break, so the note's lines stay within the
	// one data line. The fields are spelt in a fixed order for readers
	// that look at the stream by eye.
	dst = append(dst, "event: checkpoint\ndata: {\"tree_size\":"...)
	dst = strconv.AppendInt(dst, c.TreeSize, 10)
	dst = append(dst, ",\"from\":"...)
	dst = strconv.AppendInt(dst, c.From, 10)
	dst = append(dst, ",\"proof\":["...)
	for i, p := range c.Proof {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendQuote(dst, p)
	}
	dst = append(dst, "],\"checkpoint\":"...)
	note, _ := json.Marshal(c.Note) // a string always marshals
	dst = append(dst, note...)
	return append(dst, "}\n\n"...)
}
