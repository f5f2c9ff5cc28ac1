package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/e2e"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

// dumpEvent is one event of a hand-made dump: raw is the payload as the dump
// holds it (spacing, key order and repeated keys as a producer sent them);
// canonical is what Python's json.dumps(sort_keys=True,
// separators=(",", ":")) makes of it, written out by hand so that the test
// does not lean on the canonicaliser under test.
type dumpEvent struct {
	kind, source, sourceJSON, timestamp string
	raw, canonical                      string
}

// buildDump chains evs as the original service would and returns the events
// as JSON objects, and the last hash.
func buildDump(evs []dumpEvent) (objs []string, last string) {
	prev := strings.Repeat("0", 64)
	for i, e := range evs {
		id := i + 1
		srcJSON := e.sourceJSON
		if srcJSON == "" {
			srcJSON = `"` + e.source + `"`
		}
		body := fmt.Sprintf(`{"event_id":%d,"kind":"%s","payload":%s,"prev_hash":"%s","source":%s,"timestamp":"%s"}`,
			id, e.kind, e.canonical, prev, srcJSON, e.timestamp)
		sum := sha256.Sum256([]byte(body))
		hash := hex.EncodeToString(sum[:])
		// The dump holds the source as raw UTF-8, as the original served it.
		objs = append(objs, fmt.Sprintf(`{"event_id": %d, "timestamp": "%s", "kind": "%s", "source": "%s", "payload": %s, "prev_hash": "%s", "hash": "%s"}`,
			id, e.timestamp, e.kind, e.source, e.raw, prev, hash))
		prev = hash
	}
	return objs, prev
}

// beyondAppendLimits are events the original accepted and we would refuse
// on append: a payload nested 200 levels deep, a 10,000-character source,
// repeated keys. Stored, they are judged by their hashes alone.
func beyondAppendLimits() []dumpEvent {
	deep := strings.Repeat("[", 199) + "1" + strings.Repeat("]", 199)
	deepSpaced := strings.Repeat("[ ", 199) + "1" + strings.Repeat(" ]", 199)
	return []dumpEvent{
		{kind: "other", source: "legacy", timestamp: "2026-05-15T03:14:15+00:00",
			raw: `{"deep": ` + deepSpaced + `}`, canonical: `{"deep":` + deep + `}`},
		{kind: "other", source: strings.Repeat("é", 10000), sourceJSON: `"` + strings.Repeat(`\u00e9`, 10000) + `"`,
			timestamp: "2026-05-15T03:14:16+00:00", raw: `{"n": 1}`, canonical: `{"n":1}`},
		{kind: "request_denied", source: "gw", timestamp: "2026-05-15T03:14:17+00:00",
			raw: `{"b": 1, "a": {"x": 1, "x": 2}, "b": 3}`, canonical: `{"a":{"x":2},"b":3}`},
		{kind: "no_longer_a_kind", source: "gw", timestamp: "2026-05-15 03:14:18",
			raw: `{}`, canonical: `{}`},
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func verifyReport(t *testing.T, out string) map[string]any {
	t.Helper()
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report %q: %v", out, err)
	}
	return rep
}

// Item: verification never applies append-time limits.
func TestVerifyFileBeyondAppendLimits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	objs, _ := buildDump(beyondAppendLimits())
	files := map[string]string{
		"ndjson":     strings.Join(objs, "\n") + "\n",
		"json array": "[\n  " + strings.Join(objs, ",\n  ") + "\n]\n",
	}
	for name, content := range files {
		p := writeFile(t, dir, strings.ReplaceAll(name, " ", "-"), content)
		code, out, errs := cli(t, "verify", "--quiet", "--file", p)
		if code != 0 {
			t.Fatalf("%s: verify exit %d: %s %s", name, code, out, errs)
		}
		if rep := verifyReport(t, out); rep["valid"] != true || rep["checked"] != float64(4) {
			t.Fatalf("%s: report %s", name, out)
		}
	}
	// The same events with one payload changed are caught: the test
	// would pass on a verifier that checks nothing otherwise.
	tampered := strings.Replace(files["ndjson"], `{"n": 1}`, `{"n": 2}`, 1)
	p := writeFile(t, dir, "tampered", tampered)
	code, out, _ := cli(t, "verify", "--quiet", "--file", p)
	if rep := verifyReport(t, out); code != 1 || rep["valid"] != false || rep["first_break_at"] != float64(2) {
		t.Fatalf("tampered: exit %d, report %s", code, out)
	}
}

