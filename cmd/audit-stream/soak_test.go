package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/internal/loadgen"
)

// The soak in short: its own server in a child process (this test binary,
// through TestMain), subscribers of every kind coming and going, and the
// leak rule applied at the end. A leak in the stream path (a goroutine or
// a descriptor kept per subscriber) fails it.
func TestSoakShort(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	jsonFile, svgFile := filepath.Join(dir, "soak.json"), filepath.Join(dir, "soak.svg")
	code, out, errs := runCmd(t, "", "bench", "soak", "--duration", "12s", "--rate", "100", "--subscribers", "12",
		"--interval", "500ms", "--quiet", "--out-json", jsonFile, "--out-svg", svgFile)
	if code != 0 || !strings.Contains(out, "no leak trend: pass") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var rep loadgen.SoakReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Failures) != 0 || rep.Rule == "" || len(rep.Samples) < 15 || rep.AppendErrs != 0 ||
		rep.Connections <= int64(rep.Subscribers) || rep.Resumes == 0 || rep.SlowReplays == 0 ||
		rep.Delivered < rep.Appended || rep.Before.Goroutines <= 0 || rep.Before.FDs <= 0 || rep.After.RSSMiB <= 0 {
		t.Fatalf("report: %+v", rep)
	}
	// While subscribers were connected the server held their streams;
	// after they left it held none.
	peak := 0.0
	for _, s := range rep.Samples {
		peak = max(peak, s.Streams)
	}
	if peak < float64(rep.Subscribers)/2 || rep.After.Streams != 0 {
		t.Fatalf("streams open: peak %.0f, after %.0f", peak, rep.After.Streams)
	}

	// The plot is well-formed SVG with a line per series.
	svg, err := os.ReadFile(svgFile)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(svg))
	lines := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG: %v", err)
		}
		if el, ok := tok.(xml.StartElement); ok && el.Name.Local == "polyline" {
			lines++
		}
	}
	if lines != 9 {
		t.Fatalf("SVG has %d lines, want 9 (2 memory, 3 counts, 4 latencies)", lines)
	}
}
