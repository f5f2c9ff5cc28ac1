package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/prodsig"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/provenance"
)

// defaultTimestampSkew is how far a producer's timestamp may be from the
// time the server received it before its provenance flags it.
const defaultTimestampSkew = 24 * time.Hour

// stamp builds the provenance of an append request: who sent it, when it
// arrived, which timestamps are the producer's and which of those are
// skewed, and its producer signatures, checked against the caller's key.
// A token registered with a producer key appends only events it signed;
// a signature is never stored unchecked.
func (s *Server) stamp(r *http.Request, reqs []event.Request, batch bool) (*ledger.Stamp, *Problem) {
	received := s.opt.Now()
	st := &ledger.Stamp{AppendedBy: appendedBy(r), ReceivedAt: event.FormatTimestamp(received), Flags: make(provenance.Flags, len(reqs))}
	for i := range reqs {
		ts := reqs[i].Timestamp
		if ts == "" {
			continue
		}
		st.Flags[i] = provenance.FlagProducerTimestamp
		if t, err := event.ParseTimestamp(ts); err == nil && (t.Sub(received) > s.opt.TimestampSkew || received.Sub(t) > s.opt.TimestampSkew) {
			st.Flags[i] |= provenance.FlagSkewed
			s.skewed.Add(1)
		}
	}
	p := s.checkSignatures(r, reqs, batch, st)
	return st, p
}

// appendedBy names the caller for provenance: the certificate subject when
// a client certificate stood in for a token, else the token, else "open".
func appendedBy(r *http.Request) string {
	t := caller(r)
	if t == nil {
		return "open"
	}
	if r.Header.Get("Authorization") == "" {
		if cert := clientCert(r); cert != nil {
			return "cert:" + cert.Subject.String()
		}
	}
	return "token:" + t.ID
}

// checkSignatures reads the Audit-Signature header and checks it against
// the caller's producer key, filling st's key id and signatures.
func (s *Server) checkSignatures(r *http.Request, reqs []event.Request, batch bool, st *ledger.Stamp) *Problem {
	vals := r.Header.Values(prodsig.HeaderName)
	t := caller(r)
	if len(vals) == 0 {
		if t != nil && t.SigningKey != "" {
			return unauthorized("missing " + prodsig.HeaderName + " header: token " + t.ID + " is registered with producer key " +
				keyName(t.SigningKey) + ", so its events must be signed (audit-stream append --sign-key, or client.WithSigner)")
		}
		return nil
	}
	if len(vals) > 1 {
		return problem(http.StatusBadRequest, prodsig.HeaderName+": send the header once, with one sig= per event")
	}
	h, err := prodsig.ParseHeader(vals[0])
	if err != nil {
		return problem(http.StatusBadRequest, err.Error())
	}
	if t == nil || t.SigningKey == "" {
		who := "the server runs open"
		if t != nil {
			who = "token " + t.ID + " has no producer key registered"
		}
		return unauthorized("unknown keyid " + strconv.Quote(h.KeyID) + ": " + who + ", so the signature cannot be checked " +
			"(register the key with 'audit-stream token create --signing-key', or send no " + prodsig.HeaderName + ")")
	}
	v, err := prodsig.ParseKey(t.SigningKey)
	if err != nil {
		return toProblem(errors.New("token " + t.ID + ": stored producer key: " + err.Error()))
	}
	if want := prodsig.KeyID(v.Name(), v.KeyHash()); h.KeyID != want {
		return unauthorized("unknown keyid " + strconv.Quote(h.KeyID) + ": token " + t.ID + " is registered with producer key " + want)
	}
	if len(h.Sigs) != len(reqs) {
		return unauthorized(prodsig.HeaderName + " carries " + strconv.Itoa(len(h.Sigs)) + " signatures for " + strconv.Itoa(len(reqs)) +
			" events: count mismatch (one sig= per event, in order)")
	}
	seen := make(map[string]int, len(h.Sigs))
	for i, sig := range h.Sigs {
		if j, dup := seen[string(sig)]; dup {
			// The same signed event twice: a replay within the batch.
			return problem(http.StatusConflict, "items "+strconv.Itoa(j)+" and "+strconv.Itoa(i)+" are the same signed event: "+
				"a signed event is appended once; sign equal events with different timestamps or a nonce in the payload")
		}
		seen[string(sig)] = i
	}
	for i := range reqs {
		if !prodsig.Verify(v, &reqs[i], h.Sigs[i]) {
			where := "the event"
			if batch {
				where = "item " + strconv.Itoa(i)
			}
			return unauthorized("bad signature: " + where + ": the signature by " + h.KeyID +
				" does not verify over the request as received (it signs the canonical JSON of kind, payload, source and, if sent, timestamp)")
		}
	}
	st.KeyID, st.Sigs = h.KeyID, h.Sigs
	return nil
}