// Import the original's dump and events beyond our append limits, start the
// real server on the result: it serves the events exactly, verifies them,
// signs over them and continues the same chain.
func TestImportThenServe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed, err := os.ReadFile(filepath.Join("..", "..", "testdata", "seed-export.json"))
	if err != nil {
		t.Fatal(err)
	}
	var original []map[string]any
	if err := json.Unmarshal(seed, &original); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	// A byte-order mark, as Windows tools write one.
	dump := writeFile(t, dir, "dump.json", "\xef\xbb\xbf"+string(seed))
	code, out, errs := cli(t, "import", dump, "--data", data, "--origin", "example.com/imported")
	if code != 0 {
		t.Fatalf("import: exit %d: %s %s", code, out, errs)
	}
	if rep := verifyReport(t, out); rep["valid"] != true || rep["checked"] != float64(len(original)) {
		t.Fatalf("import report %s", out)
	}
	if !strings.Contains(errs, "import: imported 20 events") {
		t.Errorf("no progress line on stderr: %s", errs)
	}
	// Importing again into the same store is refused.
	if code, _, errs := cli(t, "import", dump, "--data", data); code != 2 || !strings.Contains(errs, "empty store") {
		t.Fatalf("second import: exit %d: %s", code, errs)
	}

	p := e2e.Start(t, data, "", "--checkpoint-interval", "50ms", "--origin", "example.com/imported")
	for _, want := range original {
		id := int64(want["event_id"].(float64))
		var got map[string]any
		if err := json.Unmarshal(fetch(t, fmt.Sprintf("%s/events/%d", p.URL, id)), &got); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"event_id", "timestamp", "kind", "source", "payload", "prev_hash", "hash"} {
			if fmt.Sprint(got[k]) != fmt.Sprint(want[k]) {
				t.Errorf("event %d %s: served %v, dump has %v", id, k, got[k], want[k])
			}
		}
	}
	// The checkpoint the import signed, under the key serve uses.
	cp := waitCheckpoint(t, p.URL, int64(len(original)))
	if cp.Origin != "example.com/imported" {
		t.Errorf("origin %q", cp.Origin)
	}
	if code, _ := postEvent(p.URL, 1); code != 201 {
		t.Fatalf("append after import: %d", code)
	}
	c := testClient(t, p.URL)
	ev, err := c.Get(context.Background(), 21)
	if err != nil || ev.PrevHash.String() != original[19]["hash"] {
		t.Fatalf("event 21 prev_hash %v (%v), want the dump's last hash %v", ev.PrevHash, err, original[19]["hash"])
	}
	if rep := serverVerify(t, p.URL); !rep.Valid || rep.Checked != 21 {
		t.Fatalf("/verify after import and append: %+v", rep)
	}
	key, err := c.VerifierKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	waitCheckpoint(t, p.URL, 21)
	if code, out, errs := cli(t, "verify", "--quiet", "--url", p.URL, "--key", key); code != 0 {
		t.Fatalf("verify --url: exit %d: %s %s", code, out, errs)
	}
	stop(t, p)
}

// Events beyond the append limits survive an import, /verify, export and
// verify --file.
func TestImportBeyondAppendLimits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	objs, last := buildDump(beyondAppendLimits())
	dump := writeFile(t, dir, "dump.ndjson", strings.Join(objs, "\n")+"\n")
	data := filepath.Join(dir, "data")
	if code, out, errs := cli(t, "import", "--quiet", "--data", data, dump); code != 0 {
		t.Fatalf("import: exit %d: %s %s", code, out, errs)
	}
	p := startServer(t, data)
	if rep := serverVerify(t, p.URL); !rep.Valid || rep.Checked != 4 {
		t.Fatalf("/verify: %+v", rep)
	}
	stats, err := testClient(t, p.URL).Stats(context.Background())
	if err != nil || stats.LatestHash.String() != last {
		t.Fatalf("stats %+v (%v), want latest hash %s", stats, err, last)
	}
	export := fetch(t, p.URL+"/export")
	out := writeFile(t, dir, "export.ndjson", string(export))
	if code, res, errs := cli(t, "verify", "--quiet", "--file", out); code != 0 {
		t.Fatalf("verify --file of the export: exit %d: %s %s", code, res, errs)
	}
	stop(t, p)
}

