package verify_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/verify"
)

// rawChain is a valid chain of n events in wire form.
func rawChain(n int) [][]byte {
	out := make([][]byte, n)
	prev := event.ZeroHash
	for i := range out {
		e := event.Event{ID: int64(i + 1), Timestamp: "2026-05-15T03:00:00.000000+00:00", Kind: "other", Source: "s", Payload: []byte(fmt.Sprintf(`{"n":%d}`, i)), PrevHash: prev}
		e.Hash, _ = e.ComputeHash(nil)
		prev = e.Hash
		out[i] = e.AppendJSON(nil)
	}
	return out
}

func streamRaw(lines [][]byte, workers int) (verify.TreeReport, error) {
	src := func(ctx context.Context, fn func([]byte) error) error {
		buf := make([]byte, 0, 1024)
		for _, l := range lines {
			buf = append(buf[:0], l...) // the source reuses its buffer
			if err := fn(buf); err != nil {
				return err
			}
		}
		return nil
	}
	var t verify.Tree
	return verify.StreamTreeRaw(context.Background(), src, event.ParseStored, verify.StreamOptions{Workers: workers}, &t)
}

// StreamRaw must give what Stream gives over the decoded events: the same
// report and the same Merkle root, across many batches and worker counts.
func TestStreamRawMatchesStream(t *testing.T) {
	lines := rawChain(3000)
	evs := make([]event.Event, len(lines))
	for i, l := range lines {
		evs[i], _ = event.ParseStored(l)
	}
	src := func(ctx context.Context, fn func(*event.Event) error) error {
		for i := range evs {
			if err := fn(&evs[i]); err != nil {
				return err
			}
		}
		return nil
	}
	var tree verify.Tree
	want, err := verify.StreamTree(context.Background(), src, verify.StreamOptions{}, &tree)
	if err != nil || !want.Valid || want.Checked != 3000 {
		t.Fatalf("Stream: %+v, %v", want, err)
	}
	for _, workers := range []int{1, 2, 5} {
		got, err := streamRaw(lines, workers)
		if err != nil || got.Valid != want.Valid || got.Checked != want.Checked || got.RootHash != want.RootHash {
			t.Fatalf("StreamRaw with %d workers: %+v, %v; want %+v", workers, got, err, want)
		}
	}
}

// A line that does not decode ends the walk there: everything before it is
// checked (also inside its batch), and an earlier chain break still wins.
func TestStreamRawDecodeError(t *testing.T) {
	cases := []struct {
		name        string
		bad         int // index of the line that does not parse
		tamper      int // index of an event with a wrong hash, or -1
		wantChecked int64
		wantBreak   int64 // 0: a decode error at bad+1
	}{
		{"first line", 0, -1, 0, 0},
		{"inside a batch", 700, -1, 700, 0},
		{"first of a batch", 512, -1, 512, 0},
		{"last line", 2999, -1, 2999, 0},
		{"break before it wins", 1500, 1200, 1200, 1201},
		{"break in the same batch wins", 1500, 1499, 1499, 1500},
		{"break after it is not reached", 1500, 1600, 1500, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lines := rawChain(3000)
			lines[tc.bad] = []byte(`{"event_id":` + fmt.Sprint(tc.bad+1) + `,`)
			if tc.tamper >= 0 {
				e, _ := event.ParseStored(lines[tc.tamper])
				e.Hash[0] ^= 1
				lines[tc.tamper] = e.AppendJSON(nil)
			}
			for _, workers := range []int{1, 3} {
				rep, err := streamRaw(lines, workers)
				var derr *verify.DecodeError
				if tc.wantBreak != 0 {
					if err != nil || rep.Valid || *rep.FirstBreakAt != tc.wantBreak || rep.Checked != tc.wantChecked {
						t.Fatalf("workers %d: %+v, %v; want a break at %d", workers, rep, err, tc.wantBreak)
					}
					continue
				}
				if !errors.As(err, &derr) || derr.At != int64(tc.bad+1) || !rep.Valid || rep.Checked != tc.wantChecked {
					t.Fatalf("workers %d: %+v, %v; want a decode error at %d after %d checked", workers, rep, err, tc.bad+1, tc.wantChecked)
				}
			}
		})
	}
}
