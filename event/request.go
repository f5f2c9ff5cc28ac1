package event

import (
	"strconv"
	"unicode/utf8"
)

// MaxSourceLen is the longest accepted source, in characters (code points).
const MaxSourceLen = 256

// Request is a validated append request.
type Request struct {
	Kind      string
	Source    string
	Payload   []byte // canonical JSON of the payload object; "{}" when omitted
	Timestamp string // exactly as sent; "" when the producer did not send one
}

// ParseRequest parses and validates a POST /events body against kinds (nil
// means DefaultKindSet). The body must be one JSON object, parsed as strictly
// as by Canonicalize, with the members
//
//	kind       string, required, one of kinds
//	source     string, required, 1 to MaxSourceLen characters
//	payload    object, optional (null is not an object), default {}
//	timestamp  string, optional, a date-time as Python 3.11's
//	           datetime.fromisoformat accepts it (timestamp.go); kept as
//	           sent. null or "" is the same as leaving it out: the server
//	           stamps the event
//
// and no others; a member may not be repeated. Every error is a
// *ValidationError. When the body is not valid JSON, that is the error
// reported, whatever else is wrong with it.
func ParseRequest(body []byte, kinds *KindSet) (Request, error) {
	if kinds == nil {
		kinds = DefaultKindSet
	}
	s := getScanner(body)
	defer putScanner(s)
	return s.request(kinds)
}

// request reads the request object at s.pos: the whole of s.data, or in
// item mode one item of a batch array, up to its closing brace. Offsets in
// its errors are offsets in s.data.
func (s *scanner) request(kinds *KindSet) (Request, error) {
	if err := s.beginObject("body"); err != nil {
		return Request{}, err
	}
	var (
		req  Request
		seen [len(requestFields)]bool
	)
	for {
		f, err := s.nextField(requestFields[:], seen[:])
		if err != nil {
			return Request{}, s.fail(err)
		}
		if f == done {
			break
		}
		if f == skipped {
			continue
		}
		var ok bool
		switch name := requestFields[f]; name {
		case "kind":
			if req.Kind, ok, err = s.stringField(name); ok && !kinds.Has(req.Kind) {
				s.report(&ValidationError{Field: name, Offset: -1, Reason: kinds.Unknown(req.Kind)})
			}
		case "source":
			if req.Source, ok, err = s.stringField(name); !ok {
				break
			}
			if req.Source == "" {
				s.report(&ValidationError{Field: name, Offset: -1, Reason: "must not be empty", Type: "string_too_short"})
			} else if n := utf8.RuneCountInString(req.Source); n > MaxSourceLen {
				s.report(&ValidationError{Field: name, Offset: -1, Type: "string_too_long", Reason: "longer than " +
					strconv.Itoa(MaxSourceLen) + " characters (" + strconv.Itoa(n) + ")"})
			}
		case "timestamp":
			// null and "" ask for a server timestamp, as the original's
			// request model (timestamp: Optional[str] = None) did: it
			// sends null for a timestamp the producer left out.
			if s.data[s.pos] == 'n' {
				err = s.skipValue()
				break
			}
			if req.Timestamp, ok, err = s.stringField(name); !ok || req.Timestamp == "" {
				break
			}
			if reason := checkTimestamp(req.Timestamp); reason != "" {
				s.report(&ValidationError{Field: name, Offset: -1, Reason: reason})
			}
		case "payload":
			if err = s.objectField(name); err == nil {
				req.Payload = append([]byte(nil), s.out...)
			}
		}
		if err != nil {
			return Request{}, s.fail(err)
		}
	}
	if err := s.finish(requestFields[:], seen[:], "kind", "source"); err != nil {
		return Request{}, err
	}
	if req.Payload == nil {
		req.Payload = []byte("{}")
	}
	return req, nil
}

var requestFields = [...]string{"kind", "source", "payload", "timestamp"}
