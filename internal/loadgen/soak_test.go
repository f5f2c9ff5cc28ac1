package loadgen

import (
	"strings"
	"testing"
)

// The leak rule on made-up runs: each broken clause is reported, a clean
// run passes.
func TestJudge(t *testing.T) {
	flat := func(rss float64) []SoakSample {
		var s []SoakSample
		for i := range 40 {
			s = append(s, SoakSample{Seconds: float64(i), RSSMiB: rss})
		}
		return s
	}
	growing := flat(0)
	for i := range growing {
		growing[i].RSSMiB = 40 + 5*float64(i) // 40 MiB to 235 MiB
	}
	base := SoakSample{Goroutines: 20, FDs: 15, RSSMiB: 30}
	for _, tc := range []struct {
		name    string
		after   SoakSample
		samples []SoakSample
		errs    int64
		want    string
	}{
		{"clean", SoakSample{Goroutines: 25, FDs: 17}, flat(60), 0, ""},
		{"goroutines kept", SoakSample{Goroutines: 20 + goroutineSlack + 1, FDs: 15}, flat(60), 0, "goroutines did not come back: 20 before"},
		{"descriptors kept", SoakSample{Goroutines: 20, FDs: 15 + fdSlack + 1}, flat(60), 0, "open file descriptors did not come back"},
		{"stream kept open", SoakSample{Goroutines: 20, FDs: 15, Streams: 1}, flat(60), 0, "1 streams still open"},
		{"rss growth", SoakSample{Goroutines: 20, FDs: 15}, growing, 0, "RSS grew"},
		{"failed appends", SoakSample{Goroutines: 20, FDs: 15}, flat(60), 3, "3 appends failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &SoakReport{Before: base, After: tc.after, Samples: tc.samples, ChurnStart: 0, DrainStart: 39, AppendErrs: tc.errs}
			got := judge(r)
			if tc.want == "" {
				if len(got) != 0 {
					t.Fatalf("got %q, want a pass", got)
				}
				return
			}
			if len(got) != 1 || !strings.Contains(got[0], tc.want) {
				t.Fatalf("got %q, want one failure containing %q", got, tc.want)
			}
		})
	}
}

func TestNiceStep(t *testing.T) {
	for _, tc := range []struct {
		span float64
		n    int
		want float64
	}{{600, 10, 100}, {15, 10, 2}, {0.9, 4, 0.5}, {236, 4, 100}, {0, 4, 1}} {
		if got := niceStep(tc.span, tc.n); got != tc.want {
			t.Errorf("niceStep(%v, %d) = %v, want %v", tc.span, tc.n, got, tc.want)
		}
	}
}
