package loadgen

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// The subscribers' frame splitter against the shapes /stream sends, read a
// byte at a time so that every frame straddles reads.
func TestSplitFrames(t *testing.T) {
	stream := "retry: 2000\nid: 7\n\n" +
		": keep-alive\n\n" +
		"event: other\nid: 8\ndata: {\"id\":8,\"payload\":{\"at\":\"5\",\"i\":1}}\n\n" +
		"event: checkpoint\ndata: {\"tree_size\":8}\n\n" +
		"event: other\nid: 9\ndata: {\"id\":9}\n\n"
	var got []frame
	err := splitFrames(iotest.OneByteReader(strings.NewReader(stream)), func(f frame) error {
		f.data = append([]byte(nil), f.data...) // fn must not keep the reader's buffer
		got = append(got, f)
		return nil
	})
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("end of stream: %v, want io.ErrUnexpectedEOF (a stream does not end by itself)", err)
	}
	want := []struct {
		id   int64
		data string
	}{{7, ""}, {8, `{"id":8,"payload":{"at":"5","i":1}}`}, {9, `{"id":9}`}}
	if len(got) != len(want) {
		t.Fatalf("got %d frames, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].id != w.id || string(got[i].data) != w.data || got[i].at.IsZero() {
			t.Fatalf("frame %d: %+v, want %+v", i, got[i], w)
		}
	}
	if sent, ok := sentAt(got[1].data); !ok || sent != 5 {
		t.Fatalf("sentAt: %d %v", sent, ok)
	}
}

func TestSplitFramesRejects(t *testing.T) {
	for _, tc := range []struct{ name, stream, want string }{
		{"id not a number", "id: x\n\n", `bad id line "id: x"`},
		{"id overflows", "id: 99999999999999999999\n\n", "bad id line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := splitFrames(strings.NewReader(tc.stream), func(frame) error { return nil })
			if tc.want == "" {
				if err != io.ErrUnexpectedEOF {
					t.Fatalf("got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// A frame that never ends is refused once it passes maxFrame, rather than
// buffered for ever.
func TestSplitFramesEndlessFrame(t *testing.T) {
	endless := io.MultiReader(strings.NewReader("id: 1\ndata: "), repeatReader('x'))
	err := splitFrames(endless, func(frame) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "a frame longer than") {
		t.Fatalf("got %v", err)
	}
}

// repeatReader reads b for ever.
type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// The splitter on any bytes, read whole or a byte at a time: no panic,
// every frame it reports has its arrival time, and the end of the input is
// an error (a stream does not end by itself).
func FuzzSplitFrames(f *testing.F) {
	f.Add([]byte("retry: 2000\nid: 7\n\n: keep-alive\n\nevent: other\nid: 8\ndata: {\"payload\":{\"at\":\"5\"}}\n\n"), uint8(1))
	f.Add([]byte("event: checkpoint\ndata: {}\n\nid: 9\n\n"), uint8(3))
	f.Add([]byte("id: x\n\n"), uint8(0))
	f.Add([]byte("id: 1\nid: 2\ndata: a\ndata: b\n\n\n\n"), uint8(7))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		var r io.Reader = strings.NewReader(string(stream))
		if chunk%2 == 1 {
			r = iotest.OneByteReader(r)
		}
		err := splitFrames(r, func(fr frame) error {
			if fr.at.IsZero() {
				t.Fatal("a frame without its arrival time")
			}
			sentAt(fr.data) // must not panic on any data
			return nil
		})
		if err == nil {
			t.Fatal("splitFrames returned nil at the end of the stream")
		}
	})
}
