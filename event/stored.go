package event

import "strconv"

// ParseStored parses one event in wire form,
//
//	{event_id, timestamp, kind, source, payload, prev_hash, hash}
//
// as served by this service or by the original Python service (whose
// GET /events dump is pretty-printed, raw UTF-8, payload keys unsorted), in
// any member order. All seven members are required and no others are allowed.
// The payload is re-canonicalised so that the event can be re-hashed. The
// kind is not checked against any set and the timestamp is not checked (the
// hash covers them as they are); event_id must be an integer from 1 to 2^63-1
// and prev_hash and hash 64 lowercase hex characters, but whether hash is
// right is for verification to decide. None of the append-time limits of
// ParseRequest apply beyond strict JSON: a source of any length, a payload
// nested up to MaxStoredDepth levels, repeated payload keys (the last wins,
// as in Python) are all judged by the hash alone. Every error is a
// *ValidationError.
func ParseStored(data []byte) (Event, error) {
	s := getScanner(data)
	defer putScanner(s)
	s.maxDepth = MaxStoredDepth
	if err := s.beginObject("event"); err != nil {
		return Event{}, err
	}
	var (
		ev   Event
		seen [len(storedFields)]bool
	)
	for {
		f, err := s.nextField(storedFields[:], seen[:])
		if err != nil {
			return Event{}, err
		}
		if f == done {
			break
		}
		if f == skipped {
			continue
		}
		switch name := storedFields[f]; name {
		case "event_id":
			err = s.idField(name, &ev.ID)
		case "timestamp":
			ev.Timestamp, _, err = s.stringField(name)
		case "kind":
			ev.Kind, _, err = s.stringField(name)
		case "source":
			ev.Source, _, err = s.stringField(name)
		case "payload":
			if err = s.objectField(name); err == nil {
				ev.Payload = append([]byte(nil), s.out...)
			}
		case "prev_hash":
			err = s.hashField(name, &ev.PrevHash)
		case "hash":
			err = s.hashField(name, &ev.Hash)
		}
		if err != nil {
			return Event{}, err
		}
	}
	if err := s.finish(storedFields[:], seen[:], storedFields[:]...); err != nil {
		return Event{}, err
	}
	return ev, nil
}

var storedFields = [...]string{"event_id", "timestamp", "kind", "source", "payload", "prev_hash", "hash"}

// hashField reads a hash: 64 lowercase hex characters.
func (s *scanner) hashField(name string, h *Hash) error {
	v, ok, err := s.stringField(name)
	if !ok {
		return err
	}
	if *h, err = ParseHash(v); err != nil {
		s.report(&ValidationError{Field: name, Offset: -1, Reason: "must be 64 lowercase hex characters"})
	}
	return nil
}

// idField reads an event id: an integer from 1 to 2^63-1.
func (s *scanner) idField(name string, id *int64) error {
	c := s.data[s.pos]
	if c != '-' && (c < '0' || c > '9') {
		s.report(&ValidationError{Field: name, Offset: -1, Reason: "must be an integer, got " + typeName(c), Type: "int_type"})
		return s.skipValue()
	}
	start := s.pos
	isFloat, err := s.scanNumber()
	if err != nil {
		return err
	}
	n, err := strconv.ParseInt(string(s.data[start:s.pos]), 10, 64)
	switch {
	case isFloat:
		s.report(&ValidationError{Field: name, Offset: -1, Reason: "must be an integer, got " + quoteShort(string(s.data[start:s.pos]))})
	case err != nil || n < 1:
		s.report(&ValidationError{Field: name, Offset: -1, Reason: "must be an integer from 1 to 9223372036854775807"})
	}
	*id = n
	return nil
}
