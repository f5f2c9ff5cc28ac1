package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is the body of a C2SP tlog-checkpoint: the log's origin, the
// size of its Merkle tree and the RFC 6962 root hash of that tree.
//
//	audit-stream/0f3c9d2a71b4e8c6
//	1024
//	9vI1BLd3vJd1y0NpYxl2b1Y2e3Gm1y4cC5rZ0pDq0jU=
type Checkpoint struct {
	Origin string
	Size   int64
	Hash   tlog.Hash
	// Extensions are the optional lines after the root hash, kept so
	// that a checkpoint from another log round-trips; we write none.
	Extensions []string
}

// EmptyTreeHash is the RFC 6962 root of the tree with no leaves:
// SHA-256 of the empty string.
var EmptyTreeHash = tlog.Hash(sha256.Sum256(nil))

// MaxCheckpointSize bounds a signed checkpoint note. A real one is a few
// hundred bytes; the bound keeps a hostile server from feeding a witness
// megabytes.
const MaxCheckpointSize = 16 << 10

// Marshal returns the checkpoint body: origin, size and base64 root, one per
// line, each ending in a newline.
func (c Checkpoint) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(c.Origin)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatInt(c.Size, 10))
	b.WriteByte('\n')
	b.WriteString(base64.StdEncoding.EncodeToString(c.Hash[:]))
	b.WriteByte('\n')
	for _, e := range c.Extensions {
		b.WriteString(e)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// CheckpointError is a checkpoint body that does not follow tlog-checkpoint.
type CheckpointError struct{ Reason string }

func (e *CheckpointError) Error() string { return "checkpoint: " + e.Reason }

// ParseCheckpoint parses a checkpoint body (the text of the signed note,
// without signatures). It is strict: every line must end in a newline, the
// size must be a decimal with no leading zeroes or sign, the root must be
// the standard base64 of exactly 32 bytes.
func ParseCheckpoint(text []byte) (Checkpoint, error) {
	var c Checkpoint
	if len(text) == 0 || text[len(text)-1] != '\n' {
		return c, &CheckpointError{"body must end with a newline"}
	}
	lines := strings.Split(string(text[:len(text)-1]), "\n")
	if len(lines) < 3 {
		return c, &CheckpointError{fmt.Sprintf("body has %d lines, want at least 3 (origin, size, root hash)", len(lines))}
	}
	for i, l := range lines {
		if l == "" {
			return c, &CheckpointError{fmt.Sprintf("line %d is empty", i+1)}
		}
	}
	c.Origin = lines[0]
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return c, &CheckpointError{fmt.Sprintf("tree size %q is not a decimal integer without leading zeroes", lines[1])}
	}
	c.Size = n
	h, err := decodeBase64(lines[2])
	if err != nil || len(h) != tlog.HashSize {
		return c, &CheckpointError{fmt.Sprintf("root hash %q is not the base64 of 32 bytes", lines[2])}
	}
	copy(c.Hash[:], h)
	if len(lines) > 3 {
		c.Extensions = lines[3:]
	}
	return c, nil
}

// decodeBase64 is strict standard base64 that, unlike encoding/base64 even
// in Strict mode, refuses the carriage returns and newlines that decoder
// skips: a line that decodes must be the one encoding of its bytes, or a
// signed text could be accepted in a form other than the one re-marshalled.
func decodeBase64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("base64 with a line break")
	}
	return base64.StdEncoding.Strict().DecodeString(s)
}

// SignCheckpoint signs c as a C2SP signed note.
func SignCheckpoint(c Checkpoint, s note.Signer) ([]byte, error) {
	return note.Sign(&note.Note{Text: string(c.Marshal())}, s)
}

// ParseVerifierKey parses a note verifier key, name+hash+base64, as served at
// GET /checkpoint/key and printed by audit-stream key show.
func ParseVerifierKey(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("verifier key: %w (want name+hash+base64, as GET /checkpoint/key serves it)", err)
	}
	return v, nil
}

// ErrOrigin reports a checkpoint from another log than the one expected.
var ErrOrigin = errors.New("checkpoint origin does not match")

// OpenCheckpoint checks a signed checkpoint note: v must have signed it, the
// body must parse, and its origin must be origin (the key name when origin is
// empty, the tlog convention).
func OpenCheckpoint(signed []byte, v note.Verifier, origin string) (Checkpoint, error) {
	if len(signed) > MaxCheckpointSize {
		return Checkpoint{}, &CheckpointError{fmt.Sprintf("signed checkpoint is %d bytes, more than %d", len(signed), MaxCheckpointSize)}
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint signature: %w", err)
	}
	c, err := ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return c, err
	}
	if origin == "" {
		origin = v.Name()
	}
	if c.Origin != origin {
		return c, fmt.Errorf("%w: got %q, want %q", ErrOrigin, c.Origin, origin)
	}
	return c, nil
}
