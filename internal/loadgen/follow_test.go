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
