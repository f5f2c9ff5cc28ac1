package sqlite

import (
	"database/sql"
	"fmt"
	"math"

	"github.com/audit-stream/audit-stream/event"
)

// scanColumn packs a whole event row into one blob: a header of decimal
// numbers, "event_id,len(prev_hash),len(hash),len(timestamp),len(kind),
// len(source),", then prev_hash ‖ hash ‖ timestamp ‖ kind ‖ source ‖
// payload. The driver takes locks and makes a Go allocation for every column
// of every row, which made seven columns the largest cost of a scan. The
// || operator, not concat(): concat() takes each result from the global
// allocator, whose lock parallel scans then fight over; || grows the result
// in the connection's own lookaside memory. A row whose hashes are not 32
// bytes (the database was damaged or edited) is read again with
// eventColumns, which reports it.
const scanColumn = `CAST(event_id || ',' || octet_length(prev_hash) || ',' || octet_length(hash) || ',' ||
	octet_length(timestamp) || ',' || octet_length(kind) || ',' || octet_length(source) || ',' ||
	prev_hash || hash || timestamp || kind || source || payload AS BLOB)`

// scanner decodes packed rows. Kinds and sources repeat across a log, so it
// keeps one string of each instead of allocating one per row; payloads are
// carved from shared blocks, each capped so that appending to one cannot
// write into the next.
type scanner struct {
	names map[string]string
	block []byte
}

const (
	maxInterned  = 4096
	payloadBlock = 64 << 10
)

func (sc *scanner) name(b []byte) string {
	if s, ok := sc.names[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	if len(sc.names) < maxInterned {
		if sc.names == nil {
			sc.names = make(map[string]string)
		}
		sc.names[s] = s
	}
	return s
}

func (sc *scanner) payload(b []byte) []byte {
	if len(b) > payloadBlock/8 {
		return append([]byte{}, b...)
	}
	if len(b) > cap(sc.block)-len(sc.block) {
		sc.block = make([]byte, 0, payloadBlock)
	}
	n := len(sc.block)
	sc.block = append(sc.block, b...)
	return sc.block[n : n+len(b) : n+len(b)]
}

// decode fills e from one packed row; ok is false if the row is not as
// every row written by Append is.
func (sc *scanner) decode(rows *sql.Rows, e *event.Event) (ok bool, err error) {
	var blob sql.RawBytes
	if err := rows.Scan(&blob); err != nil {
		return false, err
	}
	return sc.unpack(blob, e)
}

// unpack decodes one row packed by scanColumn.
func (sc *scanner) unpack(blob []byte, e *event.Event) (ok bool, err error) {
	var head [6]int64
	b := blob
	for i := range head {
		var n int64
		j := 0
		for ; j < len(b) && '0' <= b[j] && b[j] <= '9'; j++ {
			d := int64(b[j] - '0')
			if n > (math.MaxInt64-d)/10 {
				break
			}
			n = n*10 + d
		}
		if j == 0 || j == len(b) || b[j] != ',' {
			return false, fmt.Errorf("packed row header is damaged: %.40q", blob)
		}
		head[i], b = n, b[j+1:]
	}
	e.ID = head[0]
	if head[1] != 32 || head[2] != 32 {
		return false, nil
	}
	lt, lk, ls := head[3], head[4], head[5]
	if n := int64(len(b)); lt > n || lk > n || ls > n || n < 64+lt+lk+ls {
		return false, fmt.Errorf("event %d: packed row of %d bytes is too short", e.ID, len(blob))
	}
	copy(e.PrevHash[:], b[:32])
	copy(e.Hash[:], b[32:64])
	b = b[64:]
	e.Timestamp = string(b[:lt])
	e.Kind = sc.name(b[lt : lt+lk])
	e.Source = sc.name(b[lt+lk : lt+lk+ls])
	e.Payload = sc.payload(b[lt+lk+ls:])
	return true, nil
}
