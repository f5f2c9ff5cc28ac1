package loadgen

import (
	"fmt"

	"github.com/audit-stream/audit-stream/event"
)

// SampleKinds are the kinds SampleRequest cycles through.
var SampleKinds = []string{"request_allowed", "request_denied", "decision_card_signed", "tool_invocation_required_approval", "watch_drifted", "other"}

// SampleRequest is the i-th of a set of typical governance events of about
// 200 bytes, varied in kind, source and payload.
func SampleRequest(i int) event.Request {
	kind := SampleKinds[i%len(SampleKinds)]
	return event.Request{
		Kind:   kind,
		Source: fmt.Sprintf("service-%d", i%10),
		Payload: fmt.Appendf(nil, `{"actor":"agent-%d","decision_id":"DEC-%08d","reason":"policy matched rule 42 of bundle prod-2026-05","resource":"s3://ledger/objects/%d","score":0.%d}`,
			i%97, i, i, i%1000),
	}
}

// Bodies pre-encodes n POST /events bodies, so the load generator spends
// as little as possible of the shared CPU.
func Bodies(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = appendBody(nil, i)
	}
	return out
}

func appendBody(dst []byte, i int) []byte {
	r := SampleRequest(i)
	return fmt.Appendf(dst, `{"kind":%q,"source":%q,"payload":%s}`, r.Kind, r.Source, r.Payload)
}

// BatchBodies pre-encodes n POST /events/batch bodies of size events each.
func BatchBodies(n, size int) [][]byte {
	out := make([][]byte, n)
	for b := range out {
		buf := []byte{'['}
		for i := range size {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendBody(buf, b*size+i)
		}
		out[b] = append(buf, ']')
	}
	return out
}
