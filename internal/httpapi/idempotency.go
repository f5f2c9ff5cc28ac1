package httpapi

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"net/http"
	"strconv"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/ledger"
)

// maxKeyLen bounds the Idempotency-Key header.
const maxKeyLen = 255

// appendChecked is the common path of every append: the token's source
// binding, the producer signatures and the provenance (provenance.go), the
// Idempotency-Key, then the ledger. It reports whether the
// events are a replay of an earlier request with the same key.
func (s *Server) appendChecked(r *http.Request, reqs []event.Request, batch bool) ([]event.Event, bool, error) {
	if p := checkSources(r, reqs, batch); p != nil {
		s.refused(r, caller(r), p)
		return nil, false, p
	}
	stamp, p := s.stamp(r, reqs, batch)
	if p != nil {
		s.refused(r, caller(r), p)
		return nil, false, p
	}
	opt, err := idempotencyOptions(r, reqs, batch)
	if err != nil {
		return nil, false, err
	}
	opt.Stamp = stamp
	if !s.beginAppend() {
		return nil, false, ledger.ErrClosed // answered as the ledger's own refusal once it has closed
	}
	defer s.appends.Done()
	evs, replayed, err := s.led.AppendWith(r.Context(), reqs, opt)
	var replay *ledger.ReplayError
	if errors.As(err, &replay) {
		p := problem(http.StatusConflict, replay.Error())
		s.refused(r, caller(r), p)
		return nil, false, p
	}
	return evs, replayed, err
}

// appendedStatus is 201 for new events, 200 with Idempotent-Replayed for a
// replay of an earlier request with the same key.
func appendedStatus(w http.ResponseWriter, replayed bool) int {
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
		return http.StatusOK
	}
	return http.StatusCreated
}

// idempotencyOptions reads the Idempotency-Key header. Keys are scoped to
// the token, or to the (first) source when the server runs open, and bound
// to a digest of the parsed requests, so a retry that re-encodes the same
// JSON differently still replays.
func idempotencyOptions(r *http.Request, reqs []event.Request, batch bool) (ledger.AppendOptions, error) {
	vals := r.Header.Values("Idempotency-Key")
	if len(vals) == 0 {
		return ledger.AppendOptions{}, nil
	}
	if len(vals) > 1 {
		return ledger.AppendOptions{}, problem(http.StatusBadRequest, "Idempotency-Key: send the header once")
	}
	key := vals[0]
	if err := checkKey(key); err != "" {
		return ledger.AppendOptions{}, problem(http.StatusBadRequest, "Idempotency-Key: "+err)
	}
	opt := ledger.AppendOptions{IdempotencyKey: key, BodyDigest: requestDigest(reqs, batch)}
	if t := caller(r); t != nil {
		opt.Scope = "token:" + t.ID
	} else {
		opt.Scope = "source:" + reqs[0].Source
	}
	return opt, nil
}

// checkKey returns why key is not an acceptable Idempotency-Key, or "".
func checkKey(key string) string {
	if key == "" || len(key) > maxKeyLen {
		return "must be 1 to " + strconv.Itoa(maxKeyLen) + " characters"
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x21 || c > 0x7e {
			return "must be printable ASCII without spaces (a UUID is a good key)"
		}
	}
	return ""
}

// requestDigest is SHA-256 over the parsed requests, each field length-
// prefixed so no two different request lists share an encoding. A batch and
// a single append are told apart: one key names one kind of request.
func requestDigest(reqs []event.Request, batch bool) [sha256.Size]byte {
	h := sha256.New()
	if batch {
		h.Write([]byte("batch\n"))
	} else {
		h.Write([]byte("single\n"))
	}
	for i := range reqs {
		q := &reqs[i]
		writeField(h, []byte(q.Kind))
		writeField(h, []byte(q.Source))
		writeField(h, q.Payload)
		writeField(h, []byte(q.Timestamp))
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

func writeField(h hash.Hash, b []byte) {
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
	h.Write(b)
}
