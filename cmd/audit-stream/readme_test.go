package main

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/internal/e2e"
)

// Every ```sh block of the README has a marker on the line before it that
// says how TestReadmeExamplesRun treats it, so that no example a user copies
// goes unchecked without a stated reason:
//
//	<!-- readme-test: fresh server -->                 run against a server on a new data directory
//	<!-- readme-test: server with N events -->         run against a server that holds N events and a checkpoint over them
//	<!-- readme-test: server on ./audit-stream-data --> run against a server whose data directory is the block's
//	                                                    ./audit-stream-data, where offline commands (token create) find it
//	<!-- readme-test: benchmarks -->                   go test benchmark commands: every alternative of each -bench
//	                                                    pattern must name a benchmark of that package
//	<!-- readme-test: skip (REASON) -->                not runnable here, for the reason given
//
// A block without a marker fails the test.
const readmeMarkerPrefix = "<!-- readme-test: "

type readmeBlock struct {
	line   int    // of the ```sh fence, from 1
	marker string // what follows "readme-test: ", without " -->"
	text   string
}

var (
	withEvents = regexp.MustCompile(`^server with ([0-9]+) events$`)
	skipReason = regexp.MustCompile(`^skip \((.+)\)$`)
)

// readmeBlocks returns the README's sh blocks with their markers.
func readmeBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var blocks []readmeBlock
	for i := 0; i < len(lines); i++ {
		fence := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(fence, "```") {
			continue
		}
		lang := strings.TrimPrefix(fence, "```")
		start := i
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		if lang != "sh" && lang != "bash" && lang != "shell" {
			continue
		}
		blk := readmeBlock{line: start + 1, text: strings.Join(body, "\n")}
		if start > 0 {
			prev := strings.TrimSpace(lines[start-1])
			if m, ok := strings.CutPrefix(prev, readmeMarkerPrefix); ok {
				blk.marker = strings.TrimSuffix(m, " -->")
			}
		}
		blocks = append(blocks, blk)
	}
	return blocks
}

