package client

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"time"
)

// errLineTooLong is returned by sseReader when a line exceeds its limit: the
// stream is not one this client can follow without unbounded memory.
var errLineTooLong = errors.New("client: SSE frame longer than the limit")

// sseFrame is one dispatch of an SSE stream, as the WHATWG HTML "event
// stream interpretation" defines it.
type sseFrame struct {
	// Event is the event type ("" means "message").
	Event string
	// ID is the stream's last event ID after this dispatch: the last id
	// field seen, which persists across frames until the server sets
	// another.
	ID string
	// Data is the data lines joined with "\n". HasData is false for a
	// dispatch without any data line: browsers fire no event for it, but
	// it still sets the last event ID.
	Data    []byte
	HasData bool
}

// sseReader parses an event stream incrementally: it returns each frame as
// soon as its terminating blank line has arrived, never waiting for bytes
// beyond it (a lone CR ends a line without looking at the next byte).
type sseReader struct {
	r   io.Reader
	max int // longest accepted frame (all its lines), in bytes

	buf        []byte // unread input is buf[off:]
	off        int
	started    bool // the optional leading BOM has been dealt with
	skipLF     bool // the previous line ended in CR: a leading LF belongs to it
	err        error
	lastID     string
	idBuf      string
	event      []byte
	data       []byte
	hasData    bool
	retry      time.Duration
	retrySet   bool
	frameBytes int // bytes of the frame being assembled, bounded by max
}

func newSSEReader(r io.Reader, maxFrame int) *sseReader {
	return &sseReader{r: r, max: maxFrame, buf: make([]byte, 0, 4096)}
}

// Retry returns the last valid retry field, if any.
func (p *sseReader) Retry() (time.Duration, bool) { return p.retry, p.retrySet }

// Next returns the next dispatched frame. At the end of the input it returns
// io.EOF (or the reader's error), discarding an unterminated frame as the
// specification requires. The returned Data is valid until the next call.
func (p *sseReader) Next() (sseFrame, error) {
	for {
		line, err := p.line()
		if err != nil {
			return sseFrame{}, err
		}
		if len(line) == 0 {
			f, ok := p.dispatch()
			if ok {
				return f, nil
			}
			continue
		}
		p.field(line)
	}
}

// dispatch ends a frame. It reports false when there is nothing at all to
// report: no data and no change of id (a blank line after a comment, a
// retry field, or another blank line).
func (p *sseReader) dispatch() (sseFrame, bool) {
	changed := p.idBuf != p.lastID
	p.lastID = p.idBuf
	f := sseFrame{ID: p.lastID, HasData: p.hasData}
	if p.hasData {
		f.Event = string(p.event)
		f.Data = p.data
		if n := len(f.Data); n > 0 && f.Data[n-1] == '\n' {
			f.Data = f.Data[:n-1]
		}
	}
	p.event, p.data, p.hasData = p.event[:0], p.data[:0], false
	p.frameBytes = 0
	return f, f.HasData || changed
}

func (p *sseReader) field(line []byte) {
	if line[0] == ':' {
		return // a comment: keep-alive
	}
	name, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) {
	case "event":
		p.event = append(p.event[:0], value...)
	case "data":
		p.data = append(append(p.data, value...), '\n')
		p.hasData = true
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			p.idBuf = string(value)
		}
	case "retry":
		if len(value) == 0 {
			return
		}
		for _, c := range value {
			if c < '0' || c > '9' {
				return
			}
		}
		if ms, err := strconv.ParseInt(string(value), 10, 64); err == nil && ms <= int64(time.Duration(1<<63-1)/time.Millisecond) {
			p.retry, p.retrySet = time.Duration(ms)*time.Millisecond, true
		}
	}
}

// line returns the next line without its terminator (CRLF, LF or CR). The
// slice is valid until the next call.
func (p *sseReader) line() ([]byte, error) {
	scanned := 0 // bytes of buf[off:] known to hold no terminator
	for {
		rest := p.buf[p.off:]
		if !p.started {
			// Wait only while what has arrived could still be a BOM.
			const bom = "\xEF\xBB\xBF"
			switch {
			case bytes.HasPrefix(rest, []byte(bom)):
				p.started = true
				p.off += len(bom)
				continue
			case len(rest) >= len(bom) || !bytes.HasPrefix([]byte(bom), rest) || p.err != nil:
				p.started = true
			}
		}
		if p.started {
			if p.skipLF && len(rest) > 0 {
				p.skipLF = false
				if rest[0] == '\n' {
					p.off++
					continue
				}
			}
			if i := bytes.IndexAny(rest[scanned:], "\r\n"); i >= 0 {
				i += scanned
				line := rest[:i]
				p.skipLF = rest[i] == '\r'
				p.off += i + 1
				p.frameBytes += i + 1
				if p.frameBytes > p.max {
					return nil, errLineTooLong
				}
				return line, nil
			}
			scanned = len(rest)
			if len(rest) > p.max || p.frameBytes+len(rest) > p.max {
				return nil, errLineTooLong
			}
		}
		if p.err != nil {
			return nil, p.err
		}
		p.fill()
	}
}

// fill reads more input, first moving the unread bytes to the front.
func (p *sseReader) fill() {
	if p.off > 0 {
		n := copy(p.buf, p.buf[p.off:])
		p.buf = p.buf[:n]
		p.off = 0
	}
	if len(p.buf) == cap(p.buf) {
		p.buf = append(p.buf, 0)[:len(p.buf)]
	}
	n, err := p.r.Read(p.buf[len(p.buf):cap(p.buf)])
	p.buf = p.buf[:len(p.buf)+n]
	if err != nil {
		p.err = err
	}
}
