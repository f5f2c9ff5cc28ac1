// Package prodsig is producer signatures: what a producer signs, the
// Audit-Signature header that carries the signatures, and the keys.
//
// A producer key is an Ed25519 key in the C2SP signed-note format, the same
// format as the log's own checkpoint key (audit-stream keygen makes both):
// the server holds the verifier key name+hash+base64, the producer the
// private key. The key id on the wire is name+hash (hash as 8 hex digits),
// so a log line or a stored signature names its key without carrying it.
//
// The signed bytes are the domain-separation prefix MessagePrefix followed
// by the canonical JSON of the request exactly as the producer sent it:
// {kind, payload, source, timestamp}, keys sorted, timestamp present only
// when the producer sent one. Every member of it is stored unchanged in the
// event, so the message can be rebuilt from the stored event alone (knowing
// whether the timestamp was the producer's), and nothing the server assigns
// (id, prev_hash, hash) is in it: the signature says what the producer
// asserted, the chain says where the log put it.
package prodsig

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/audit-stream/audit-stream/event"
	"golang.org/x/mod/sumdb/note"
)

// MessagePrefix separates producer signatures from every other use of an
// Ed25519 key (a checkpoint note starts with the origin line, a
// cosignature with "cosignature/v1").
const MessagePrefix = "audit-stream event signature v1\n"

// HeaderName is the request header that carries the signatures.
const HeaderName = "Audit-Signature"

// MaxSignatures is the most signatures one header carries: a signed batch
// holds at most this many events (the header stays under the server's
// 64 KiB header limit).
const MaxSignatures = 500

// SignatureSize is the size of an Ed25519 signature.
const SignatureSize = 64

// Message returns the bytes a producer signs for r.
func Message(r *event.Request) []byte {
	b := make([]byte, 0, len(MessagePrefix)+64+len(r.Payload)+len(r.Kind)+len(r.Source))
	b = append(b, MessagePrefix...)
	b = append(b, `{"kind":`...)
	b = event.AppendString(b, r.Kind)
	b = append(b, `,"payload":`...)
	if len(r.Payload) == 0 {
		b = append(b, "{}"...)
	} else {
		b = append(b, r.Payload...)
	}
	b = append(b, `,"source":`...)
	b = event.AppendString(b, r.Source)
	if r.Timestamp != "" {
		b = append(b, `,"timestamp":`...)
		b = event.AppendString(b, r.Timestamp)
	}
	return append(b, '}')
}

// RequestOf rebuilds the request a stored event came from, for checking its
// signature: signedTimestamp says whether the producer sent the timestamp.
func RequestOf(e *event.Event, signedTimestamp bool) event.Request {
	r := event.Request{Kind: e.Kind, Source: e.Source, Payload: e.Payload}
	if signedTimestamp {
		r.Timestamp = e.Timestamp
	}
	return r
}

// KeyID is the wire name of a key: name+hash, hash as 8 lowercase hex digits.
func KeyID(name string, hash uint32) string { return fmt.Sprintf("%s+%08x", name, hash) }

// ParseKey parses a producer verifier key, name+hash+base64.
func ParseKey(s string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("producer key: want name+hash+base64 (audit-stream keygen prints one): %w", err)
	}
	return v, nil
}

// Verify reports whether sig is v's signature of r.
func Verify(v note.Verifier, r *event.Request, sig []byte) bool {
	return len(sig) == SignatureSize && v.Verify(Message(r), sig)
}

// Sign signs each request with s and returns the Audit-Signature header
// value for them, in order.
func Sign(s note.Signer, reqs []event.Request) (string, error) {
	h := Header{KeyID: KeyID(s.Name(), s.KeyHash())}
	for i := range reqs {
		sig, err := s.Sign(Message(&reqs[i]))
		if err != nil {
			return "", err
		}
		h.Sigs = append(h.Sigs, sig)
	}
	return h.String(), nil
}

// Header is a parsed Audit-Signature header: the key id and one signature
// per event, in the order of the events in the body.
type Header struct {
	KeyID string
	Sigs  [][]byte
}

// String formats h: keyid=ID, sig=BASE64[, sig=BASE64]...
func (h Header) String() string {
	var b strings.Builder
	b.WriteString("keyid=")
	b.WriteString(h.KeyID)
	for _, s := range h.Sigs {
		b.WriteString(", sig=")
		b.WriteString(base64.StdEncoding.EncodeToString(s))
	}
	return b.String()
}

// ErrMalformed wraps every reason ParseHeader refuses a header.
var ErrMalformed = errors.New("malformed Audit-Signature header")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// ParseHeader parses an Audit-Signature header value. The grammar is
// strict, so that one signature has one spelling:
//
//	header = "keyid=" keyid *( "," OWS "sig=" base64 )
//
// with exactly one keyid, first, at least one and at most MaxSignatures
// signatures, each standard padded base64 of 64 bytes. OWS (spaces or tabs)
// may surround each comma-separated item.
func ParseHeader(s string) (Header, error) {
	var h Header
	if len(s) > 128+MaxSignatures*(len(", sig=")+88) {
		return h, malformed("longer than %d signatures", MaxSignatures)
	}
	items := strings.Split(s, ",")
	for i, it := range items {
		it = strings.Trim(it, " \t")
		name, val, ok := strings.Cut(it, "=")
		if !ok || val == "" {
			return h, malformed("item %d: want name=value", i+1)
		}
		switch {
		case i == 0 && name == "keyid":
			if err := checkKeyID(val); err != nil {
				return h, err
			}
			h.KeyID = val
		case i == 0:
			return h, malformed("it must start with keyid=")
		case name == "sig":
			if len(h.Sigs) == MaxSignatures {
				return h, malformed("more than %d signatures", MaxSignatures)
			}
			sig, err := base64.StdEncoding.Strict().DecodeString(val)
			if err != nil || len(sig) != SignatureSize {
				return h, malformed("signature %d: want standard base64 of a %d-byte Ed25519 signature", len(h.Sigs)+1, SignatureSize)
			}
			h.Sigs = append(h.Sigs, sig)
		case name == "keyid":
			return h, malformed("keyid given twice")
		default:
			return h, malformed("unknown parameter %q", name)
		}
	}
	if len(h.Sigs) == 0 {
		return h, malformed("no sig=")
	}
	return h, nil
}

// checkKeyID accepts name+hash as note key names are spelt: a name of
// printable ASCII without spaces or '+', then 8 lowercase hex digits.
func checkKeyID(id string) error {
	name, hash, ok := strings.Cut(id, "+")
	if !ok || name == "" || len(hash) != 8 {
		return malformed("keyid: want name+hash (8 hex digits), as audit-stream keygen names the key")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c > '~' || c == ',' || c == '"' {
			return malformed("keyid: the name may hold only printable ASCII without spaces, commas or quotes")
		}
	}
	for i := 0; i < len(hash); i++ {
		if c := hash[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return malformed("keyid: the hash must be 8 lowercase hex digits")
		}
	}
	return nil
}
