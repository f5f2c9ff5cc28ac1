package verify

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/audit-stream/audit-stream/event"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// A Receipt is offline evidence that an event is in the log: a C2SP
// tlog-proof (c2sp.org/tlog-proof@v1) whose extra data is the event itself.
//
//	c2sp.org/tlog-proof@v1
//	extra <base64 of the event's wire JSON>
//	index <event_id - 1>
//	<inclusion proof, one base64 hash a line>
//
//	<the signed checkpoint, verbatim>
//
// The extra data is not trusted: the verifier re-hashes the event, and the
// inclusion proof ties that hash to a checkpoint the log signed.
type Receipt struct {
	Event      event.Event
	Index      int64
	Proof      []tlog.Hash
	Checkpoint []byte // the signed note
}

const receiptHeader = "c2sp.org/tlog-proof@v1"

// MaxReceiptSize bounds what ParseReceipt reads: a receipt carries one event
// (bounded by the server's body limit) and a few dozen hashes.
const MaxReceiptSize = 8 << 20

// Marshal returns the tlog-proof text.
func (r *Receipt) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(receiptHeader + "\n")
	b.WriteString("extra " + base64.StdEncoding.EncodeToString(r.Event.AppendJSON(nil)) + "\n")
	b.WriteString("index " + strconv.FormatInt(r.Index, 10) + "\n")
	for _, h := range r.Proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	b.WriteByte('\n')
	b.Write(r.Checkpoint)
	return b.Bytes()
}

// ReceiptError is a receipt that does not parse.
type ReceiptError struct{ Reason string }

func (e *ReceiptError) Error() string { return "receipt: " + e.Reason }

// ParseReceipt parses a tlog-proof receipt. It checks the form, not the
// signature or the proof: see Receipt.Verify.
func ParseReceipt(data []byte) (*Receipt, error) {
	bad := func(format string, args ...any) (*Receipt, error) {
		return nil, &ReceiptError{fmt.Sprintf(format, args...)}
	}
	if len(data) > MaxReceiptSize {
		return bad("%d bytes, more than %d", len(data), MaxReceiptSize)
	}
	head, cp, ok := bytes.Cut(data, []byte("\n\n"))
	if !ok {
		return bad("no empty line before the checkpoint")
	}
	lines := strings.Split(string(head), "\n")
	if lines[0] != receiptHeader {
		return bad("first line must be %q", receiptHeader)
	}
	lines = lines[1:]
	r := &Receipt{Checkpoint: cp}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "extra ") {
		return bad("no extra line: an audit-stream receipt carries its event as extra data")
	}
	raw, err := decodeBase64(strings.TrimPrefix(lines[0], "extra "))
	if err != nil {
		return bad("extra data is not base64: %v", err)
	}
	if r.Event, err = event.ParseStored(raw); err != nil {
		return bad("extra data is not an event: %v", err)
	}
	lines = lines[1:]
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		return bad("missing index line")
	}
	s := strings.TrimPrefix(lines[0], "index ")
	if r.Index, err = strconv.ParseInt(s, 10, 64); err != nil || r.Index < 0 || strconv.FormatInt(r.Index, 10) != s {
		return bad("index %q is not a decimal integer without leading zeroes", s)
	}
	lines = lines[1:]
	if len(lines) > 64 {
		return bad("inclusion proof has %d hashes, more than a tree can need", len(lines))
	}
	for i, l := range lines {
		h, err := decodeBase64(l)
		if err != nil || len(h) != tlog.HashSize {
			return bad("proof line %d is not the base64 of 32 bytes", i+1)
		}
		r.Proof = append(r.Proof, tlog.Hash(h))
	}
	return r, nil
}

// Verify checks the receipt offline: the checkpoint is signed by v for
// origin (the key name when empty), the event re-hashes to its hash, its id
// matches the index, and the inclusion proof leads from its leaf to the
// checkpoint's root. It returns the checkpoint.
func (r *Receipt) Verify(v note.Verifier, origin string) (Checkpoint, error) {
	c, err := OpenCheckpoint(r.Checkpoint, v, origin)
	if err != nil {
		return c, err
	}
	if got, _ := r.Event.ComputeHash(nil); got != r.Event.Hash {
		return c, fmt.Errorf("%w: event %d does not hash to its hash %s", ErrProof, r.Event.ID, r.Event.Hash)
	}
	if r.Event.ID-1 != r.Index {
		return c, fmt.Errorf("%w: event %d cannot be at index %d", ErrProof, r.Event.ID, r.Index)
	}
	return c, CheckInclusion(c, r.Event.ID, r.Event.Hash, r.Proof)
}
