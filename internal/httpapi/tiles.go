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

// maxTileLevel bounds the levels asked for: the leaves a tile spans must be
// countable in an int64.
const maxTileLevel = 63

// parseTilePath parses what follows /tile/ into a tile of height tileHeight;
// an entry bundle is the data tile (level -1). The tlog-tiles spelling is the
// go.sum database's without the height, and tlog accepts only the canonical
// spelling, so that every tile has one URL (and one cache entry).
func parseTilePath(p string) (tlog.Tile, bool) {
	if strings.HasPrefix(p, "data/") {
		return tlog.Tile{}, false // spelled "entries" here
	}
	if rest, ok := strings.CutPrefix(p, "entries/"); ok {
		p = "data/" + rest
	}
	t, err := tlog.ParseTilePath("tile/" + strconv.Itoa(tileHeight) + "/" + p)
	if err != nil || t.L > maxTileLevel {
		return tlog.Tile{}, false
	}
	return t, true
}

func (s *Server) tile(w http.ResponseWriter, r *http.Request) error {
	t, ok := parseTilePath(r.PathValue("path"))
	if !ok {
		return problem(http.StatusNotFound, "not a tlog-tiles path: "+r.URL.Path+" (want /tile/<L>/<N>[.p/<W>] or /tile/entries/<N>[.p/<W>], N in x-prefixed 3-digit groups)")
	}
	// The tile spans leaves [start, end) at level 0 of the tree; shift
	// bounds the arithmetic far from overflow.
	entries := t.L == -1
	shift := tileHeight * max(t.L, 0)
	if shift+tileHeight >= 62 || t.N >= (1<<(62-shift-tileHeight)) {
		return problem(http.StatusNotFound, "no such tile: the log is not that large")
	}
	start := t.N << (shift + tileHeight)
	end := start + int64(t.W)<<shift
	head, err := s.st.Head(r.Context())
	if err != nil {
		return err
	}
	if end > head.ID {
		return problem(http.StatusNotFound, "tile "+r.URL.Path+" needs "+strconv.FormatInt(end, 10)+" entries; the log has "+strconv.FormatInt(head.ID, 10))
	}
	var body []byte
	if entries {
		body, err = s.entryBundle(r, start, end)
	} else {
		body, err = tlog.ReadTileData(t, hashReader{r.Context(), s.st})
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
