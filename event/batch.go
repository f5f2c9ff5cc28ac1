package event

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
)

// MaxBatch is the most events one batch may carry.
const MaxBatch = 10000

// ErrBatchTooLarge is returned by ParseBatch for a batch of more than
// MaxBatch events.
var ErrBatchTooLarge = errors.New("a batch may carry at most " + strconv.Itoa(MaxBatch) + " events")

// maxBatchFailures bounds the failures a BatchError lists.
const maxBatchFailures = 1000

// BatchError rejects a batch whose items do not all validate. It lists the
// failures of every item read, each with the item's index, so that a
// producer can fix them all at once.
type BatchError struct {
	Failures []BatchFailure // in item order; at most 1,000
}

// BatchFailure is one failure of one item. Offsets in it are from the start
// of the batch body.
type BatchFailure struct {
	Item int
	*ValidationError
}

// Error lists the first ten failures, "item 3: source: must not be empty",
// and how many more there are.
func (e *BatchError) Error() string {
	var b strings.Builder
	for i, f := range e.Failures {
		if i == 10 {
			b.WriteString("; and " + strconv.Itoa(len(e.Failures)-10) + " more")
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString("item " + strconv.Itoa(f.Item) + ": " + f.Message())
	}
	return b.String()
}

// Is reports whether target is ErrInvalid.
func (e *BatchError) Is(target error) bool { return target == ErrInvalid }

// ParseBatch parses a batch of append requests: a JSON array of request
// objects, or with ndjson one request object a line (blank lines are
// skipped). Each item is parsed exactly as ParseRequest parses a body, and
// then, if check is not nil, checked by it (a kind's payload schema, say).
//
// A body that is not an array, an empty batch, and an array that does not
// parse around its items (not closed, an item not followed by ',' or ']',
// data after it) are a *ValidationError about the body. A batch of more than
// MaxBatch items is ErrBatchTooLarge. Otherwise every item is read, and the
// failures of all of them are one *BatchError; a syntax error inside an item
// ends the reading there, since where the item ends is then unknown.
func ParseBatch(body []byte, ndjson bool, kinds *KindSet, check func(*Request) *ValidationError) ([]Request, error) {
	if kinds == nil {
		kinds = DefaultKindSet
	}
	s := getScanner(body)
	defer putScanner(s)
	// Sized for items of about 100 bytes, so a typical batch is read
	// without growing the slice.
	reqs := make([]Request, 0, min(MaxBatch, 1+len(body)/100))
	var failed BatchError
	// item reads the request at s.pos and records its failures; it reports
	// whether the reading can go on after it.
	item := func() bool {
		i := len(reqs)
		req, err := s.request(kinds)
		// Checked in place: a pointer to req itself would move every
		// request to the heap.
		reqs = append(reqs, req)
		if err == nil && check != nil {
			if verr := check(&reqs[i]); verr != nil {
				err = verr
			}
		}
		if err == nil {
			return true
		}
		verr, ok := err.(*ValidationError)
		if !ok {
			verr = &ValidationError{Offset: -1, Reason: err.Error()}
		}
		for _, e := range verr.All() {
			if len(failed.Failures) < maxBatchFailures {
				failed.Failures = append(failed.Failures, BatchFailure{Item: i, ValidationError: e})
			}
		}
		// A walk that ended early (a syntax error, a limit broken
		// inside a value) left s.pos inside the item.
		return s.closed
	}

	if ndjson {
		for start := 0; start < len(body); {
			end := bytes.IndexByte(body[start:], '\n')
			if end < 0 {
				end = len(body)
			} else {
				end += start
			}
			if len(bytes.TrimLeft(body[start:end], " \t\r")) > 0 {
				if len(reqs) == MaxBatch {
					return nil, ErrBatchTooLarge
				}
				// The line is the whole of the scanner's input, so
				// that the request must end with it; offsets stay the
				// body's.
				s.data, s.pos = body[:end], start
				item()
			}
			start = end + 1
		}
	} else if err := s.batchArray(item); err != nil {
		return nil, err
	}
	if len(failed.Failures) > 0 {
		return nil, &failed
	}
	if len(reqs) == 0 {
		return nil, &ValidationError{Offset: -1, Reason: "the batch is empty: send at least one event"}
	}
	return reqs, nil
}

// batchArray walks a batch array, calling item with s.pos at each item, until
// item reports that the reading cannot go on.
func (s *scanner) batchArray(item func() bool) error {
	s.skipSpace()
	if s.pos == len(s.data) || s.data[s.pos] != '[' {
		return &ValidationError{Offset: -1, Reason: "body: a batch must be a JSON array of events (or NDJSON with Content-Type: application/x-ndjson)"}
	}
	s.pos++
	s.skipSpace()
	notClosed := &ValidationError{Offset: -1, Reason: "invalid JSON: the array is not closed"}
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
	} else {
		s.item = true
		for n := 0; ; n++ {
			if s.pos == len(s.data) {
				return notClosed
			}
			if c := s.data[s.pos]; c == ',' || c == ']' || c == '}' || c == ':' {
				return s.expected("a value")
			}
			if n == MaxBatch {
				return ErrBatchTooLarge
			}
			if !item() {
				return nil // the item's syntax error is the answer
			}
			s.skipSpace()
			if s.pos == len(s.data) {
				return notClosed
			}
			if c := s.data[s.pos]; c == ']' {
				s.pos++
				break
			} else if c != ',' {
				return s.syntaxError("expected ',' or ']' after item " + strconv.Itoa(n))
			}
			s.pos++
			s.skipSpace()
		}
		s.item = false
	}
	if s.skipSpace(); s.pos != len(s.data) {
		return s.syntaxError("data after the array")
	}
	return nil
}
