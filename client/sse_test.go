package client

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

type parsed struct {
	frames []string // "event|id|hasData|data"
	retry  string
}

func (f sseFrame) String() string {
	return f.Event + "|" + f.ID + "|" + strconv.FormatBool(f.HasData) + "|" + string(f.Data)
}

// parseAll runs sseReader over r to the end.
func parseAll(t testing.TB, r io.Reader, max int) (parsed, error) {
	p := newSSEReader(r, max)
	var out parsed
	for {
		f, err := p.Next()
		if err != nil {
			if d, ok := p.Retry(); ok {
				out.retry = d.String()
			}
			if err == io.EOF {
				err = nil
			}
			return out, err
		}
		out.frames = append(out.frames, f.String())
	}
}

// referenceParse is the event stream interpretation of the HTML standard
// written as plainly as possible over the whole input, to check the
// incremental parser against.
func referenceParse(in string) parsed {
	in = strings.TrimPrefix(in, "\uFEFF")
	var lines []string
	for {
		i := strings.IndexAny(in, "\r\n")
		if i < 0 {
			break // an unterminated last line is discarded
		}
		lines = append(lines, in[:i])
		if in[i] == '\r' && i+1 < len(in) && in[i+1] == '\n' {
			i++
		}
		in = in[i+1:]
	}
	var (
		out                  parsed
		lastID, idBuf, event string
		data                 string
		hasData              bool
	)
	for _, line := range lines {
		if line == "" {
			changed := idBuf != lastID
			lastID = idBuf
			if hasData || changed {
				d, ev := "", ""
				if hasData {
					d, ev = strings.TrimSuffix(data, "\n"), event
				}
				out.frames = append(out.frames, sseFrame{Event: ev, ID: lastID, HasData: hasData, Data: []byte(d)}.String())
			}
			data, event, hasData = "", "", false
			continue
		}
		if line[0] == ':' {
			continue
		}
		name, value, found := strings.Cut(line, ":")
		if found {
			value = strings.TrimPrefix(value, " ")
		}
		switch name {
		case "event":
			event = value
		case "data":
			data += value + "\n"
			hasData = true
		case "id":
			if !strings.Contains(value, "\x00") {
				idBuf = value
			}
		case "retry":
			if value != "" && strings.Trim(value, "0123456789") == "" {
				if ms, err := strconv.ParseInt(value, 10, 64); err == nil && ms <= int64(1<<63-1)/int64(time.Millisecond) {
					out.retry = (time.Duration(ms) * time.Millisecond).String()
				}
			}
		}
	}
	return out
}

var sseSeeds = []string{
	"retry: 2000\nid: 0\n\n",
	"retry: 2000\nid: 41\n\nevent: request_denied\nid: 42\ndata: {\"event_id\":42}\n\n: keep-alive\n\n",
	"event: a\r\nid: 1\r\ndata: x\r\n\r\n",
	"event: a\rid: 1\rdata: x\r\r",
	"\xEF\xBB\xBFdata: bom\n\n",
	"\xEF\xBB\xBF\xEF\xBB\xBFdata: two boms\n\n",
	"data: one\ndata: two\ndata\n\n",
	"data:no space\ndata:  two spaces\n\n",
	"id: 7\n\nid\n\nid: 8\x009\n\n",
	"retry: 10\nretry: x\nretry: -5\nretry:\nretry: 99999999999999999999\n\n",
	"event: only an event\n\n",
	"data: unterminated",
	"data: a\n\ndata: b\n",
	": comment only\n\n\n\n",
	"field without colon\nevent:\ndata\n\n",
	"data: \xff\xfe bytes\n\n",
	"\r\n\r\n\n\r\r\n",
}

func TestSSEReader(t *testing.T) {
	for _, in := range sseSeeds {
		want := referenceParse(in)
		got, err := parseAll(t, strings.NewReader(in), 1<<20)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if !equalParsed(got, want) {
			t.Errorf("%q:\n got %q retry %q\nwant %q retry %q", in, got.frames, got.retry, want.frames, want.retry)
		}
	}
}

func TestSSEReaderExamples(t *testing.T) {
	in := "retry: 2000\nid: 41\n\n: keep-alive\n\nevent: request_denied\nid: 42\ndata: {}\n\ndata: a\r\ndata: b\r\rid: 43\r\n\r\n"
	got, err := parseAll(t, strings.NewReader(in), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"|41|false|", "request_denied|42|true|{}", "|42|true|a\nb", "|43|false|"}
	if strings.Join(got.frames, "\n") != strings.Join(want, "\n") || got.retry != "2s" {
		t.Fatalf("got %q retry %q, want %q retry 2s", got.frames, got.retry, want)
	}
}

// A frame is returned as soon as its blank line has arrived, even when that
// line ends in a lone CR and the connection then goes quiet.
func TestSSEReaderDoesNotWaitPastFrame(t *testing.T) {
	for _, in := range []string{"data: x\n\n", "data: x\r\r", "data: x\r\n\r\n", "\xEF\xBB\xBFdata: x\n\n", "data\n\n"} {
		pr, pw := io.Pipe()
		go pw.Write([]byte(in)) // and never closed: the peer stays silent
		done := make(chan sseFrame)
		go func() {
			f, _ := newSSEReader(pr, 1<<20).Next()
			done <- f
		}()
		select {
		case f := <-done:
			if !f.HasData {
				t.Errorf("%q: got %v", in, f)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%q: the frame was not returned before more input arrived", in)
		}
		pw.Close()
	}
}

func TestSSEReaderLimit(t *testing.T) {
	for _, in := range []string{
		"data: " + strings.Repeat("x", 200) + "\n\n",
		"data: " + strings.Repeat("x", 200),
		strings.Repeat("data: xxxxxxxxxx\n", 20) + "\n",
	} {
		_, err := parseAll(t, strings.NewReader(in), 100)
		if !errors.Is(err, errLineTooLong) {
			t.Errorf("%.30q...: got %v, want errLineTooLong", in, err)
		}
	}
	// Many small frames are fine: the limit is per frame.
	in := strings.Repeat("data: xxxxxxxxxx\n\n", 100)
	got, err := parseAll(t, strings.NewReader(in), 100)
	if err != nil || len(got.frames) != 100 {
		t.Fatalf("got %d frames, %v", len(got.frames), err)
	}
}

func equalParsed(a, b parsed) bool {
	return strings.Join(a.frames, "\x00") == strings.Join(b.frames, "\x00") && len(a.frames) == len(b.frames) && a.retry == b.retry
}

// FuzzSSE checks the incremental parser against the reference reading of the
// standard, with the input delivered whole, one byte at a time, and in
// arbitrary chunks.
func FuzzSSE(f *testing.F) {
	for _, s := range sseSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 1<<16 {
			t.Skip()
		}
		want := referenceParse(string(in))
		for _, c := range []struct {
			name string
			r    io.Reader
		}{
			{"whole", bytes.NewReader(in)},
			{"bytewise", iotest.OneByteReader(bytes.NewReader(in))},
			{"halves", iotest.HalfReader(bytes.NewReader(in))},
		} {
			name, r := c.name, c.r
			got, err := parseAll(t, r, 1<<20)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !equalParsed(got, want) {
				t.Fatalf("%s: %q\n got %q retry %q\nwant %q retry %q", name, in, got.frames, got.retry, want.frames, want.retry)
			}
		}
		// A small limit may refuse the input but never panics or loops.
		parseAll(t, bytes.NewReader(in), 16)
	})
}
