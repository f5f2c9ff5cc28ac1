package httpapi

import (
	"encoding/binary"
	"net/http"
	"strconv"
	"strings"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

// The C2SP tlog-tiles read API: the Merkle tree as immutable 256-wide tiles
// and the events as entry bundles, so that any tlog-tiles client can follow
// and check the log. Paths: /tile/<L>/<N>[.p/<W>] and
// /tile/entries/<N>[.p/<W>], N in 3-digit groups, all but the last
// prefixed with x (1234067 is x001/x234/067).
//
// An entry is the leaf data itself: the event's 32-byte hash. So the
// level-0 tile hash of every entry is SHA-256(0x00 ‖ entry), exactly as
// tlog-tiles clients compute it, and they need no knowledge of our event
// format to check bundles against tiles. The events behind the hashes come
// from GET /export and GET /events/{id}; re-hashing one gives its entry.

// tileHeight is fixed by tlog-tiles: 2^8 = 256 hashes a tile.
const tileHeight = 8

// tilePath is a parsed tile or entry bundle path.
type tilePath struct {
	entries bool
	level   int
	n       int64
	width   int // 256 for a full tile
}

// parseTilePath parses what follows /tile/. It accepts only the canonical
// spelling, so that every tile has one URL (and one cache entry).
func parseTilePath(p string) (tilePath, bool) {
	var t tilePath
	parts := strings.Split(p, "/")
	if len(parts) < 2 {
		return t, false
	}
	if parts[0] == "entries" {
		t.entries = true
	} else {
		l, ok := smallDecimal(parts[0], 63)
		if !ok {
			return t, false
		}
		t.level = l
	}
	parts = parts[1:]
	t.width = 1 << tileHeight
	if k := len(parts); k >= 2 && strings.HasSuffix(parts[k-2], ".p") {
		w, ok := smallDecimal(parts[k-1], 255)
		if !ok || w == 0 {
			return t, false
		}
		t.width = w
		parts = parts[:k-1]
		parts[k-2] = strings.TrimSuffix(parts[k-2], ".p")
	}
	// 7 groups of 3 digits cover every int64 tile index we can have.
	if len(parts) > 7 {
		return t, false
	}
	for i, part := range parts {
		if i < len(parts)-1 {
			if !strings.HasPrefix(part, "x") || (i == 0 && part == "x000") {
				return t, false
			}
			part = part[1:]
		}
		if len(part) != 3 {
			return t, false
		}
		for _, c := range []byte(part) {
			if c < '0' || c > '9' {
				return t, false
			}
			t.n = t.n*10 + int64(c-'0')
		}
	}
	return t, true
}

// smallDecimal parses a decimal from 0 to max without leading zeroes.
func smallDecimal(s string, max int) (int, bool) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > max || strconv.Itoa(n) != s {
		return 0, false
	}
	return n, true
}

func (s *Server) tile(w http.ResponseWriter, r *http.Request) error {
	t, ok := parseTilePath(r.PathValue("path"))
	if !ok {
		return problem(http.StatusNotFound, "not a tlog-tiles path: "+r.URL.Path+" (want /tile/<L>/<N>[.p/<W>] or /tile/entries/<N>[.p/<W>], N in x-prefixed 3-digit groups)")
	}
	// The tile spans leaves [start, end) at level 0 of the tree; shift
	// bounds the arithmetic far from overflow.
	shift := tileHeight * t.level
	if shift+tileHeight >= 62 || t.n >= (1<<(62-shift-tileHeight)) {
		return problem(http.StatusNotFound, "no such tile: the log is not that large")
	}
	start := t.n << (shift + tileHeight)
	end := start + int64(t.width)<<shift
	head, err := s.st.Head(r.Context())
	if err != nil {
		return err
	}
	if end > head.ID {
		return problem(http.StatusNotFound, "tile "+r.URL.Path+" needs "+strconv.FormatInt(end, 10)+" entries; the log has "+strconv.FormatInt(head.ID, 10))
	}
	var body []byte
	if t.entries {
		body, err = s.entryBundle(r, start, end)
	} else {
		tt := tlog.Tile{H: tileHeight, L: t.level, N: t.n, W: t.width}
		body, err = tlog.ReadTileData(tt, hashReader{r.Context(), s.st})
	}
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	// A tile's content is fixed by its path: cache it forever.
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	_, err = w.Write(body)
	return err
}

// entryBundle is the hashes of events start+1..end, each as a big-endian
// uint16 length (always 32) and the 32 hash bytes.
func (s *Server) entryBundle(r *http.Request, start, end int64) ([]byte, error) {
	buf := make([]byte, 0, 34*(end-start))
	next := start + 1
	err := s.st.Scan(r.Context(), store.Filter{After: start, Until: end}, 0, func(e *event.Event) error {
		if e.ID != next {
			return errGap
		}
		next++
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(e.Hash)))
		buf = append(buf, e.Hash[:]...)
		return nil
	})
	if err == nil && next != end+1 {
		err = errGap
	}
	return buf, err
}

var errGap = problem(http.StatusInternalServerError, "the store is missing events inside the tree; the server log has the cause")
