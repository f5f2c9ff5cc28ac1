package httpapi

import (
	"fmt"
	"strconv"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

func TestParseTilePath(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]tlog.Tile{
		"0/000":                {H: 8, L: 0, N: 0, W: 256},
		"0/x001/x234/067":      {H: 8, L: 0, N: 1234067, W: 256},
		"2/001.p/17":           {H: 8, L: 2, N: 1, W: 17},
		"entries/x001/234.p/5": {H: 8, L: -1, N: 1234, W: 5},
		"63/999":               {H: 8, L: 63, N: 999, W: 256},
	} {
		got, ok := parseTilePath(in)
		if !ok || got != want {
			t.Errorf("parseTilePath(%q) = %+v, %v; want %+v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "0", "0/", "0/1", "0/0001", "0/x000/001", "0/001/002", "0/x1/002",
		"00/000", "64/000", "-1/000", "0/000.p/0", "0/000.p/256", "0/000.p/01", "0/000.p", "entries/000.p/",
		"0/x001/x002/x003/x004/x005/x006/x007/008", "a/000", "0/00a", "0/000/",
		"data/000", "entries/000.p/256", "+1/000", "0/+01", "0/x-01/000", "entries"} {
		if got, ok := parseTilePath(in); ok {
			t.Errorf("parseTilePath(%q) accepted: %+v", in, got)
		}
	}
}

// formatTileIndex is the spec's encoding, for the round trip below.
func formatTileIndex(n int64) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n /= 1000; n > 0; n /= 1000 {
		s = fmt.Sprintf("x%03d/", n%1000) + s
	}
	return s
}

func FuzzParseTilePath(f *testing.F) {
	for _, s := range []string{"0/000", "1/x001/x234/067.p/9", "entries/x999/000", "0/x000/001", "5/001.p/255"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		tp, ok := parseTilePath(p)
		if !ok {
			return
		}
		// One spelling per tile: what parses re-formats to itself.
		if tp.H != 8 || tp.L < -1 || tp.L > 63 || tp.N < 0 || tp.W < 1 || tp.W > 256 {
			t.Fatalf("%q parses to %+v", p, tp)
		}
		s := formatTileIndex(tp.N)
		if tp.W != 256 {
			s += ".p/" + strconv.Itoa(tp.W)
		}
		prefix := strconv.Itoa(tp.L)
		if tp.L == -1 {
			prefix = "entries"
		}
		if prefix+"/"+s != p {
			t.Fatalf("%q parses to %+v, which is spelled %q", p, tp, prefix+"/"+s)
		}
	})
}