// keyName is the key id of a stored verifier key, for messages.
func keyName(vkey string) string {
	v, err := prodsig.ParseKey(vkey)
	if err != nil {
		return "(unreadable)"
	}
	return prodsig.KeyID(v.Name(), v.KeyHash())
}

// Seals serves the provenance seals signed with the checkpoints; the
// checkpointer is one.
type Seals interface {
	Seal(ctx context.Context, size int64) ([]byte, error)
}

// eventProvenance serves GET /events/{id}/provenance.
func (s *Server) eventProvenance(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	rec, err := s.st.Provenance(r.Context(), id)
	if err != nil {
		return missing(err, "no provenance for event "+strconv.FormatInt(id, 10)+
			": no such event, or it was imported or appended before this server recorded provenance")
	}
	ev, ok := rec.Event(id)
	if !ok {
		return errors.New("provenance record at " + strconv.FormatInt(rec.FirstID, 10) + " is malformed")
	}
	// A record never changes once written.
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	return writeJSON(w, http.StatusOK, ev)
}

// provenanceRecords serves GET /provenance: the records whose first event
// is in (after, until] as NDJSON, one a line, for verifiers recomputing the
// record chain. until defaults to, and is capped at, the head as of the
// request, so the range is fixed while appends go on.
func (s *Server) provenanceRecords(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	after, _, err := eventIDParam(q, "after")
	if err != nil {
		return err
	}
	until, untilSet, err := eventIDParam(q, "until")
	if err != nil {
		return err
	}
	if untilSet && until < after {
		return qerr(http.StatusBadRequest, "until", "value_error", "until "+strconv.FormatInt(until, 10)+" is before after "+strconv.FormatInt(after, 10))
	}
	release, until, err := s.heavyReadTo(r.Context(), until, untilSet)
	if err != nil {
		return err
	}
	defer release()
	rearm := s.writeDeadline(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if after >= until {
		return nil
	}
	const chunk = 64 << 10
	buf := make([]byte, 0, chunk+4<<10)
	err = s.st.ScanProvenance(r.Context(), after, until, func(p *provenance.Record) error {
		b, err := json.Marshal(p)
		if err != nil {
			return err
		}
		buf = append(append(buf, b...), '\n')
		if len(buf) < chunk {
			return nil
		}
		rearm()
		_, err = w.Write(buf)
		buf = buf[:0]
		if err != nil {
			return clientGone{err}
		}
		return nil
	})
	if err == nil && len(buf) > 0 {
		rearm()
		_, err = w.Write(buf)
	}
	if err != nil {
		// The status is sent: cut the stream short so the client sees a
		// truncated answer rather than a complete-looking one.
		if r.Context().Err() == nil {
			s.log.Debug("provenance records cut short", "after", after, "until", until, "err", err)
		}
		panic(http.ErrAbortHandler)
	}
	return nil
}

// provenanceSeal serves GET /provenance/seal: the signed seal at ?size=
// (default: the served checkpoint's size).
func (s *Server) provenanceSeal(w http.ResponseWriter, r *http.Request) error {
	if s.opt.Seals == nil || s.opt.Checkpoints == nil {
		return errNoCheckpoints
	}
	size := s.opt.Checkpoints.Latest().Size
	if v := r.URL.Query().Get("size"); r.URL.Query().Has("size") {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return qerr(http.StatusBadRequest, "size", "value_error", "size must be a non-negative integer tree size, got "+strconv.Quote(truncate(v)))
		}
		size = n
	}
	signed, err := s.opt.Seals.Seal(r.Context(), size)
	if errors.Is(err, store.ErrNotFound) {
		return problem(http.StatusNotFound, "no provenance seal at tree size "+strconv.FormatInt(size, 10)+
			": a seal is signed with every checkpoint; ask for the size of one (GET /checkpoint)")
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	_, err = w.Write(signed)
	return err
}

// truncate shortens a value quoted back in a refusal.
func truncate(v string) string {
	if len(v) > 64 {
		return v[:64] + "..."
	}
	return v
}
