package verify_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/tlog"
)

// collect runs ExportSource over in and returns the records it delivered.
func collect(in []byte) ([]string, error) {
	var got []string
	err := verify.ExportSource(bytes.NewReader(in))(context.Background(), func(raw []byte) error {
		got = append(got, string(raw))
		return nil
	})
	return got, err
}

func TestExportSourceSplits(t *testing.T) {
	lines := rawChain(3)
	ndjson := string(bytes.Join(lines, []byte("\n"))) + "\n"
	array := "[" + string(bytes.Join(lines, []byte(",\n "))) + "]"
	for _, tc := range []struct{ name, in string }{
		{"NDJSON", ndjson},
		{"NDJSON without a final newline", strings.TrimSuffix(ndjson, "\n")},
		{"NDJSON with CRLF and blank lines", "\r\n" + strings.ReplaceAll(ndjson, "\n", "\r\n\r\n")},
		{"NDJSON with a byte-order mark", "\xef\xbb\xbf" + ndjson},
		{"JSON array", array},
		{"JSON array with a byte-order mark and space", "\xef\xbb\xbf \n" + array + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := collect([]byte(tc.in))
			if err != nil || len(got) != 3 {
				t.Fatalf("got %d records, %v", len(got), err)
			}
			for i, g := range got {
				if strings.TrimSpace(g) != string(lines[i]) {
					t.Fatalf("record %d = %q, want %q", i, g, lines[i])
				}
			}
		})
	}
	if got, err := collect([]byte("\xef\xbb\xbf \n")); err != nil || len(got) != 0 {
		t.Fatalf("empty input: %q, %v", got, err)
	}
}

// What is not an export is an *InputError saying what it is instead; an
// export whose records are damaged is not.
func TestExportSourceRejects(t *testing.T) {
	good := string(rawChain(1)[0])
	for _, tc := range []struct {
		name, in string
		input    string // substring of the *InputError, "" for another outcome
	}{
		{"HTML", "<html>Bad Gateway</html>", "it starts with '<'"},
		{"plain text", "hello", "it starts with 'h'"},
		{"a saved 401", `{"type":"about:blank","title":"Unauthorized","status":401,"detail":"send a token"}`, "HTTP error answer (401 Unauthorized: send a token)"},
		{"a 401 in an array", `[{"status":401,"title":"Unauthorized","detail":"no"}]`, "HTTP error answer (401"},
		{"other JSON", `{"name":"audit-stream","version":"1"}`, "none of an event's members (event_id, prev_hash, hash), only name, version"},
		{"many other members", `{"a":1,"b":1,"c":1,"d":1,"e":1,"f":1,"g":1,"h":1,"i":1}`, "only a, b, c, d, e, f, g, h, ..."},
		{"first line not JSON", "{nope\n" + good, "its first record is not a JSON object"},
		{"first array record not JSON", "[{nope}]", "its first record is not JSON"},
		{"a damaged first event", `{"event_id":"x","hash":1}` + "\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := collect([]byte(tc.in))
			var ie *verify.InputError
			if tc.input == "" {
				if errors.As(err, &ie) {
					t.Fatalf("an export with a damaged event is an input error: %v", err)
				}
				return
			}
			if !errors.As(err, &ie) || !strings.Contains(ie.Reason, tc.input) {
				t.Fatalf("got %T %v, want an *InputError with %q", err, err, tc.input)
			}
		})
	}
	// A later array record that is not JSON is a break at its position.
	_, err := collect([]byte("[" + good + ", {nope}]"))
	var de *verify.DecodeError
	if !errors.As(err, &de) || de.At != 2 {
		t.Fatalf("got %v, want a DecodeError at 2", err)
	}
}

