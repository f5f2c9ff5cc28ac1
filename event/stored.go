package event

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

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
func ParseStored(data []byte) (Event, error) { return parseStored(data, true) }

// parseStored is ParseStored; served tries the short way first.
func parseStored(data []byte, served bool) (Event, error) {
	s := getScanner(data)
	defer putScanner(s)
	s.maxDepth = MaxStoredDepth
	if served {
		if ev, ok := s.served(); ok {
			return ev, nil
		}
		s.pos, s.depth = 0, 0
	}
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
	if c := s.data[s.pos]; c != '"' {
		_, _, err := s.stringField(name) // reports it
		return err
	}
	var err error
	if s.str, _, err = s.decodeString(s.str[:0]); err != nil {
		return err
	}
	if *h, err = parseHash(s.str); err != nil {
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

// served parses data if it is an event exactly as this service serves it
// (AppendJSON): the members in envelope order, no whitespace, timestamp,
// kind and source of printable ASCII with nothing escaped, the hashes in
// lowercase hex. That is every line of an export, and reading it so costs
// a fraction of the general walk: no member names to decode and look up,
// no strings to decode. The payload goes through the scanner as in the
// walk, for the same checks and canonical form. The event is the one the
// walk would return; ok is false for any other input, which the walk then
// reads (and judges) from the start.
func (s *scanner) served() (ev Event, ok bool) {
	d := s.data
	var lit [3][]byte
	if d, ok = cutPrefix(d, `{"event_id":`); !ok {
		return ev, false
	}
	n := 0
	for n < len(d) && n < 19 && '0' <= d[n] && d[n] <= '9' {
		n++
	}
	if n == 0 || d[0] == '0' {
		return ev, false
	}
	id, err := strconv.ParseInt(string(d[:n]), 10, 64)
	if err != nil {
		return ev, false
	}
	d = d[n:]
	for i, name := range [...]string{`,"timestamp":"`, `","kind":"`, `","source":"`} {
		if d, ok = cutPrefix(d, name); !ok {
			return ev, false
		}
		n := plainPrefix(d)
		lit[i], d = d[:n], d[n:]
	}
	if d, ok = cutPrefix(d, `","payload":{`); !ok {
		return ev, false
	}
	s.pos = len(s.data) - len(d) - 1
	if n, ok := canonicalLen(s.data[s.pos:], 1); ok {
		s.out = append(s.out[:0], s.data[s.pos:s.pos+n]...)
		s.pos += n
	} else {
		s.depth = 1
		s.out = s.out[:0]
		if s.out, err = s.value(s.out); err != nil {
			return ev, false
		}
	}
	d = s.data[s.pos:]
	if d, ok = cutPrefix(d, `,"prev_hash":"`); !ok || len(d) < 64 {
		return ev, false
	}
	if ev.PrevHash, err = parseHash(d[:64]); err != nil {
		return ev, false
	}
	if d, ok = cutPrefix(d[64:], `","hash":"`); !ok || len(d) != 64+2 || string(d[64:]) != `"}` {
		return ev, false
	}
	if ev.Hash, err = parseHash(d[:64]); err != nil {
		return ev, false
	}
	// One allocation for the strings and the payload, which never share
	// it with anything else; the payload is capped so that an append to it
	// cannot run into the strings.
	buf := make([]byte, 0, len(s.out)+len(lit[0])+len(lit[1])+len(lit[2]))
	buf = append(buf, s.out...)
	ev.Payload = buf[:len(buf):len(buf)]
	str := func(b []byte) string {
		if len(b) == 0 {
			return ""
		}
		start := len(buf)
		buf = append(buf, b...)
		return unsafe.String(&buf[start], len(b))
	}
	ev.ID, ev.Timestamp, ev.Kind, ev.Source = id, str(lit[0]), str(lit[1]), str(lit[2])
	return ev, true
}

func cutPrefix(d []byte, prefix string) ([]byte, bool) {
	if len(d) < len(prefix) || string(d[:len(prefix)]) != prefix {
		return d, false
	}
	return d[len(prefix):], true
}

// plainPrefix is the length of the run of plain bytes (see plain) at the
// start of d.
func plainPrefix(d []byte) int {
	i := 0
	// Eight bytes at a time while none of them is special: a byte below
	// ' ', '"', '\\' or one from DEL up sets its high bit in the test.
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(d); i += 8 {
		w := binary.LittleEndian.Uint64(d[i:])
		quote, slash := w^(ones*'"'), w^(ones*'\\')
		special := (w - ones*' ') | (w + ones*(0x80-0x7f)) | (quote - ones) | (slash - ones)
		if (special|w)&highs != 0 {
			break
		}
	}
	for i < len(d) && d[i] < utf8.RuneSelf && plain[d[i]] {
		i++
	}
	return i
}
