package event

import (
	"crypto/sha256"
	"testing"
)

// benchBody is a typical append request: 205 bytes.
var benchBody = []byte(`{"kind":"request_allowed","source":"policy-as-code-engine","payload":{"request_id":"req-8f14e45f","user":"alice@example.com","action":"read","resource":"/v1/contracts/42","latency_ms":12.5,"allowed":true}}`)

func BenchmarkParseRequest(b *testing.B) {
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequest(benchBody, DefaultKindSet); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCanonicalHash is what an append costs before storage: parse and
// validate the body, build the event, hash its canonical body.
func BenchmarkCanonicalHash(b *testing.B) {
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		req, err := ParseRequest(benchBody, DefaultKindSet)
		if err != nil {
			b.Fatal(err)
		}
		ev := Event{ID: 123456, Timestamp: "2026-05-15T03:14:15.123456+00:00",
			Kind: req.Kind, Source: req.Source, Payload: req.Payload}
		ev.Hash, buf = ev.ComputeHash(buf)
	}
}

// BenchmarkSHA256 is the baseline: SHA-256 of the same request bytes.
func BenchmarkSHA256(b *testing.B) {
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		sha256.Sum256(benchBody)
	}
}

// BenchmarkCanonicalize is the payload-only path, with keys out of order.
func BenchmarkCanonicalize(b *testing.B) {
	in := []byte(`{"user":"alice@example.com","request_id":"req-8f14e45f","resource":"/v1/contracts/42","action":"read","note":"caf\u00e9 ok","allowed":true,"latency_ms":12.5}`)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Canonicalize(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseBatch parses a batch of 1,000 typical requests in one array;
// compare its time per byte with BenchmarkParseRequest's, measured in the
// same run: a batch item should cost no more than a request alone.
func BenchmarkParseBatch(b *testing.B) {
	body := append([]byte("["), benchBody...)
	for range 999 {
		body = append(append(body, ','), benchBody...)
	}
	body = append(body, ']')
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if reqs, err := ParseBatch(body, false, DefaultKindSet, nil); err != nil || len(reqs) != 1000 {
			b.Fatal(len(reqs), err)
		}
	}
}

// BenchmarkParseStored is what a verifier of an export spends on each line
// before hashing it: an event as the server serves it.
func BenchmarkParseStored(b *testing.B) {
	req, err := ParseRequest(benchBody, DefaultKindSet)
	if err != nil {
		b.Fatal(err)
	}
	ev := Event{ID: 123456, Timestamp: "2026-05-15T03:14:15.123456+00:00", Kind: req.Kind, Source: req.Source, Payload: req.Payload}
	ev.Hash, _ = ev.ComputeHash(nil)
	line := ev.AppendJSON(nil)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseStored(line); err != nil {
			b.Fatal(err)
		}
	}
}