// A broken or unusable input is refused and nothing is written: the data
// directory is not even created.
func TestImportRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	objs, _ := buildDump(beyondAppendLimits())
	good := strings.Join(objs, "\n") + "\n"
	tests := []struct {
		name, content string
		code          int
		out           string // in the report (exit 1) or on stderr (exit 2)
	}{
		{"changed payload", strings.Replace(good, `{"n": 1}`, `{"n": 2}`, 1), 1, `"first_break_at":2`},
		{"missing event", strings.Join(append(objs[:1:1], objs[2:]...), "\n"), 1, `"first_break_at":2`},
		{"reordered", strings.Join([]string{objs[1], objs[0]}, "\n"), 1, `"first_break_at":1`},
		{"not an event", good + "{\"detail\":\"unauthorized\"}\n", 1, `does not parse`},
		{"not JSON", good + "garbage\n", 1, `does not parse`},
		{"empty", "", 2, "no events"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := writeFile(t, dir, fmt.Sprintf("in%d", i), tt.content)
			data := filepath.Join(dir, fmt.Sprintf("data%d", i))
			code, out, errs := cli(t, "import", "--quiet", f, "--data", data)
			if code != tt.code {
				t.Fatalf("exit %d, want %d: %s %s", code, tt.code, out, errs)
			}
			if !strings.Contains(out+errs, tt.out) {
				t.Errorf("output %q %q does not contain %q", out, errs, tt.out)
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Errorf("data directory exists after a refused import: %v", err)
			}
		})
	}
	// An existing empty data directory stays empty.
	data := filepath.Join(dir, "existing")
	os.Mkdir(data, 0o700)
	f := writeFile(t, dir, "broken", tests[0].content)
	if code, _, _ := cli(t, "import", "--quiet", f, "--data", data); code != 1 {
		t.Fatalf("exit %d", code)
	}
	if code, out, _ := cli(t, "export", "--data", data); code != 0 || out != "" {
		t.Fatalf("store after a refused import: exit %d, %q", code, out)
	}
	for _, args := range [][]string{
		{"import"},
		{"import", "a", "b"},
		{"import", filepath.Join(dir, "nonexistent"), "--data", filepath.Join(dir, "d")},
		{"import", dir, "--data", filepath.Join(dir, "d")},
	} {
		if code, _, _ := cli(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

// A SIGKILL in the middle of an import leaves the store as it was, never a
// store that looks complete; the next import starts again and completes,
// and removes what the killed one left.
func TestImportKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	t.Parallel()
	dir := t.TempDir()
	const n = 60_000
	dump := writeExport(t, dir, n)
	data := filepath.Join(dir, "data")
	cmd := exec.Command(e2e.Binary(t), "import", "--quiet", "--data", data, dump)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(data, sqlite.FileName+".import")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		if fi, err := os.Stat(partial); err == nil && fi.Size() > 1<<20 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the import wrote no megabyte in a minute")
		}
	}
	cmd.Process.Kill()
	if err := cmd.Wait(); err == nil {
		t.Fatal("the import finished before it was killed: nothing was tested")
	}
	if _, err := os.Stat(partial); err != nil {
		t.Fatalf("the killed import left no partial file: %v", err)
	}
	if code, out, errs := cli(t, "export", "--data", data); code != 0 || out != "" {
		t.Fatalf("store after a killed import: exit %d, %d bytes exported: %s", code, len(out), errs)
	}
	code, out, errs := cli(t, "import", "--quiet", "--data", data, dump)
	if code != 0 {
		t.Fatalf("import after a killed one: exit %d: %s %s", code, out, errs)
	}
	if rep := verifyReport(t, out); rep["valid"] != true || rep["checked"] != float64(n) {
		t.Fatalf("report %s", out)
	}
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Fatalf("the partial file is still there: %v", err)
	}
}

func TestVersionFlag(t *testing.T) {
	t.Parallel()
	_, want, _ := cli(t, "version")
	for _, flag := range []string{"--version", "-version"} {
		code, out, _ := cli(t, flag)
		if code != 0 || out != want || !strings.HasPrefix(out, "audit-stream ") {
			t.Errorf("%s: exit %d, %q; audit-stream version prints %q", flag, code, out, want)
		}
	}
}
