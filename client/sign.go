package client

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/prodsig"
	"golang.org/x/mod/sumdb/note"
)

// WithSigner signs every append with a producer key (an Ed25519 note
// signer, as audit-stream keygen makes: note.NewSigner of the key file's
// text). The server checks the signatures against the key registered for
// the client's token (token create --signing-key), refuses a token's
// unsigned events once it has a key, and keeps the signatures in each
// event's provenance, where verifiers check them.
//
// A signed request is appended once: the server refuses (409) a signature
// it already holds, since a captured request could otherwise be replayed.
// So that two equal events still sign differently, a signing client stamps
// every event without a timestamp with its own clock (UTC, microseconds,
// strictly increasing within the client); the timestamp is then the
// producer's, covered by its signature. Appends with an IdempotencyKey are
// not stamped, so that a retry sends the very request it retries (the
// server answers it with the stored events); give those a Timestamp of
// your own, or a nonce in the payload, when two of them may be equal. A
// signed batch holds at most 500 events (prodsig.MaxSignatures).
func WithSigner(s note.Signer) Option {
	return func(c *Client) { c.signer = &signer{s: s, now: time.Now} }
}

type signer struct {
	s   note.Signer
	now func() time.Time

	mu   sync.Mutex
	last time.Time
}

// stamp returns ts, or, when it is empty, the producer's clock, never
// equal to a time this client stamped before.
func (s *signer) stamp(ts string) string {
	if ts != "" {
		return ts
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.now().UTC().Truncate(time.Microsecond)
	if !t.After(s.last) {
		t = s.last.Add(time.Microsecond)
	}
	s.last = t
	return event.FormatTimestamp(t)
}

// sign adds the Audit-Signature header for body: it parses the body as the
// server will, so what it signs is the canonical request the server
// rebuilds. Every kind the body names is accepted here: the server's
// catalogue decides kinds.
func (s *signer) sign(body []byte, batch bool, h http.Header) (http.Header, error) {
	names, err := kindsIn(body, batch)
	if err != nil {
		return nil, err
	}
	set := event.NewKindSet(names)
	var reqs []event.Request
	if batch {
		reqs, err = event.ParseBatch(body, false, set, nil)
	} else {
		var r event.Request
		r, err = event.ParseRequest(body, set)
		reqs = []event.Request{r}
	}
	if err != nil {
		return nil, err
	}
	if len(reqs) > prodsig.MaxSignatures {
		return nil, fmt.Errorf("a signed batch holds at most %d events, not %d", prodsig.MaxSignatures, len(reqs))
	}
	v, err := prodsig.Sign(s.s, reqs)
	if err != nil {
		return nil, err
	}
	if h == nil {
		h = http.Header{}
	}
	h.Set(prodsig.HeaderName, v)
	return h, nil
}

// kindsIn lists the kinds a request body (or batch) names; an empty one
// is left out (the parser then reports the missing kind).
func kindsIn(body []byte, batch bool) ([]string, error) {
	type item struct {
		Kind string `json:"kind"`
	}
	if !batch {
		var one item
		err := json.Unmarshal(body, &one)
		return nonEmpty([]string{one.Kind}), err
	}
	var items []item
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(items))
	for _, it := range items {
		names = append(names, it.Kind)
	}
	return nonEmpty(names), nil
}

func nonEmpty(names []string) []string {
	out := names[:0]
	for _, n := range names {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}
