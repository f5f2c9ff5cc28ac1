// Package provenance is the side record audit-stream keeps of every append:
// who appended the events (a token, a client certificate, or nobody on an
// open server), when the server received them, whether each timestamp was
// the producer's and how far it was from that receive time, and the
// producer's signatures. It is never part of an event's wire form or hash,
// so the original service's clients see events exactly as before.
//
// One Record covers one append request (a single event or a whole batch).
// Records form a hash chain of their own: each one's Chain is SHA-256 over
// the previous record's Chain and this record's fields, including the hash
// of the last event it covers, which binds it to the event chain and the
// Merkle tree. Whenever the server signs a checkpoint it also signs a Seal
// with the same key: the chain's value at the checkpoint's size, beside the
// checkpoint's root. A verifier that recomputes the chain from the records
// and finds the sealed value knows no record up to that size was edited,
// dropped or moved to other events since it was sealed.
package provenance

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/prodsig"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Flag bits, one byte per event of a record.
const (
	// FlagProducerTimestamp: the producer sent the timestamp (it is
	// part of what the producer signed); otherwise the server assigned it.
	FlagProducerTimestamp byte = 1 << iota
	// FlagSkewed: the producer's timestamp was further from the receive
	// time than the server's --timestamp-skew.
	FlagSkewed
)

// Flags holds one byte of flag bits per event. On the wire it is a string
// of one decimal digit per event ("0" none, "1" producer timestamp, "3"
// producer timestamp and skewed), readable in a SQL shell and a log line.
type Flags []byte

// MarshalText implements encoding.TextMarshaler.
func (f Flags) MarshalText() ([]byte, error) {
	out := make([]byte, len(f))
	for i, b := range f {
		if b > 9 {
			return nil, fmt.Errorf("provenance: flag byte %d out of range", b)
		}
		out[i] = '0' + b
	}
	return out, nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (f *Flags) UnmarshalText(b []byte) error {
	out := make(Flags, len(b))
	for i, c := range b {
		if c < '0' || c > '0'|FlagProducerTimestamp|FlagSkewed {
			return fmt.Errorf("provenance: flags: %q is not a flag digit", c)
		}
		out[i] = c - '0'
	}
	*f = out
	return nil
}

// Record is the provenance of one append request: events FirstID to
// FirstID+Count-1.
type Record struct {
	FirstID int64 `json:"first_id"`
	Count   int64 `json:"count"`
	// AppendedBy is "token:<id>", "cert:<subject>" or "open".
	AppendedBy string `json:"appended_by"`
	// ReceivedAt is the server's clock when the request arrived, RFC 3339
	// in UTC with microseconds, whatever timestamps the events carry.
	ReceivedAt string `json:"received_at"`
	Flags      Flags  `json:"flags"`
	// KeyID names the producer key that signed the events (name+hash),
	// and Sigs holds one Ed25519 signature per event, in order; both are
	// empty for unsigned appends.
	KeyID string   `json:"key_id,omitempty"`
	Sigs  [][]byte `json:"signatures,omitempty"`
	// LastHash is the hash of the record's last event.
	LastHash event.Hash `json:"last_hash"`
	// Chain is the record chain's value after this record (ChainHash).
	Chain event.Hash `json:"chain"`
}

// LastID is the id of the record's last event.
func (r *Record) LastID() int64 { return r.FirstID + r.Count - 1 }

// chainPrefix separates the record chain from every other SHA-256 input.
const chainPrefix = "audit-stream provenance v1\n"

// ChainHash is the chain's value after r, given its value before (zero
// before the first record): SHA-256 over a prefix, prev, and r's fields
// (all but Chain), each length-prefixed so no two records share an input.
func (r *Record) ChainHash(prev event.Hash) event.Hash {
	h := sha256.New()
	h.Write([]byte(chainPrefix))
	h.Write(prev[:])
	var n [binary.MaxVarintLen64]byte
	field := func(b []byte) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
		h.Write(b)
	}
	field(strconv.AppendInt(nil, r.FirstID, 10))
	field(strconv.AppendInt(nil, r.Count, 10))
	field([]byte(r.AppendedBy))
	field([]byte(r.ReceivedAt))
	field(r.Flags)
	field([]byte(r.KeyID))
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(r.Sigs)))])
	for _, s := range r.Sigs {
		field(s)
	}
	h.Write(r.LastHash[:])
	var out event.Hash
	h.Sum(out[:0])
	return out
}