// The README's shell examples run as written: every command exits 0 (curl
// fails on any HTTP error), except that streams, tails and servers, which
// never end by themselves, are cut after a few seconds. Blocks that cannot
// run here say why.
func TestReadmeExamplesRun(t *testing.T) {
	blocks := readmeBlocks(t)
	if len(blocks) < 10 {
		t.Fatalf("found %d sh blocks in the README, want many more", len(blocks))
	}
	for _, b := range blocks {
		switch {
		case b.marker == "":
			t.Errorf("README line %d: a sh block without a %q...\" -->\" marker: say how the test runs it, or why it cannot", b.line, readmeMarkerPrefix)
		case skipReason.MatchString(b.marker), b.marker == "benchmarks", b.marker == "fresh server",
			b.marker == "server on ./audit-stream-data", withEvents.MatchString(b.marker):
		default:
			t.Errorf("README line %d: unknown marker %q", b.line, b.marker)
		}
	}
	if t.Failed() {
		return
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	if _, err := exec.LookPath("jq"); err != nil {
		t.Skip("jq is not installed")
	}
	bin := e2e.Binary(t)
	for _, b := range blocks {
		if skipReason.MatchString(b.marker) {
			continue
		}
		t.Run(fmt.Sprintf("line%d", b.line), func(t *testing.T) {
			t.Parallel()
			if b.marker == "benchmarks" {
				checkBenchmarks(t, b)
				return
			}
			dir := t.TempDir()
			var p *e2e.Process
			switch {
			case b.marker == "fresh server":
				p = e2e.Start(t, t.TempDir(), "")
			case b.marker == "server on ./audit-stream-data":
				p = e2e.Start(t, filepath.Join(dir, "audit-stream-data"), "")
			default:
				n, _ := strconv.Atoi(withEvents.FindStringSubmatch(b.marker)[1])
				p = e2e.Start(t, t.TempDir(), "", "--checkpoint-interval", "100ms")
				fillReadmeServer(t, p.URL, n)
			}
			runReadmeBlock(t, b, bin, p, dir)
		})
	}
}

// readmePrelude makes the examples safe to run unattended: a command that
// never ends by itself (a stream, a tail, a server) is cut after 3 seconds
// and that counts as success; anything else gets a minute and must exit 0.
const readmePrelude = `set -euo pipefail
curl() {
	local t=60
	case " $* " in *" -N "*|*" -sN "*|*/stream*) t=3 ;; esac
	command curl --max-time "$t" --fail-with-body "$@" || { rc=$?; [ $rc -eq 28 ] && [ "$t" = 3 ] || return $rc; }
}
audit-stream() {
	local t=60
	case "$1 ${2:-}" in serve*|tail*|"witness serve") t=3 ;; esac
	timeout "$t" "$AUDIT_STREAM_BIN" "$@" || { rc=$?; [ $rc -eq 124 ] && [ "$t" = 3 ] || return $rc; }
}
`

func runReadmeBlock(t *testing.T, b readmeBlock, bin string, p *e2e.Process, dir string) {
	t.Helper()
	script := readmePrelude + strings.NewReplacer("http://localhost:8093", p.URL, "localhost:8093", p.Addr).Replace(b.text)
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	// A server the block starts itself listens on a port of its own.
	cmd.Env = append(os.Environ(), "AUDIT_STREAM_BIN="+bin, "AUDIT_STREAM_URL="+p.URL, "AUDIT_STREAM_TOKEN=",
		"HOST=127.0.0.1", "PORT="+freePort(t))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("README block at line %d failed: %v\n--- block\n%s\n--- output\n%s", b.line, err, b.text, out)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// fillReadmeServer appends n events and waits for a checkpoint over all of
// them, so that examples about history (proofs, receipts, pages, exports
// checked against the checkpoint) find it.
func fillReadmeServer(t *testing.T, url string, n int) {
	t.Helper()
	for done := 0; done < n; {
		k := min(n-done, 1000)
		var body bytes.Buffer
		for i := range k {
			fmt.Fprintf(&body, `{"kind":"request_denied","source":"policy-engine","payload":{"rule":"no-pii-export","user":"u-%d"}}`+"\n", (done+i)%17)
		}
		res, err := http.Post(url+"/events/batch", "application/x-ndjson", &body)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("filling the server: %s", res.Status)
		}
		done += k
	}
	waitCheckpoint(t, url, int64(n))
}

var benchFlag = regexp.MustCompile(`-bench=(?:'([^']*)'|"([^"]*)"|(\S+))`)

// checkBenchmarks checks each go test command of a benchmarks block the
// way a copy-paste would fail silently: a pattern (or one alternative of
// it) that names no benchmark of the package runs nothing and says PASS.
// The benchmarks themselves are not run here: they take minutes.
func checkBenchmarks(t *testing.T, b readmeBlock) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(b.text, "\n") {
		line, _, _ = strings.Cut(line, "#")
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "go" || fields[1] != "test" {
			continue
		}
		m := benchFlag.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("README line %d: %q has no -bench pattern", b.line, line)
			continue
		}
		pattern := m[1] + m[2] + m[3]
		if strings.Contains(pattern, `\|`) {
			t.Errorf("README line %d: %q escapes the alternation: as copied, it matches no benchmark", b.line, pattern)
			continue
		}
		var pkgs []string
		for _, f := range fields {
			if strings.HasPrefix(f, "./") {
				pkgs = append(pkgs, f)
			}
		}
		if len(pkgs) == 0 {
			t.Errorf("README line %d: %q names no package", b.line, line)
			continue
		}
		names, err := benchmarkNames(root, pkgs)
		if err != nil {
			t.Errorf("README line %d: %v", b.line, err)
			continue
		}
		for _, alt := range strings.Split(pattern, "|") {
			re, err := regexp.Compile(alt)
			if err != nil {
				t.Errorf("README line %d: %q: %v", b.line, alt, err)
				continue
			}
			found := false
			for _, n := range names {
				found = found || re.MatchString(n)
			}
			if !found {
				t.Errorf("README line %d: -bench alternative %q names no benchmark in %s (found %v)", b.line, alt, pkgs, names)
			}
		}
	}
}

// benchmarkNames lists the top-level benchmarks of the packages, as go test
// -list would, from their test files with the build's constraints applied.
// Building the test binaries to ask go test (without -race, so nothing the
// suite built could be reused) took minutes on a loaded machine.
func benchmarkNames(root string, pkgs []string) ([]string, error) {
	var names []string
	fset := token.NewFileSet()
	for _, pkg := range pkgs {
		dir := filepath.Join(root, pkg)
		bp, err := build.ImportDir(dir, 0)
		if err != nil {
			return nil, fmt.Errorf("package %s: %w", pkg, err)
		}
		for _, name := range slices.Concat(bp.TestGoFiles, bp.XTestGoFiles) {
			f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
			if err != nil {
				return nil, err
			}
			for _, d := range f.Decls {
				if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && strings.HasPrefix(fd.Name.Name, "Benchmark") {
					names = append(names, fd.Name.Name)
				}
			}
		}
	}
	return names, nil
}