func FuzzExportSource(f *testing.F) {
	lines := rawChain(2)
	f.Add(bytes.Join(lines, []byte("\n")))
	f.Add([]byte("[" + string(bytes.Join(lines, []byte(","))) + "]"))
	f.Add([]byte(`{"status":401,"title":"Unauthorized","detail":"no"}`))
	f.Add([]byte("\xef\xbb\xbf[]"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := collect(in)
		if err != nil {
			return
		}
		// NDJSON: what it delivers is the input's non-blank lines.
		if s := bytes.TrimLeft(event.TrimBOM(in), " \t\r\n"); len(s) > 0 && s[0] == '{' {
			var want []string
			for _, l := range strings.Split(string(s), "\n") {
				if strings.TrimSpace(l) != "" {
					want = append(want, strings.TrimSuffix(l, "\r"))
				}
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
	})
}

// checkRaw runs CheckTreeRaw over lines against want.
func checkRaw(t *testing.T, lines [][]byte, want *verify.Target) verify.TreeReport {
	t.Helper()
	in := append(bytes.Join(lines, []byte("\n")), '\n')
	rep, err := verify.CheckTreeRaw(context.Background(), verify.ExportSource(bytes.NewReader(in)), event.ParseStored, want, verify.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestCheckTree(t *testing.T) {
	lines := rawChain(10)
	rootAt := func(n int) tlog.Hash {
		var tr verify.Tree
		for _, l := range lines[:n] {
			e, _ := event.ParseStored(l)
			tr.Add(e.Hash)
		}
		return tr.Root()
	}
	target := func(n int, root tlog.Hash) *verify.Target {
		return &verify.Target{Size: int64(n), What: "the checkpoint", Root: func() (tlog.Hash, error) { return root, nil }}
	}
	tampered := append([][]byte{}, lines...)
	tampered[3] = bytes.Replace(tampered[3], []byte(`"n":3`), []byte(`"n":4`), 1)

	for _, tc := range []struct {
		name    string
		lines   [][]byte
		want    *verify.Target
		valid   bool
		checked int64
		size    int64
		reason  string
	}{
		{"no target", lines, nil, true, 10, 10, ""},
		{"exactly the tree", lines, target(10, rootAt(10)), true, 10, 10, ""},
		{"more events than the tree", lines, target(6, rootAt(6)), true, 10, 6, ""},
		{"the empty tree", lines, target(0, verify.EmptyTreeHash), true, 10, 0, ""},
		{"fewer events than the tree", lines[:4], target(6, rootAt(6)), false, 4, 4, "events end at 4 but the checkpoint covers 6"},
		{"another root", lines, target(6, rootAt(5)), false, 10, 6, "Merkle root mismatch at tree size 6: the checkpoint has"},
		{"a break before the size", tampered, target(6, rootAt(6)), false, 3, 3, "hash mismatch at event #4"},
		{"a line that does not parse", append(lines[:2:2], []byte(`{"event_id":3}`)), target(2, rootAt(2)), false, 2, 2, "event #3 does not parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := checkRaw(t, tc.lines, tc.want)
			if rep.Valid != tc.valid || rep.Checked != tc.checked || rep.TreeSize != tc.size {
				t.Fatalf("got %+v, want valid %v, checked %d, tree size %d", rep, tc.valid, tc.checked, tc.size)
			}
			if tc.reason != "" && (rep.Reason == nil || !strings.Contains(*rep.Reason, tc.reason)) {
				t.Fatalf("reason %v, want %q", rep.Reason, tc.reason)
			}
		})
	}

	// The stored root is not read when the chain is already broken, and
	// an error reading it is the caller's error, not a broken log.
	called := false
	broken := &verify.Target{Size: 6, What: "the stored tree", Root: func() (tlog.Hash, error) { called = true; return tlog.Hash{}, nil }}
	if rep := checkRaw(t, tampered, broken); rep.Valid || called {
		t.Fatalf("broken chain: %+v, Root called %v", rep, called)
	}
	failing := &verify.Target{Size: 6, Root: func() (tlog.Hash, error) { return tlog.Hash{}, errors.New("disk on fire") }}
	in := append(bytes.Join(lines, []byte("\n")), '\n')
	if _, err := verify.CheckTreeRaw(context.Background(), verify.ExportSource(bytes.NewReader(in)), event.ParseStored, failing, verify.StreamOptions{}); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("Root error: %v", err)
	}
}

// TestExportLongLines: a line longer than the reader's buffer is read
// whole, one longer than verify.MaxExportLine is refused, and lines end at LF,
// CRLF or the end of the input.
func TestExportLongLines(t *testing.T) {
	long := `{"pad":"` + strings.Repeat("x", 3<<20) + `"}`
	in := "a\r\n\r\n" + long + "\nb\r"
	var got []string
	err := verify.ExportSource(strings.NewReader(`{"hash":1}`+"\n"+in))(context.Background(), func(raw []byte) error {
		got = append(got, string(raw))
		return nil
	})
	if err != nil || len(got) != 4 || got[0] != `{"hash":1}` || got[1] != "a" || got[2] != long || got[3] != "b" {
		t.Fatalf("%d lines, %v", len(got), err)
	}
	tooLong := `{"hash":1}` + "\n" + `{"pad":"` + strings.Repeat("x", verify.MaxExportLine) + `"}` + "\n"
	err = verify.ExportSource(strings.NewReader(tooLong))(context.Background(), func([]byte) error { return nil })
	if !errors.Is(err, bufio.ErrTooLong) {
		t.Fatalf("a line of %d bytes: %v", len(tooLong), err)
	}
}
