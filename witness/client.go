package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Client submits checkpoints to one witness.
type Client struct {
	// URL is the witness's submission prefix; add-checkpoint is posted
	// to URL + "/add-checkpoint".
	URL string
	// Verifier is the witness's cosignature key: answers are checked
	// against it, and signature lines from other keys are dropped.
	Verifier note.Verifier
	// HTTP is the client used; http.DefaultClient when nil.
	HTTP *http.Client
}

// ConflictError is a 409: the witness last cosigned a checkpoint of Size
// leaves, not the old size the request gave. Submit again from Size.
type ConflictError struct{ Size int64 }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("witness last cosigned tree size %d, not the old size given", e.Size)
}

// StatusError is any other refusal, with the witness's status and what it
// said.
type StatusError struct {
	Status int
	Body   string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("witness answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Body)
}

// maxAnswer bounds what is read of a witness's answer: a few signature
// lines, or a problem document.
const maxAnswer = 64 << 10

// AddCheckpoint submits req and returns the witness's cosignature lines
// (each "— name base64\n"), verified against req.Checkpoint's body with
// c.Verifier; lines from other keys are dropped. A 409 is a *ConflictError,
// other refusals a *StatusError.
func (c *Client) AddCheckpoint(ctx context.Context, req *AddCheckpoint) ([]byte, error) {
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.URL, "/")+"/add-checkpoint", bytes.NewReader(req.Marshal()))
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("witness answer: %w", err)
	}
	if len(body) > maxAnswer {
		return nil, fmt.Errorf("witness answer longer than %d bytes", maxAnswer)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusConflict:
		s := strings.TrimSuffix(string(body), "\n")
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/x.tlog.size") {
			return nil, &StatusError{Status: resp.StatusCode, Body: clip(body)}
		}
		return nil, &ConflictError{Size: n}
	default:
		return nil, &StatusError{Status: resp.StatusCode, Body: clip(body)}
	}
	return c.cosignatures(req.Checkpoint, body)
}

// cosignatures keeps the lines of answer that are valid cosignatures by
// c.Verifier on the checkpoint's body: appended to the note, they must
// verify with note.Open, as tlog-witness suggests.
func (c *Client) cosignatures(signed, answer []byte) ([]byte, error) {
	if len(answer) == 0 || answer[len(answer)-1] != '\n' {
		return nil, errors.New("witness answer is not signature lines ending in a newline")
	}
	n, err := note.Open(append(append([]byte{}, signed...), answer...), note.VerifierList(c.Verifier))
	if err != nil {
		return nil, fmt.Errorf("witness answer: no valid cosignature by %s: %w", c.Verifier.Name(), err)
	}
	var out []byte
	for _, s := range n.Sigs {
		out = append(out, "— "+s.Name+" "+s.Base64+"\n"...)
	}
	return out, nil
}

// Append adds signature lines to a signed note.
func Append(signed, lines []byte) []byte {
	out := make([]byte, 0, len(signed)+len(lines))
	return append(append(out, signed...), lines...)
}
