package httpapi

import (
	"fmt"
	"strconv"
	"testing"
)

func TestParseTilePath(t *testing.T) {
	for in, want := range map[string]tilePath{
		"0/000":                {level: 0, n: 0, width: 256},
		"0/x001/x234/067":      {level: 0, n: 1234067, width: 256},
		"2/001.p/17":           {level: 2, n: 1, width: 17},
		"entries/x001/234.p/5": {entries: true, n: 1234, width: 5},
		"63/999":               {level: 63, n: 999, width: 256},
	} {
		got, ok := parseTilePath(in)
		if !ok || got != want {
			t.Errorf("parseTilePath(%q) = %+v, %v; want %+v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "0", "0/", "0/1", "0/0001", "0/x000/001", "0/001/002", "0/x1/002",
		"00/000", "64/000", "-1/000", "0/000.p/0", "0/000.p/256", "0/000.p/01", "0/000.p", "entries/000.p/",
		"0/x001/x002/x003/x004/x005/x006/x007/008", "a/000", "0/00a", "0/000/"} {
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
		s := formatTileIndex(tp.n)
		if tp.width != 256 {
			s += ".p/" + strconv.Itoa(tp.width)
		}
		prefix := strconv.Itoa(tp.level)
		if tp.entries {
			prefix = "entries"
		}
		if prefix+"/"+s != p {
			t.Fatalf("%q parses to %+v, which is spelled %q", p, tp, prefix+"/"+s)
		}
	})
}
