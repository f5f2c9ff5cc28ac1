package witness

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"
)

// MaxProofLines is the most consistency proof hashes an add-checkpoint
// request may carry (tlog-witness: fewer than 64).
const MaxProofLines = 63

// MaxRequestSize bounds an add-checkpoint body: the old size line, 63 proof
// lines of 45 bytes and a checkpoint note of at most 16 KiB (the bound
// verify.MaxCheckpointSize puts on a note with its cosignatures) fit well
// within it.
const MaxRequestSize = 64 << 10

// AddCheckpoint is the body of a tlog-witness add-checkpoint request.
//
//	old 20852014
//	<consistency proof, one base64 hash a line>
//
//	<the signed checkpoint note>
type AddCheckpoint struct {
	OldSize    int64
	Proof      []tlog.Hash
	Checkpoint []byte // the signed note, verbatim
}

// Marshal returns the request body.
func (r *AddCheckpoint) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("old ")
	b.WriteString(strconv.FormatInt(r.OldSize, 10))
	b.WriteByte('\n')
	for _, h := range r.Proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(r.Checkpoint)
	return b.Bytes()
}

// RequestError is an add-checkpoint body that does not follow the
// protocol (a 400).
type RequestError struct{ Reason string }

func (e *RequestError) Error() string { return "add-checkpoint request: " + e.Reason }

// ParseAddCheckpoint parses an add-checkpoint body strictly: every line ends
// in a newline, the size is decimal without leading zeroes, each proof line
// is the standard base64 of 32 bytes. The checkpoint note is returned as
// sent; its signatures and body are the witness's to check.
func ParseAddCheckpoint(body []byte) (*AddCheckpoint, error) {
	bad := func(format string, args ...any) (*AddCheckpoint, error) {
		return nil, &RequestError{fmt.Sprintf(format, args...)}
	}
	if len(body) > MaxRequestSize {
		return bad("%d bytes, more than %d", len(body), MaxRequestSize)
	}
	r := &AddCheckpoint{}
	line, rest, ok := bytes.Cut(body, []byte{'\n'})
	if !ok {
		return bad("no old size line")
	}
	n, ok := bytes.CutPrefix(line, []byte("old "))
	if !ok {
		return bad("first line must be \"old <size>\", got %q", clip(line))
	}
	size, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != string(n) {
		return bad("old size %q is not a decimal integer without leading zeroes", clip(n))
	}
	r.OldSize = size
	for {
		line, rest, ok = bytes.Cut(rest, []byte{'\n'})
		if !ok {
			return bad("no empty line before the checkpoint")
		}
		if len(line) == 0 {
			break
		}
		if len(r.Proof) == MaxProofLines {
			return bad("more than %d consistency proof lines", MaxProofLines)
		}
		// The length first: 44 characters may decode to 33 bytes.
		if len(line) != base64.StdEncoding.EncodedLen(tlog.HashSize) {
			return bad("proof line %d is not the base64 of 32 bytes", len(r.Proof)+1)
		}
		raw, err := base64.StdEncoding.Strict().DecodeString(string(line))
		if err != nil || len(raw) != tlog.HashSize {
			return bad("proof line %d is not the base64 of 32 bytes", len(r.Proof)+1)
		}
		h := tlog.Hash(raw)
		r.Proof = append(r.Proof, h)
	}
	if len(rest) == 0 {
		return bad("no checkpoint after the empty line")
	}
	r.Checkpoint = rest
	return r, nil
}

// clip shortens what an error quotes back.
func clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}
