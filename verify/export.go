package verify

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/audit-stream/audit-stream/event"
)

// InputError is input that is not what a verifier checks: a file that is
// not an export, a receipt that is not one, a checkpoint signed by another
// key. It is never a broken log, so callers must not report it as
// valid:false, which an auditor reads as tampering.
type InputError struct{ Reason string }

func (e *InputError) Error() string { return e.Reason }

// MaxExportLine bounds one line of an NDJSON export: an event as served,
// payload included.
const MaxExportLine = 64 << 20

// ExportSource reads events from an export: NDJSON, one event a line (GET
// /export, audit-stream export), or a JSON array (the original service's
// GET /events dump), told apart by the first byte. A leading UTF-8
// byte-order mark and blank lines are skipped. It only splits the input:
// StreamRaw's workers parse the events.
//
// Input that is not an export at all (an HTML page, a saved problem+json
// answer, other JSON) is an *InputError, told from an export whose first
// event is damaged, which the walk reports as a break. A later record of a
// JSON array that is not JSON is a *DecodeError at its position.
func ExportSource(in io.Reader) RawSource {
	return func(ctx context.Context, fn func([]byte) error) error {
		br := bufio.NewReaderSize(in, 1<<20)
		if b, _ := br.Peek(3); len(b) == 3 && len(event.TrimBOM(b)) == 0 {
			br.Discard(3) // as Windows tools save UTF-8
		}
		first, err := peekNonSpace(br)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if first != '[' && first != '{' {
			return &InputError{Reason: fmt.Sprintf("not an export: it starts with %q, where an export (NDJSON) starts with '{' and the original's dump (a JSON array) with '['", first)}
		}
		checked := false
		emit := func(raw []byte) error {
			if !checked {
				checked = true
				if err := checkFirstRecord(raw); err != nil {
					return err
				}
			}
			return fn(raw)
		}
		if first == '[' {
			return splitArray(br, emit)
		}
		sc := bufio.NewScanner(br)
		sc.Buffer(make([]byte, 0, 1<<20), MaxExportLine)
		for sc.Scan() {
			if len(bytes.TrimSpace(sc.Bytes())) == 0 {
				continue
			}
			if err := emit(sc.Bytes()); err != nil {
				return err
			}
		}
		return sc.Err()
	}
}

func splitArray(r io.Reader, emit func([]byte) error) error {
	dec := json.NewDecoder(r)
	if _, err := dec.Token(); err != nil {
		return err
	}
	var at int64
	for dec.More() {
		at++
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if at == 1 {
				return &InputError{Reason: fmt.Sprintf("not an export: its first record is not JSON: %v", err)}
			}
			return &DecodeError{At: at, Err: err}
		}
		if err := emit(raw); err != nil {
			return err
		}
	}
	return nil
}

// checkFirstRecord tells a file that is not an export at all (a saved
// error answer, some other JSON) from an export whose first event is
// damaged: the first is an input error, the second is for the chain walk to
// report as a break.
func checkFirstRecord(raw []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return &InputError{Reason: fmt.Sprintf("not an export: its first record is not a JSON object: %v", err)}
	}
	for _, k := range []string{"event_id", "prev_hash", "hash"} {
		if _, ok := m[k]; ok {
			return nil // an event, intact or not
		}
	}
	var p struct {
		Status int
		Title  string
		Detail any
	}
	if json.Unmarshal(raw, &p) == nil && p.Status >= 400 {
		detail, _ := json.Marshal(p.Detail)
		return &InputError{Reason: fmt.Sprintf("not an export but an HTTP error answer (%d %s: %s); fetch the export again, with a token if the server needs one",
			p.Status, p.Title, bytes.Trim(detail, `"`))}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) > 8 {
		keys = append(keys[:8], "...")
	}
	return &InputError{Reason: fmt.Sprintf("not an export: its first record has none of an event's members (event_id, prev_hash, hash), only %s", strings.Join(keys, ", "))}
}

func peekNonSpace(br *bufio.Reader) (byte, error) {
	for {
		c, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return c, br.UnreadByte()
		}
	}
}
