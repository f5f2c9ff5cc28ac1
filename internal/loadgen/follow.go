package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// streamClient is the HTTP client of /stream subscribers: no overall
// timeout (a stream lasts the run), a connection each, and reads of up to
// 64 KiB so that one read takes a whole burst.
func streamClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DisableCompression:  true,
		MaxIdleConnsPerHost: -1,
		ReadBufferSize:      64 << 10,
	}}
}

// frame is one SSE frame as a load-generating subscriber sees it: the id of
// an event frame (or of the data-less position frame the stream opens
// with), its data line, and when the read that completed it returned.
type frame struct {
	id   int64
	data []byte // nil for the position frame
	at   time.Time
}

// follow reads GET path (a /stream URL path and query) until ctx ends, the
// stream fails or fn returns an error, calling fn for every frame that
// carries an id: the opening position frame, then each event. Comments and
// checkpoint frames are skipped. It does the least a real subscriber must
// (split frames, read the id) so that the figures are the server's, not a
// JSON decoder's.
func follow(ctx context.Context, sc *http.Client, t *target, path, lastEventID string, fn func(frame) error) error {
	return followSlowly(ctx, sc, t, path, lastEventID, 0, fn)
}

// maxFrame bounds one frame: a server that never ends a frame must not make
// the load tool buffer without limit. The server's own limit on an event is
// far below it.
const maxFrame = 16 << 20

// splitFrames reads SSE frames from r and calls fn for each one with an id.
func splitFrames(r io.Reader, fn func(frame) error) error {
	buf := make([]byte, 64<<10)
	n := 0
	for {
		m, err := r.Read(buf[n:])
		n += m
		now := time.Now()
		p := buf[:n]
		for {
			k := bytes.Index(p, frameEnd)
			if k < 0 {
				break
			}
			f, ok, perr := parseFrame(p[:k])
			p = p[k+len(frameEnd):]
			if perr != nil {
				return perr
			}
			if ok {
				f.at = now
				if err := fn(f); err != nil {
					return err
				}
			}
		}
		n = copy(buf, p)
		if n == len(buf) {
			if n >= maxFrame {
				return fmt.Errorf("stream: a frame longer than %d bytes", maxFrame)
			}
			buf = append(buf, make([]byte, len(buf))...)
		}
		if err != nil {
			if err == io.EOF {
				return io.ErrUnexpectedEOF // a stream does not end by itself
			}
			return err
		}
	}
}

var frameEnd = []byte("\n\n")

// parseFrame reads the id and data lines of one frame; ok is false for a
// frame without an id (a keep-alive comment, a checkpoint).
func parseFrame(f []byte) (frame, bool, error) {
	var out frame
	hasID := false
	for len(f) > 0 {
		line := f
		if i := bytes.IndexByte(f, '\n'); i >= 0 {
			line, f = f[:i], f[i+1:]
		} else {
			f = nil
		}
		switch {
		case bytes.HasPrefix(line, []byte("id: ")):
			id, err := strconv.ParseInt(string(line[4:]), 10, 64)
			if err != nil {
				return frame{}, false, fmt.Errorf("stream: bad id line %q", line)
			}
			out.id, hasID = id, true
		case bytes.HasPrefix(line, []byte("data: ")):
			out.data = line[6:]
		}
	}
	return out, hasID, nil
}