// Event is the provenance of one event, as GET /events/{id}/provenance
// serves it.
type Event struct {
	EventID           int64  `json:"event_id"`
	AppendedBy        string `json:"appended_by"`
	ReceivedAt        string `json:"received_at"`
	ProducerTimestamp bool   `json:"producer_timestamp"`
	TimestampSkewed   bool   `json:"timestamp_skewed"`
	KeyID             string `json:"key_id,omitempty"`
	Signature         []byte `json:"signature,omitempty"`
	// Batch is where the event sits in its append request: the request's
	// first event and how many it wrote (1 for a single append).
	Batch struct {
		FirstID int64 `json:"first_id"`
		Count   int64 `json:"count"`
	} `json:"request"`
}

// Event returns the provenance of event id, which must be in r.
func (r *Record) Event(id int64) (Event, bool) {
	i := id - r.FirstID
	if i < 0 || i >= r.Count || int64(len(r.Flags)) != r.Count {
		return Event{}, false
	}
	e := Event{
		EventID: id, AppendedBy: r.AppendedBy, ReceivedAt: r.ReceivedAt,
		ProducerTimestamp: r.Flags[i]&FlagProducerTimestamp != 0,
		TimestampSkewed:   r.Flags[i]&FlagSkewed != 0,
		KeyID:             r.KeyID,
	}
	if int64(len(r.Sigs)) == r.Count {
		e.Signature = r.Sigs[i]
	}
	e.Batch.FirstID, e.Batch.Count = r.FirstID, r.Count
	return e, true
}

// CheckShape reports what makes a record impossible: a count that does
// not match its flags or signatures, signatures without a key or the
// reverse.
func (r *Record) CheckShape() error {
	switch {
	case r.FirstID < 1 || r.Count < 1:
		return fmt.Errorf("provenance record at %d: %d events", r.FirstID, r.Count)
	case int64(len(r.Flags)) != r.Count:
		return fmt.Errorf("provenance record for events %d-%d: %d flags", r.FirstID, r.LastID(), len(r.Flags))
	case (r.KeyID == "") != (len(r.Sigs) == 0):
		return fmt.Errorf("provenance record for events %d-%d: key id and signatures must come together", r.FirstID, r.LastID())
	case len(r.Sigs) != 0 && int64(len(r.Sigs)) != r.Count:
		return fmt.Errorf("provenance record for events %d-%d: %d signatures", r.FirstID, r.LastID(), len(r.Sigs))
	}
	for _, s := range r.Sigs {
		if len(s) != prodsig.SignatureSize {
			return fmt.Errorf("provenance record for events %d-%d: a signature of %d bytes", r.FirstID, r.LastID(), len(s))
		}
	}
	return nil
}

// ErrSignature reports a producer signature that does not verify, or a
// signed event whose key the verifier was not given.
var ErrSignature = errors.New("producer signature")

// CheckEvents checks r against its events, in order: the last one's hash
// is r's LastHash, and with keys (producer verifier keys by KeyID, see
// prodsig.KeyID) every signature verifies over the request the producer
// sent, rebuilt from the stored event. A signed record whose key is not in
// keys is an error wrapping ErrSignature unless keys is nil (signatures
// unchecked).
func CheckEvents(r *Record, evs []event.Event, keys map[string]note.Verifier) error {
	if err := r.CheckShape(); err != nil {
		return err
	}
	if int64(len(evs)) != r.Count || evs[0].ID != r.FirstID {
		return fmt.Errorf("provenance record for events %d-%d: given %d events", r.FirstID, r.LastID(), len(evs))
	}
	if evs[len(evs)-1].Hash != r.LastHash {
		return fmt.Errorf("provenance record for events %d-%d: its last event hash %s is not event %d's", r.FirstID, r.LastID(), r.LastHash, r.LastID())
	}
	if keys == nil || r.KeyID == "" {
		return nil
	}
	v, ok := keys[r.KeyID]
	if !ok {
		return fmt.Errorf("%w: events %d-%d are signed by %s, and no --producer-key names it", ErrSignature, r.FirstID, r.LastID(), r.KeyID)
	}
	for i := range evs {
		req := prodsig.RequestOf(&evs[i], r.Flags[i]&FlagProducerTimestamp != 0)
		if !prodsig.Verify(v, &req, r.Sigs[i]) {
			return fmt.Errorf("%w: event %d: the signature by %s does not verify", ErrSignature, evs[i].ID, r.KeyID)
		}
	}
	return nil
}

// Keys indexes producer verifier keys by their wire key id.
func Keys(vs []note.Verifier) map[string]note.Verifier {
	m := make(map[string]note.Verifier, len(vs))
	for _, v := range vs {
		m[prodsig.KeyID(v.Name(), v.KeyHash())] = v
	}
	return m
}

// sealHeader is the first line of a seal's note text.
const sealHeader = "audit-stream provenance seal v1"

