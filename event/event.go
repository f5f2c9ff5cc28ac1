// Package event defines the audit-stream event envelope, its canonical JSON
// encoding and its SHA-256 hash. Everything here is pure: no I/O.
//
// The hash construction is byte-compatible with the original audit-stream
// service: hash = hex(SHA-256(canonical JSON of {event_id, timestamp, kind,
// source, payload, prev_hash})), where canonical JSON is what Python's
// json.dumps(body, sort_keys=True, separators=(",", ":")) produces.
package event

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"time"
)

// Hash is a SHA-256 digest. On the wire it is 64 lowercase hex characters.
type Hash [32]byte

// ZeroHash is the prev_hash of the first event.
var ZeroHash Hash

// String returns the lowercase hex form.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText implements encoding.TextMarshaler.
func (h Hash) MarshalText() ([]byte, error) {
	b := make([]byte, 64)
	hex.Encode(b, h[:])
	return b, nil
}

// UnmarshalText implements encoding.TextUnmarshaler; it accepts only the
// 64-character lowercase hex form, so that a hash has exactly one spelling.
func (h *Hash) UnmarshalText(b []byte) error {
	p, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = p
	return nil
}

// ErrBadHash is returned for a hash that is not 64 lowercase hex characters.
var ErrBadHash = errors.New("hash must be 64 lowercase hex characters")

// ParseHash parses the 64-character lowercase hex form of a hash. It runs
// for every hash of every event read back, so it decodes in one pass.
func ParseHash(s string) (Hash, error) { return parseHash(s) }

func parseHash[T string | []byte](s T) (Hash, error) {
	var h Hash
	if len(s) != 64 {
		return h, ErrBadHash
	}
	for i := range h {
		hi, lo := lowerHex[s[2*i]], lowerHex[s[2*i+1]]
		if hi > 15 || lo > 15 {
			return Hash{}, ErrBadHash
		}
		h[i] = hi<<4 | lo
	}
	return h, nil
}

// lowerHex maps '0'-'9' and 'a'-'f' to their value and every other byte
// to 0xff.
var lowerHex = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c - '0'
	}
	for c := byte('a'); c <= 'f'; c++ {
		t[c] = c - 'a' + 10
	}
	return t
}()

// Event is one stored event. Payload holds the canonical JSON bytes of the
// payload object: they are hashed, stored and served exactly as they are, and
// never re-encoded through Go values.
type Event struct {
	ID        int64
	Timestamp string
	Kind      string
	Source    string
	Payload   []byte
	PrevHash  Hash
	Hash      Hash
}

// AppendCanonicalBody appends the bytes that are hashed: the canonical JSON of
// {event_id, kind, payload, prev_hash, source, timestamp} (keys sorted).
func (e *Event) AppendCanonicalBody(dst []byte) []byte {
	dst = append(dst, `{"event_id":`...)
	dst = strconv.AppendInt(dst, e.ID, 10)
	dst = append(dst, `,"kind":`...)
	dst = AppendString(dst, e.Kind)
	dst = append(dst, `,"payload":`...)
	dst = e.appendPayload(dst)
	dst = append(dst, `,"prev_hash":"`...)
	dst = hex.AppendEncode(dst, e.PrevHash[:])
	dst = append(dst, `","source":`...)
	dst = AppendString(dst, e.Source)
	dst = append(dst, `,"timestamp":`...)
	dst = AppendString(dst, e.Timestamp)
	return append(dst, '}')
}

// ComputeHash returns the SHA-256 of the canonical body. buf is scratch space
// that may be reused across calls to avoid allocation; it may be nil.
func (e *Event) ComputeHash(buf []byte) (Hash, []byte) {
	buf = e.AppendCanonicalBody(buf[:0])
	return sha256.Sum256(buf), buf
}

// AppendJSON appends the wire form of the event, fields in envelope order:
// {event_id, timestamp, kind, source, payload, prev_hash, hash}. The payload
// is the canonical form, so any client can re-hash exactly what it received.
func (e *Event) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"event_id":`...)
	dst = strconv.AppendInt(dst, e.ID, 10)
	dst = append(dst, `,"timestamp":`...)
	dst = AppendString(dst, e.Timestamp)
	dst = append(dst, `,"kind":`...)
	dst = AppendString(dst, e.Kind)
	dst = append(dst, `,"source":`...)
	dst = AppendString(dst, e.Source)
	dst = append(dst, `,"payload":`...)
	dst = e.appendPayload(dst)
	dst = append(dst, `,"prev_hash":"`...)
	dst = hex.AppendEncode(dst, e.PrevHash[:])
	dst = append(dst, `","hash":"`...)
	dst = hex.AppendEncode(dst, e.Hash[:])
	return append(dst, `"}`...)
}

// MarshalJSON implements json.Marshaler with AppendJSON.
func (e Event) MarshalJSON() ([]byte, error) { return e.AppendJSON(nil), nil }

// FormatTimestamp formats t as the server assigns timestamps: UTC with
// microseconds and an explicit offset, 2026-05-15T03:14:15.123456+00:00.
func FormatTimestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000+00:00")
}

// appendPayload appends the canonical payload; an event without one has
// the empty object, as the original service gave it.
func (e *Event) appendPayload(dst []byte) []byte {
	if len(e.Payload) == 0 {
		return append(dst, "{}"...)
	}
	return append(dst, e.Payload...)
}

// TimestampPrecision is how finely the server stamps events.
type TimestampPrecision int

const (
	// Microseconds stamps 2026-05-15T03:14:15.123456+00:00: events keep
	// their order in time at thousands a second. The default.
	Microseconds TimestampPrecision = iota
	// Seconds stamps 2026-05-15T03:14:15+00:00, as the original service did.
	Seconds
)

// Format formats t, in UTC, at precision p.
func (p TimestampPrecision) Format(t time.Time) string {
	if p == Seconds {
		return t.UTC().Format("2006-01-02T15:04:05+00:00")
	}
	return FormatTimestamp(t)
}

// String returns "microseconds" or "seconds".
func (p TimestampPrecision) String() string {
	if p == Seconds {
		return "seconds"
	}
	return "microseconds"
}

// MarshalText implements encoding.TextMarshaler.
func (p TimestampPrecision) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads "seconds" or "microseconds".
func (p *TimestampPrecision) UnmarshalText(b []byte) error {
	switch string(b) {
	case "microseconds":
		*p = Microseconds
	case "seconds":
		*p = Seconds
	default:
		return errors.New("timestamp precision must be seconds or microseconds, got " + strconv.Quote(string(b)))
	}
	return nil
}
