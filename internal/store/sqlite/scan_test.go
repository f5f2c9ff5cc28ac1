package sqlite

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/audit-stream/audit-stream/event"
)

// pack is scanColumn written in Go, for the fuzzer.
func pack(id int64, prev, hash []byte, ts, kind, source string, payload []byte) []byte {
	b := fmt.Appendf(nil, "%d,%d,%d,%d,%d,%d,", id, len(prev), len(hash), len(ts), len(kind), len(source))
	b = append(b, prev...)
	b = append(b, hash...)
	b = append(b, ts...)
	b = append(b, kind...)
	b = append(b, source...)
	return append(b, payload...)
}

// FuzzUnpack: any packed row unpacks to exactly its fields, and any other
// bytes are rejected or unpacked without a panic.
func FuzzUnpack(f *testing.F) {
	h := make([]byte, 32)
	f.Add(int64(1), h, h, "2026-05-15T03:00:00.000000+00:00", "request_allowed", "svc-a", []byte(`{"a":1}`))
	f.Add(int64(9223372036854775807), h[:31], h, "", "", "", []byte{})
	f.Add(int64(7), h, h, "1,2,", "3,", "ü\x00,", []byte(`{"s":"1,2,3"}`))
	f.Fuzz(func(t *testing.T, id int64, prev, hash []byte, ts, kind, source string, payload []byte) {
		var sc scanner
		var e event.Event
		blob := pack(id, prev, hash, ts, kind, source, payload)
		ok, err := sc.unpack(blob, &e)
		switch {
		case id < 0:
			// event_id is never negative: the header does not parse.
			if err == nil {
				t.Fatalf("negative id %d unpacked", id)
			}
		case len(prev) != 32 || len(hash) != 32:
			if ok || err != nil || e.ID != id {
				t.Fatalf("bad hash lengths %d/%d: ok %v, err %v, id %d", len(prev), len(hash), ok, err, e.ID)
			}
		default:
			if !ok || err != nil || e.ID != id || string(e.PrevHash[:]) != string(prev) || string(e.Hash[:]) != string(hash) ||
				e.Timestamp != ts || e.Kind != kind || e.Source != source || string(e.Payload) != string(payload) {
				t.Fatalf("round trip: ok %v, err %v, got %+v", ok, err, e)
			}
		}
		// Arbitrary bytes: no panic, and a success only with a whole header.
		sc.unpack(payload, &e)
		sc.unpack([]byte(ts+strconv.Itoa(len(kind))+","+kind), &e)
	})
}
