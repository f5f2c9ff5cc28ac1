package witness

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

const exampleCheckpoint = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"

// The example request of c2sp.org/tlog-witness.
const exampleRequest = "old 20852014\n" +
	"PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n" +
	"jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n" +
	"5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n" +
	"/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n" +
	"\n" + exampleCheckpoint

func TestParseAddCheckpointExample(t *testing.T) {
	r, err := ParseAddCheckpoint([]byte(exampleRequest))
	if err != nil {
		t.Fatal(err)
	}
	if r.OldSize != 20852014 || len(r.Proof) != 4 || string(r.Checkpoint) != exampleCheckpoint {
		t.Fatalf("parsed %+v", r)
	}
	if got := r.Marshal(); string(got) != exampleRequest {
		t.Fatalf("Marshal does not round-trip:\n%s", got)
	}
	r, err = ParseAddCheckpoint([]byte("old 0\n\n" + exampleCheckpoint))
	if err != nil || r.OldSize != 0 || len(r.Proof) != 0 {
		t.Fatalf("old 0 without proof: %+v %v", r, err)
	}
}

func TestParseAddCheckpointRejects(t *testing.T) {
	h := base64.StdEncoding.EncodeToString(make([]byte, 32))
	cases := []struct{ name, body, want string }{
		{"empty", "", "no old size line"},
		{"no newline", "old 1", "no old size line"},
		{"not old", "new 1\n\n" + exampleCheckpoint, "first line"},
		{"capital", "OLD 1\n\n" + exampleCheckpoint, "first line"},
		{"two spaces", "old  1\n\n" + exampleCheckpoint, "not a decimal"},
		{"leading zero", "old 01\n\n" + exampleCheckpoint, "not a decimal"},
		{"negative", "old -1\n\n" + exampleCheckpoint, "not a decimal"},
		{"plus", "old +1\n\n" + exampleCheckpoint, "not a decimal"},
		{"overflow", "old 9223372036854775808\n\n" + exampleCheckpoint, "not a decimal"},
		{"hex", "old 0x10\n\n" + exampleCheckpoint, "not a decimal"},
		{"crlf", "old 1\r\n\r\n" + exampleCheckpoint, "not a decimal"},
		{"no empty line", "old 1\n" + h + "\n", "no empty line"},
		{"no checkpoint", "old 1\n" + h + "\n\n", "no checkpoint"},
		{"short hash", "old 1\n" + h[:40] + "\n\n" + exampleCheckpoint, "proof line 1"},
		{"long hash", "old 1\n" + h + "AAAA\n\n" + exampleCheckpoint, "proof line 1"},
		{"unpadded", "old 1\n" + strings.TrimRight(h, "=") + "\n\n" + exampleCheckpoint, "proof line 1"},
		{"url base64", "old 1\n" + strings.Repeat("_", 43) + "=\n\n" + exampleCheckpoint, "proof line 1"},
		{"non canonical", "old 1\n" + h[:42] + "B=\n\n" + exampleCheckpoint, "proof line 1"},
		{"trailing space", "old 1\n" + h + " \n\n" + exampleCheckpoint, "proof line 1"},
		{"64 lines", "old 1\n" + strings.Repeat(h+"\n", 64) + "\n" + exampleCheckpoint, "more than 63"},
		{"huge", "old 1\n\n" + strings.Repeat("x", MaxRequestSize), "bytes, more than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseAddCheckpoint([]byte(c.body))
			var re *RequestError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want a RequestError with %q", err, c.want)
			}
		})
	}
	if _, err := ParseAddCheckpoint([]byte("old 1\n" + strings.Repeat(h+"\n", 63) + "\n" + exampleCheckpoint)); err != nil {
		t.Fatalf("63 proof lines refused: %v", err)
	}
}

func FuzzParseAddCheckpoint(f *testing.F) {
	f.Add([]byte(exampleRequest))
	f.Add([]byte("old 0\n\n" + exampleCheckpoint))
	f.Add([]byte("old 1\n\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseAddCheckpoint(body)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("error of another type: %v", err)
			}
			return
		}
		// What parses, re-marshals to the same bytes: the grammar has one
		// spelling for each request.
		if got := r.Marshal(); !bytes.Equal(got, body) {
			t.Fatalf("round trip:\n%q\n%q", body, got)
		}
		if r.OldSize < 0 || len(r.Proof) > MaxProofLines || len(r.Checkpoint) == 0 {
			t.Fatalf("parsed out of bounds: %+v", r)
		}
	})
}