// Seal binds the record chain to a checkpoint: after the records of the
// first Size events, the chain's value was Chain, and the tree of those
// events had root Root. It is a signed note by the log's own key.
type Seal struct {
	Origin string
	Size   int64
	Root   tlog.Hash
	Chain  event.Hash
}

// Marshal is the seal's note text.
func (s Seal) Marshal() []byte {
	return fmt.Appendf(nil, "%s\n%s\n%d\n%s\n%s\n", sealHeader, s.Origin, s.Size,
		base64.StdEncoding.EncodeToString(s.Root[:]), base64.StdEncoding.EncodeToString(s.Chain[:]))
}

// SignSeal signs s as a signed note with the log's key.
func SignSeal(s Seal, signer note.Signer) ([]byte, error) {
	return note.Sign(&note.Note{Text: string(s.Marshal())}, signer)
}

// MaxSealSize bounds a signed seal a verifier reads.
const MaxSealSize = 4096

// OpenSeal checks a signed seal: v (the log's key) signed it and its text
// parses.
func OpenSeal(signed []byte, v note.Verifier) (Seal, error) {
	var s Seal
	if len(signed) > MaxSealSize {
		return s, fmt.Errorf("provenance seal: %d bytes, more than %d", len(signed), MaxSealSize)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return s, fmt.Errorf("provenance seal signature: %w", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 6 || lines[0] != sealHeader || lines[5] != "" {
		return s, errors.New("provenance seal: malformed text")
	}
	s.Origin = lines[1]
	if s.Size, err = strconv.ParseInt(lines[2], 10, 64); err != nil || s.Size < 0 || lines[2] != strconv.FormatInt(s.Size, 10) {
		return s, errors.New("provenance seal: malformed size")
	}
	// The lengths first: the decoder skips carriage returns, so a hash line
	// with one in it would decode to the same bytes.
	root, err1 := base64.StdEncoding.Strict().DecodeString(lines[3])
	chain, err2 := base64.StdEncoding.Strict().DecodeString(lines[4])
	if err1 != nil || err2 != nil || len(lines[3]) != 44 || len(lines[4]) != 44 || len(root) != 32 || len(chain) != 32 {
		return s, errors.New("provenance seal: malformed hash")
	}
	copy(s.Root[:], root)
	copy(s.Chain[:], chain)
	return s, nil
}

// ErrTampered wraps every reason Chain.Add refuses a record: it was
// changed, moved or dropped after it was written.
var ErrTampered = errors.New("provenance record tampered with")

// Chain recomputes the record chain as records arrive in order, checking
// each against its stored Chain, so the first edited record is named.
type Chain struct {
	value  event.Hash
	lastID int64
}

// ChainFrom continues a chain whose value after the records of the first
// lastID events is value (a seal's).
func ChainFrom(value event.Hash, lastID int64) Chain { return Chain{value: value, lastID: lastID} }

// Add folds r into the chain. Records must come in id order without
// overlap (a log imported without provenance has gaps, which are fine).
func (c *Chain) Add(r *Record) error {
	if err := r.CheckShape(); err != nil {
		return err
	}
	if r.FirstID <= c.lastID {
		return fmt.Errorf("%w: the record at %d overlaps the one before (up to %d)", ErrTampered, r.FirstID, c.lastID)
	}
	v := r.ChainHash(c.value)
	if v != r.Chain {
		return fmt.Errorf("%w: the record for events %d-%d does not hash to its chain value: it, or one before it, was changed after it was written", ErrTampered, r.FirstID, r.LastID())
	}
	c.value, c.lastID = v, r.LastID()
	return nil
}

// Value is the chain's value after the records added so far.
func (c *Chain) Value() event.Hash { return c.value }

// LastID is the last event id the records added so far cover.
func (c *Chain) LastID() int64 { return c.lastID }

// Report sums up a check of the provenance records.
type Report struct {
	// SealSize is the tree size of the seal the records were checked
	// against.
	SealSize int64 `json:"seal_size"`
	Records  int64 `json:"records"`
	// Events is how many events have a record; the others were imported
	// or appended before the server recorded provenance.
	Events int64 `json:"events"`
	// Signed is how many events carry a producer signature, all of them
	// checked when producer keys were given (SignaturesChecked).
	Signed            int64 `json:"signed"`
	SignaturesChecked bool  `json:"signatures_checked"`
	// Skewed is how many producer timestamps were flagged as skewed.
	Skewed int64 `json:"skewed"`
}

// maxLine bounds one NDJSON line Check reads: an event of the largest
// batch body, or a record of a batch of 10,000 signatures.
const maxLine = 32 << 20

// CheckOptions says what Check requires beyond the seal.
type CheckOptions struct {
	// Keys are the producer verifier keys by key id (Keys): every
	// signature must verify under the key it names. nil: signatures are
	// counted, not checked.
	Keys map[string]note.Verifier
	// SignedSources are sources every event of which must carry a
	// producer signature that verifies (so Keys must be given): an event
	// of theirs appended unsigned — by an admin token, say, or before the
	// producer's key was registered — fails the check.
	SignedSources []string
}

// Check holds the provenance records (NDJSON, as GET /provenance serves
// them) of the first seal.Size events to seal and to the events (NDJSON, as
// GET /export serves them, from event 1): each record must hash to its
// chain value, be bound to its last event's hash, carry producer
// signatures that verify over its events (with opt.Keys, as CheckEvents),
// and the chain after the last record must be the sealed value. A failure
// is an error naming the first record or event at fault. The events must
// already be checked against the seal's tree (audit-stream verify does
// that first); seal.Root binds the two.
func Check(records, events io.Reader, seal Seal, opt CheckOptions) (Report, error) {
	rep := Report{SealSize: seal.Size, SignaturesChecked: opt.Keys != nil}
	signedOnly := make(map[string]bool, len(opt.SignedSources))
	for _, src := range opt.SignedSources {
		signedOnly[src] = true
	}
	recs := bufio.NewReaderSize(records, 64<<10)
	evs := bufio.NewReaderSize(events, 64<<10)
	var chain Chain
	var pending []event.Event // the events of the current record
	next := int64(1)          // the next event id expected from events
	readEvent := func() (event.Event, error) {
		line, err := readLine(evs)
		if err != nil {
			return event.Event{}, fmt.Errorf("events: %w", err)
		}
		e, err := event.ParseStored(line)
		if err != nil {
			return e, fmt.Errorf("event %d: %w", next, err)
		}
		if e.ID != next {
			return e, fmt.Errorf("events: got event %d, want %d", e.ID, next)
		}
		next++
		return e, nil
	}
	// unrecorded checks an event no record covers.
	unrecorded := func(e *event.Event) error {
		if signedOnly[e.Source] {
			return fmt.Errorf("%w: event %d of source %q has no provenance record, so no producer signature", ErrSignature, e.ID, e.Source)
		}
		return nil
	}
	for {
		line, err := readLine(recs)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return rep, fmt.Errorf("provenance records: %w", err)
		}
		var r Record
		if err := json.Unmarshal(line, &r); err != nil {
			return rep, fmt.Errorf("provenance record after event %d: %w", chain.LastID(), err)
		}
		if err := chain.Add(&r); err != nil {
			return rep, err
		}
		if r.LastID() > seal.Size {
			return rep, fmt.Errorf("provenance record for events %d-%d reaches past the seal's tree size %d", r.FirstID, r.LastID(), seal.Size)
		}
		pending = pending[:0]
		for next <= r.LastID() {
			e, err := readEvent()
			if err != nil {
				return rep, err
			}
			if e.ID >= r.FirstID {
				pending = append(pending, e)
			} else if err := unrecorded(&e); err != nil {
				return rep, err
			}
		}
		if err := CheckEvents(&r, pending, opt.Keys); err != nil {
			return rep, err
		}
		if r.KeyID == "" {
			for i := range pending {
				if signedOnly[pending[i].Source] {
					return rep, fmt.Errorf("%w: event %d of source %q is not signed (appended by %s)", ErrSignature, pending[i].ID, pending[i].Source, r.AppendedBy)
				}
			}
		}
		rep.Records++
		rep.Events += r.Count
		rep.Signed += int64(len(r.Sigs))
		for _, f := range r.Flags {
			if f&FlagSkewed != 0 {
				rep.Skewed++
			}
		}
	}
	if chain.Value() != seal.Chain {
		return rep, fmt.Errorf("%w: the records up to tree size %d do not reach the value the log sealed: a record was edited, removed or added after it was sealed", ErrTampered, seal.Size)
	}
	for len(signedOnly) > 0 && next <= seal.Size {
		e, err := readEvent()
		if err != nil {
			return rep, err
		}
		if err := unrecorded(&e); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// readLine reads one NDJSON line without its newline, skipping blank
// ones; io.EOF at the end.
func readLine(r *bufio.Reader) ([]byte, error) {
	for {
		var line []byte
		for {
			chunk, err := r.ReadSlice('\n')
			line = append(line, chunk...)
			if len(line) > maxLine {
				return nil, fmt.Errorf("a line longer than %d bytes", maxLine)
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
				return nil, err
			}
			break
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			return line, nil
		}
	}
}
